"""Bootstrap confidence intervals, so a small difference on a few questions is not sold as a win.

Percentile bootstrap over questions: resample the questions with replacement ``resamples``
times (fixed seed), take the mean each time, and report the middle ``confidence`` of those
means. Paired differences resample the SAME questions for both routes, which is what makes
a comparison of two routes on one question set sharp: question difficulty cancels out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval over ``n`` questions."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0: a difference we may call real."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return asdict(self)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap interval (deterministic for a seed)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to estimate from")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = _interval(means, confidence)
    return Estimate(float(data.mean()), low, high, int(data.size))


def paired_difference(
    a: Sequence[float | None], b: Sequence[float | None], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Estimate | None:
    """Mean of ``a[i] - b[i]`` over the questions scored on both routes, with its interval."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    return bootstrap_mean(diffs, resamples=resamples, confidence=confidence, seed=seed) if diffs else None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation), e.g. latency p50 and p99."""
    if not len(values):
        raise ValueError("no values")
    return float(np.percentile(np.asarray(values, dtype=float), q))

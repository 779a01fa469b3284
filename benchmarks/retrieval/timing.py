"""Timing instruments for the benchmarks: they wrap the real components, never replace them.

``TimedEmbedder`` forwards to the real embedder and records how long each call took (and keeps
the vectors, which the latency benchmark reuses as realistic dense vectors). ``time_methods``
wraps methods of one live object (the real MilvusStore) so the ingest time can be split into
parse+chunk, embed and Milvus calls without changing retrieval/.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from retrieval.embedding import Embedder


class TimedEmbedder:
    """An Embedder that measures the embedder it wraps (same name and dimension)."""

    def __init__(self, inner: Embedder, keep_vectors: bool = True) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.embed_seconds = 0.0
        self.embedded_texts = 0
        self.query_seconds: list[float] = []
        self.keep_vectors = keep_vectors
        self.vectors: list[np.ndarray] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self.embed_seconds += time.perf_counter() - started
        self.embedded_texts += len(texts)
        if self.keep_vectors and len(vectors):
            self.vectors.append(np.asarray(vectors, dtype=np.float32))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        started = time.perf_counter()
        vector = self.inner.embed_query(text)
        self.query_seconds.append(time.perf_counter() - started)
        return vector


def time_methods(target: Any, names: Sequence[str]) -> dict[str, float]:
    """Wrap ``target.<name>`` for each name on this instance; returns the live seconds per name."""
    totals: dict[str, float] = defaultdict(float)
    for name in names:
        method = getattr(target, name)

        @functools.wraps(method)
        def timed(*args: Any, __method: Any = method, __name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return __method(*args, **kwargs)
            finally:
                totals[__name] += time.perf_counter() - started

        setattr(target, name, timed)
    return totals


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean / max in milliseconds (p99 is the 99th of sorted samples, interpolated)."""
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p90": round(float(np.percentile(values, 90)), 2),
        "p99": round(float(np.percentile(values, 99)), 2),
        "mean": round(float(statistics.fmean(values)), 2),
        "max": round(float(values.max()), 2),
        "n": int(values.size),
    }


def load_average() -> list[float]:
    """1/5/15-minute load averages: the machine is shared, so every phase records its load."""
    return [round(x, 2) for x in os.getloadavg()]

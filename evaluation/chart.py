"""``routes.png``: the routes side by side, quality with its intervals and latency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from evaluation.runner import QUALITY_METRICS, EvalResult  # noqa: E402

COLORS = {"base": "#9e9e9e", "rag": "#1f77b4", "finetuned": "#ff7f0e", "hybrid": "#2ca02c"}
LABELS = {"exact_match": "exact match", "f1": "token F1", "contains_fact": "contains fact",
          "retrieval_hit": "retrieval hit", "citation_correct": "citation correct"}


def write_chart(result: EvalResult, path: str | Path) -> Path:
    """Grouped bars per quality metric (one bar per route, bootstrap interval as error bar),
    next to latency p50 bars with p99 whiskers and tokens/s labels."""
    path = Path(path)
    routes = list(result.summaries)
    fig, (quality, speed) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 1.2]})
    width = 0.8 / max(1, len(routes))
    for i, route in enumerate(routes):
        summary = result.summaries[route]
        xs, means, errors = [], [], [[], []]
        for j, name in enumerate(QUALITY_METRICS):
            estimate = summary.metrics[name]
            if estimate is None:
                continue
            xs.append(j + (i - (len(routes) - 1) / 2) * width)
            means.append(estimate.mean)
            errors[0].append(max(0.0, estimate.mean - estimate.low))
            errors[1].append(max(0.0, estimate.high - estimate.mean))
        quality.bar(xs, means, width, yerr=errors, capsize=3, label=route, color=COLORS.get(route))
    quality.set_xticks(range(len(QUALITY_METRICS)), [LABELS[m] for m in QUALITY_METRICS])
    quality.set_ylim(0, 1.22)  # room for the legend above the 1.0 line
    quality.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    quality.set_ylabel("mean over questions")
    quality.set_title(f"Answer quality ({result.settings.confidence:.0%} bootstrap intervals, "
                      f"{result.meta.get('questions', '?')} questions)")
    quality.legend(loc="upper left", ncol=len(routes), fontsize=8)
    quality.grid(axis="y", alpha=0.3)

    p50 = [result.summaries[r].latency_p50_s for r in routes]
    p99 = [result.summaries[r].latency_p99_s for r in routes]
    bars = speed.bar(routes, p50, color=[COLORS.get(r) for r in routes],
                     yerr=[[0] * len(routes), [max(0.0, b - a) for a, b in zip(p50, p99)]], capsize=3)
    for bar, route, top in zip(bars, routes, p99):
        speed.annotate(f"{result.summaries[route].tokens_per_s:.1f} tok/s", (bar.get_x() + bar.get_width() / 2, top),
                       xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)
    speed.set_ylim(0, max([*p99, 1e-3]) * 1.2)
    speed.set_ylabel("seconds per answer")
    speed.set_title("Latency p50 (whisker: p99)")
    speed.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Which route to deploy: the seed's rules, applied to measured differences with their intervals.

The rules: answers that need external or changing data -> RAG; a stable domain vocabulary the
base model gets wrong -> fine-tuning; both -> hybrid. Measured, on the decision metric:

* retrieval is needed when RAG beats the base model, or hybrid beats fine-tuned-only (the
  documents hold what the weights do not), or the user declares the data changes (an
  evaluation on today's questions cannot see tomorrow's documents);
* with retrieval needed, hybrid ("both") only when it beats RAG: an adapter that helps the bare
  model but adds nothing on top of retrieval is a cost (training, keeping it in step with the
  documents) without a measured gain;
* without retrieval, fine-tuning when the adapter beats the base model, else the base model;
* finally, a route that another route measurably beats is never the answer: then the best
  route that nothing beats is.

"Beats" means the paired difference's confidence interval lies above zero; a difference whose
interval includes zero is no win, and then the simpler route stays. A pure function, so the
rule is tested on hand-made numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from evaluation.client import ROUTES
from evaluation.stats import Estimate

DECISION_METRICS = ("contains_fact", "f1", "exact_match")
RULES = ("needs external or changing data -> RAG; stable vocabulary the base model gets wrong -> "
         "fine-tuning; both -> hybrid")


@dataclass(frozen=True)
class Recommendation:
    route: str | None
    reasons: list[str]
    metric: str

    def to_dict(self) -> dict:
        return asdict(self)


def _difference(diffs: Mapping[tuple[str, str], Estimate | None], a: str, b: str) -> Estimate | None:
    if (a, b) in diffs:
        return diffs[(a, b)]
    d = diffs.get((b, a))
    return Estimate(-d.mean, -d.high, -d.low, d.n) if d else None


def recommend(
    scores: Mapping[str, Estimate],
    diffs: Mapping[tuple[str, str], Estimate | None],
    *,
    metric: str,
    confidence: float = 0.95,
    data_changes: bool = False,
) -> Recommendation:
    """Pick base / rag / finetuned / hybrid from per-route ``scores`` and paired ``diffs`` (a - b)."""
    if metric not in DECISION_METRICS:
        raise ValueError(f"decision metric must be one of {', '.join(DECISION_METRICS)}, got {metric!r}")
    missing = [r for r in ROUTES if r not in scores]
    if missing:
        return Recommendation(None, [f"no recommendation: route(s) {', '.join(missing)} were not evaluated, "
                                     "and the rules compare all four"], metric)

    def better(a: str, b: str) -> bool:
        d = _difference(diffs, a, b)
        return d is not None and d.low > 0

    def line(a: str, b: str, meaning: str) -> str:
        d = _difference(diffs, a, b)
        if d is None:
            return f"{a} vs {b}: not measured"
        verdict = meaning if d.low > 0 else ("worse" if d.high < 0 else "no measurable difference")
        return (f"{a} vs {b}: {d.mean:+.3f} {metric} ({confidence:.0%} CI {d.low:+.3f} to {d.high:+.3f}, "
                f"{d.n} questions) -> {verdict}")

    reasons = [
        line("rag", "base", "the answers are in the documents, not in the base model"),
        line("finetuned", "base", "the base model gets the domain wrong and the adapter fixes it"),
        line("hybrid", "rag", "the adapter adds what retrieval alone does not"),
        line("hybrid", "finetuned", "retrieval adds what the adapter alone does not"),
    ]
    needs_retrieval = better("rag", "base") or better("hybrid", "finetuned") or data_changes
    if data_changes:
        reasons.append("the data is declared to change: only routes with retrieval can follow it")
    if needs_retrieval:
        choice = "hybrid" if better("hybrid", "rag") else "rag"
    else:
        choice = "finetuned" if better("finetuned", "base") else "base"
    why = {
        "hybrid": "retrieval is needed and the adapter adds to it measurably -> hybrid",
        "rag": "retrieval is needed; the adapter adds nothing measurable on top of it -> RAG "
               "(no adapter to train and keep in step with the documents)",
        "finetuned": "the adapter beats the base model and retrieval adds nothing measurable -> fine-tuning",
        "base": "neither retrieval nor fine-tuning beats the base model measurably -> base "
                "(more questions would narrow the intervals)",
    }[choice]
    reasons.append(f"rule: {why}")

    allowed = ("rag", "hybrid") if data_changes else ROUTES
    beaten_by = [r for r in allowed if r != choice and better(r, choice)]
    if beaten_by:
        unbeaten = [r for r in allowed if not any(better(o, r) for o in allowed if o != r)]
        best = max(unbeaten or allowed, key=lambda r: scores[r].mean)
        reasons.append(f"but {choice} is measurably worse than {', '.join(beaten_by)}: recommending {best}, "
                       f"the best measured route ({scores[best].mean:.3f} {metric})")
        choice = best
    return Recommendation(choice, reasons, metric)

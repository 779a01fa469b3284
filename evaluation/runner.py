"""Run a held-out QA set through each route of a running Serve app and score it.

    from evaluation import EvalSettings, run_eval
    result = run_eval("http://127.0.0.1:8000", load_qa("qa.jsonl"),
                      EvalSettings(finetuned_adapter="ft-v1", hybrid_adapter="raft-v1"))
    write_report(result, "results/eval/today")

The loop is: for each route, for each question, ask (greedy, fixed seed; ``concurrency``
requests in flight) and score the answer; then per route the mean of each score with a bootstrap interval, latency p50/p99 and
tokens/s; then paired differences between every two routes; then the recommendation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import combinations
from typing import Literal

from pydantic import Field

from modeling.rag_prompt import final_answer
from modeling.settings import StrictModel
from evaluation import metrics
from evaluation.client import ROUTES, EndpointClient, RouteAnswer, RouteSpec, route_specs
from evaluation.recommend import Recommendation, recommend
from evaluation.stats import Estimate, bootstrap_mean, paired_difference, percentile
from qa import QAItem

# Quality metrics get intervals and paired comparisons; retrieval/citation ones exist only on RAG routes.
QUALITY_METRICS = ("exact_match", "f1", "contains_fact", "retrieval_hit", "citation_correct")
DIAGNOSTIC_METRICS = ("cited", "abstained")
METRICS = QUALITY_METRICS + DIAGNOSTIC_METRICS


class EvalSettings(StrictModel):
    routes: tuple[str, ...] = ROUTES
    finetuned_adapter: str | None = Field(None, description="adapter for the fine-tuned-only route")
    hybrid_adapter: str | None = Field(None, description="adapter for the hybrid route (RAFT-trained)")
    max_tokens: int = Field(64, ge=1, le=4096)
    top_k: int | None = Field(None, ge=1, le=50, description="passages per RAG request; None = the server's")
    seed: int = 0
    warmup: int = Field(1, ge=0, description="untimed requests per route first (loads the adapter)")
    concurrency: int = Field(1, ge=1, le=64, description="requests in flight; 1 = clean per-request latency, "
                             "more = faster runs (the server batches them) with latency that includes queueing")
    resamples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    decision_metric: Literal["contains_fact", "f1", "exact_match"] = "contains_fact"
    data_changes: bool = Field(False, description="the documents change over time (forces a retrieval route)")
    timeout_s: float = Field(300.0, gt=0)


@dataclass
class Record:
    """One question on one route: the answer, what was retrieved, and its scores."""

    qa_id: str
    route: str
    question: str
    gold: str
    answer: str
    sources: list[dict]
    latency_s: float
    completion_tokens: int
    error: str | None
    scores: dict[str, float | None]
    gold_source: str | None = None  # the item's gold document (answer type: table or text)


TABLE_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".tsv")


def answer_type(gold_source: str | None) -> str:
    """``table`` when the gold fact sits in a structured file, ``text`` otherwise (``unknown`` without one)."""
    if not gold_source:
        return "unknown"
    return "table" if gold_source.lower().endswith(TABLE_SUFFIXES) else "text"


def breakdown(by_route: dict[str, list[Record]], metric: str = "contains_fact") -> dict[str, dict]:
    """Where answers fail, per route: ``metric`` given a retrieval hit / miss, and per answer type.

    Separates a reading problem (the gold passage was retrieved, the answer is still wrong) from a
    retrieval problem, and table facts from text facts. Plain means with their counts.
    """
    out: dict[str, dict] = {}
    for route, records in by_route.items():
        groups: dict[str, list[float]] = {}
        for r in records:
            value = r.scores.get(metric)
            if value is None:
                continue
            groups.setdefault(f"type:{answer_type(r.gold_source)}", []).append(value)
            hit = r.scores.get("retrieval_hit")
            if hit is not None:
                groups.setdefault("given retrieval hit" if hit else "given retrieval miss", []).append(value)
                groups.setdefault(f"type:{answer_type(r.gold_source)}, given retrieval hit" if hit
                                  else f"type:{answer_type(r.gold_source)}, given retrieval miss", []).append(value)
        out[route] = {name: {"mean": sum(v) / len(v), "n": len(v)} for name, v in sorted(groups.items())}
    return out


@dataclass
class RouteSummary:
    route: str
    model: str
    rag: bool
    questions: int
    errors: int
    metrics: dict[str, Estimate | None]
    latency_p50_s: float
    latency_p99_s: float
    tokens_per_s: float

    def to_dict(self) -> dict:
        data = asdict(self)
        data["metrics"] = {k: (v.to_dict() if v else None) for k, v in self.metrics.items()}
        return data


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    difference: Estimate  # mean of a - b over the questions scored on both

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "metric": self.metric, **self.difference.to_dict()}


@dataclass
class EvalResult:
    settings: EvalSettings
    endpoint: str
    dataset: str
    records: list[Record]
    summaries: dict[str, RouteSummary]
    comparisons: list[Comparison]
    recommendation: Recommendation
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "dataset": self.dataset,
            "settings": self.settings.model_dump(mode="json"),
            "meta": self.meta,
            "routes": {name: s.to_dict() for name, s in self.summaries.items()},
            "comparisons": [c.to_dict() for c in self.comparisons],
            "recommendation": self.recommendation.to_dict(),
        }


def score(item: QAItem, spec: RouteSpec, answer: RouteAnswer) -> dict[str, float | None]:
    """All per-answer scores; retrieval and citation scores are None on routes without retrieval.

    Answer quality is scored on the short answer (``final_answer``: after a quoted span, if the
    reply quotes one), so a quote that copies the fact never counts as stating it.
    """
    text = answer.text
    short = final_answer(text)
    return {
        "exact_match": metrics.exact_match(short, item.answer),
        "f1": metrics.token_f1(short, item.answer),
        "contains_fact": metrics.contains_fact(short, item.gold_fact),
        "retrieval_hit": metrics.retrieval_hit(answer.sources, item.source) if spec.rag else None,
        "citation_correct": metrics.citation_correct(text, answer.sources, item.gold_fact) if spec.rag else None,
        "cited": float(bool(metrics.cited_refs(text))),
        "abstained": metrics.abstained(text),
    }


def make_record(item: QAItem, spec: RouteSpec, answer: RouteAnswer) -> Record:
    return Record(
        item.id, spec.name, item.question, item.answer, answer.text,
        [{"ref": s.ref, "source": s.source, "chunk_id": s.chunk_id} for s in answer.sources],
        round(answer.latency_s, 4), answer.completion_tokens, answer.error, score(item, spec, answer), item.source,
    )


def summarise(spec: RouteSpec, records: Sequence[Record], settings: EvalSettings) -> RouteSummary:
    estimates: dict[str, Estimate | None] = {}
    for name in METRICS:
        values = [r.scores[name] for r in records if r.scores[name] is not None]
        estimates[name] = (
            bootstrap_mean(values, resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed)
            if values else None
        )
    answered = [r for r in records if r.error is None]
    latencies = [r.latency_s for r in answered] or [0.0]
    seconds = sum(r.latency_s for r in answered)
    return RouteSummary(
        route=spec.name, model=spec.model, rag=spec.rag, questions=len(records), errors=len(records) - len(answered),
        metrics=estimates, latency_p50_s=percentile(latencies, 50), latency_p99_s=percentile(latencies, 99),
        tokens_per_s=sum(r.completion_tokens for r in answered) / seconds if seconds else 0.0,
    )


def compare(by_route: dict[str, list[Record]], settings: EvalSettings) -> list[Comparison]:
    """Paired differences ``a - b`` for every two routes and quality metric; ``a`` is the later
    route in ROUTES order (rag - base, ..., hybrid - finetuned), so hybrid is always ``a``."""
    out = []
    order = [r for r in ROUTES if r in by_route]
    for earlier, later in combinations(order, 2):
        for name in QUALITY_METRICS:
            d = paired_difference(
                [r.scores[name] for r in by_route[later]], [r.scores[name] for r in by_route[earlier]],
                resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed,
            )
            if d is not None:
                out.append(Comparison(later, earlier, name, d))
    return out


def _ask(client: EndpointClient, spec: RouteSpec, item: QAItem, settings: EvalSettings) -> RouteAnswer:
    return client.ask(spec, item.question, max_tokens=settings.max_tokens, top_k=settings.top_k, seed=settings.seed)


def run_eval(
    base_url: str,
    items: Sequence[QAItem],
    settings: EvalSettings | None = None,
    *,
    api_key: str | None = None,
    dataset: str = "",
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> EvalResult:
    """Ask every question on every route of the app at ``base_url``; score, aggregate, recommend."""
    settings = settings or EvalSettings()
    specs = route_specs(settings.routes, settings.finetuned_adapter, settings.hybrid_adapter)
    if not items:
        raise ValueError("no questions to evaluate")
    by_route: dict[str, list[Record]] = {}
    with EndpointClient(base_url, api_key, settings.timeout_s) as client:
        client.check(specs)
        for spec in specs:
            for item in items[: settings.warmup]:
                _ask(client, spec, item, settings)
            records = []
            with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
                answers = pool.map(partial(_ask, client, spec, settings=settings), items)  # keeps question order
                for number, (item, answer) in enumerate(zip(items, answers), start=1):
                    records.append(make_record(item, spec, answer))
                    if number % 10 == 0 or number == len(items):
                        log(f"[{spec.name}] {number}/{len(items)} questions")
            by_route[spec.name] = records
    return aggregate(specs, by_route, settings, endpoint=base_url, dataset=dataset)


def aggregate(
    specs: Sequence[RouteSpec], by_route: dict[str, list[Record]], settings: EvalSettings, *, endpoint: str, dataset: str
) -> EvalResult:
    """Scored records per route -> per-route summaries, paired comparisons and the recommendation."""
    summaries = {spec.name: summarise(spec, by_route[spec.name], settings) for spec in specs}
    comparisons = compare(by_route, settings)
    decision = [c for c in comparisons if c.metric == settings.decision_metric]
    recommendation = recommend(
        {name: s.metrics[settings.decision_metric] for name, s in summaries.items()},
        {(c.a, c.b): c.difference for c in decision},
        metric=settings.decision_metric, confidence=settings.confidence, data_changes=settings.data_changes,
    )
    questions = len(next(iter(by_route.values()), []))
    return EvalResult(settings, endpoint, dataset, [r for rs in by_route.values() for r in rs], summaries,
                      comparisons, recommendation,
                      {"questions": questions, "breakdown": breakdown(by_route, settings.decision_metric)})

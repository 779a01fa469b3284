"""Step 4: the four routes on the held-out questions, a report with a chart and a recommendation."""

from __future__ import annotations

from pathlib import Path

from evaluation.client import route_specs
from evaluation.report import read_records, write_report
from evaluation.runner import EvalResult, EvalSettings, Record, aggregate, run_eval
from qa import load_qa

from pipeline.datasets import seeded_sample
from pipeline.progress import say
from pipeline.reuse import evaluation_fingerprint
from pipeline.settings import PipelineSettings

FINGERPRINT_FILE = "inputs.sha256"  # what the stored answers were made from

COLUMNS = ("contains_fact", "f1", "exact_match", "retrieval_hit", "citation_correct")


def comparison_table(result: EvalResult) -> str:
    """A fixed-width table of the headline metrics (point estimate and 95% interval)."""
    head = f"{'route':<10} " + " ".join(f"{c:>22}" for c in COLUMNS) + f" {'p50 s':>7} {'tok/s':>7}"
    lines = [head, "-" * len(head)]
    for name, summary in result.summaries.items():
        cells = []
        for column in COLUMNS:
            est = summary.metrics.get(column)
            cells.append(f"{'-':>22}" if est is None else f"{f'{est.mean:.2f} [{est.low:.2f}, {est.high:.2f}]':>22}")
        lines.append(f"{name:<10} " + " ".join(cells) + f" {summary.latency_p50_s:>7.2f} {summary.tokens_per_s:>7.1f}")
    return "\n".join(lines)


def reusable_records(out_dir: Path, fingerprint: str, items: list, routes: list[str]) -> list[Record] | None:
    """The stored answers when they were made from exactly these inputs and cover every question."""
    stamp, answers = out_dir / FINGERPRINT_FILE, out_dir / "answers.jsonl"
    if not (stamp.is_file() and answers.is_file()) or stamp.read_text().strip() != fingerprint:
        return None
    records = read_records(answers)
    wanted = {(route, item.id) for route in routes for item in items}
    return records if {(r.route, r.qa_id) for r in records} == wanted else None


def evaluate_routes(url: str, settings: PipelineSettings, *, reevaluate: bool = False) -> tuple[EvalResult, dict[str, Path]]:
    items = seeded_sample(load_qa(settings.company_path(settings.qa_test)), settings.eval.limit, settings.eval.seed)
    eval_settings = EvalSettings(
        routes=settings.eval.routes,
        finetuned_adapter=settings.finetuned.name,
        hybrid_adapter=settings.hybrid.name,
        max_tokens=settings.eval.max_tokens,
        concurrency=settings.eval.concurrency,
        resamples=settings.eval.resamples,
    )
    dataset = f"{settings.name} held-out questions ({settings.qa_test})"
    out_dir = settings.work / "eval"
    fingerprint = evaluation_fingerprint(settings, eval_settings.model_dump(mode="json"))
    specs = route_specs(eval_settings.routes, eval_settings.finetuned_adapter, eval_settings.hybrid_adapter)
    stored = None if reevaluate else reusable_records(out_dir, fingerprint, items, [s.name for s in specs])
    if stored is not None:
        say(f"models, documents, questions, code and eval settings are unchanged since the last evaluation: "
            f"re-scoring its {len(stored)} stored answers ({out_dir / 'answers.jsonl'}; --reevaluate asks again)")
        by_route = {spec.name: [r for r in stored if r.route == spec.name] for spec in specs}
        result = aggregate(specs, by_route, eval_settings, endpoint=url, dataset=dataset)
    else:
        result = run_eval(url, items, eval_settings, dataset=dataset, log=say)
    paths = write_report(result, out_dir)
    (out_dir / FINGERPRINT_FILE).write_text(fingerprint + "\n")
    say(comparison_table(result))
    for name, summary in result.summaries.items():
        if summary.errors:
            failed = next(r for r in result.records if r.route == name and r.error)
            say(f"WARNING: route {name} failed on {summary.errors} of {summary.questions} questions "
                f"(scored as wrong), e.g.: {failed.error[:300]}")
    rec = result.recommendation
    say(f"recommendation: {rec.route or 'none'}")
    for reason in rec.reasons:
        say(f"  - {reason}")
    say(f"report: {paths['report']}  chart: {paths['chart']}")
    return result, paths

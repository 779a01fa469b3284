"""Step 4: the four routes on the held-out questions, a report with a chart and a recommendation."""

from __future__ import annotations

from pathlib import Path

from serve.eval.report import write_report
from serve.eval.runner import EvalResult, EvalSettings, run_eval
from train.qa import load_qa

from pipeline.progress import say
from pipeline.settings import PipelineSettings

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


def evaluate_routes(url: str, settings: PipelineSettings) -> tuple[EvalResult, dict[str, Path]]:
    items = load_qa(settings.company_path(settings.qa_test))[: settings.eval.limit]
    result = run_eval(
        url,
        items,
        EvalSettings(
            finetuned_adapter=settings.finetuned.name,
            hybrid_adapter=settings.hybrid.name,
            max_tokens=settings.eval.max_tokens,
            concurrency=settings.eval.concurrency,
            resamples=settings.eval.resamples,
        ),
        dataset=f"{settings.name} held-out questions ({settings.qa_test})",
        log=say,
    )
    paths = write_report(result, settings.work / "eval")
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

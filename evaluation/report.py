"""The evaluation's outputs: ``report.md``, ``routes.png``, ``metrics.json`` and ``answers.jsonl``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from evaluation.chart import LABELS, write_chart
from evaluation.recommend import RULES
from evaluation.runner import QUALITY_METRICS, EvalResult, Record
from evaluation.stats import Estimate

ROUTE_MEANING = {"base": "base model, no retrieval", "rag": "base model + retrieval",
                 "finetuned": "adapter, no retrieval", "hybrid": "adapter + retrieval"}


def _cell(estimate: Estimate | None, signed: bool = False) -> str:
    if estimate is None:
        return "—"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    text = f"{fmt.format(estimate.mean)} [{fmt.format(estimate.low)}, {fmt.format(estimate.high)}]"
    return f"**{text}**" if signed and estimate.excludes_zero else text


def _escape(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|") or "(empty)"


def hybrid_verdict(result: EvalResult) -> str:
    """Does hybrid beat RAG-only and fine-tuned-only on the decision metric? Said plainly, with numbers."""
    metric = result.settings.decision_metric
    diffs = {(c.a, c.b): c.difference for c in result.comparisons if c.metric == metric}
    if "hybrid" not in result.summaries:
        return "The hybrid route was not evaluated."
    lines = []
    wins = []
    for other in ("rag", "finetuned"):
        d = diffs.get(("hybrid", other))
        if d is None:
            lines.append(f"- hybrid vs {other}: not evaluated")
            continue
        won = d.low > 0
        wins.append(won)
        state = "beats it" if won else ("is worse" if d.high < 0 else "no measurable difference (the interval includes 0)")
        lines.append(f"- hybrid vs {other}: {_cell(d, signed=True)} {metric} -> {state}")
    if wins and all(wins):
        head = "**Yes**: the hybrid route beats both RAG-only and fine-tuned-only on " + metric + "."
    else:
        head = (f"**No**: the hybrid route does not measurably beat both RAG-only and fine-tuned-only on {metric}. "
                "Look at the retrieval hit rate (hybrid cannot beat RAG when retrieval misses the gold document), "
                "the abstention rate (an adapter trained to abstain without the gold passage), and the number of "
                "questions (a wide interval means too few to tell).")
    return "\n".join([head, "", *lines])


def breakdown_table(result: EvalResult) -> list[str]:
    """Decision metric given a retrieval hit / miss and per answer type (table vs text), per route."""
    found = result.meta.get("breakdown") or {}
    groups = sorted({g for per_route in found.values() for g in per_route}, key=lambda g: (g.count(","), g))
    if not groups:
        return []
    metric = result.settings.decision_metric
    out = ["", f"### Where answers fail ({metric}: mean over the questions in each group, n in parentheses)", "",
           "| route | " + " | ".join(groups) + " |", "|" + " --- |" * (len(groups) + 1)]
    for route, per_route in found.items():
        cells = [f"{per_route[g]['mean']:.3f} ({per_route[g]['n']})" if g in per_route else "—" for g in groups]
        out.append(f"| {route} | " + " | ".join(cells) + " |")
    return out


def render_markdown(result: EvalResult, chart_name: str = "routes.png") -> str:
    s = result.settings
    rec = result.recommendation
    out = [f"# Route evaluation{': ' + result.dataset if result.dataset else ''}", ""]
    out.append(
        f"{result.meta.get('questions', '?')} held-out questions against `{result.endpoint}`; greedy decoding, "
        f"max_tokens={s.max_tokens}, seed={s.seed}, {s.concurrency} request(s) in flight. Intervals: {s.confidence:.0%} percentile bootstrap over "
        f"questions ({s.resamples} resamples, seed {s.seed}); paired for differences."
    )
    out += ["", "| route | what it is | model |", "| --- | --- | --- |"]
    out += [f"| {r} | {ROUTE_MEANING[r]} | `{x.model}` |" for r, x in result.summaries.items()]

    out += ["", f"## Recommendation: **{(rec.route or 'none').upper()}**", "",
            f"Decision metric: `{rec.metric}`. Rules: {RULES}.", ""]
    out += [f"- {reason}" for reason in rec.reasons]

    out += ["", "## Results per route", ""]
    header = ["route", *[LABELS[m] for m in QUALITY_METRICS], "latency p50 (s)", "latency p99 (s)", "tokens/s", "errors"]
    out += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for route, x in result.summaries.items():
        cells = [route, *[_cell(x.metrics[m]) for m in QUALITY_METRICS],
                 f"{x.latency_p50_s:.2f}", f"{x.latency_p99_s:.2f}", f"{x.tokens_per_s:.1f}", f"{x.errors}/{x.questions}"]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"![routes side by side]({chart_name})", ""]

    out += ["## Paired differences", "",
            "Row route minus the other, on the same questions; **bold**: the interval excludes 0 (a real difference).", ""]
    out += ["| comparison | " + " | ".join(LABELS[m] for m in QUALITY_METRICS) + " |",
            "|" + " --- |" * (len(QUALITY_METRICS) + 1)]
    pairs = list(dict.fromkeys((c.a, c.b) for c in result.comparisons))
    by_key = {(c.a, c.b, c.metric): c.difference for c in result.comparisons}
    for a, b in sorted(pairs, key=lambda p: (p[0] != "hybrid", p)):
        out.append(f"| {a} − {b} | " + " | ".join(_cell(by_key.get((a, b, m)), signed=True) for m in QUALITY_METRICS) + " |")

    out += ["", "## Does the hybrid beat RAG-only and fine-tuned-only?", "", hybrid_verdict(result), ""]

    out += ["## Diagnostics", "", "| route | answers citing [n] | answers saying they do not know |", "| --- | --- | --- |"]
    for route, x in result.summaries.items():
        out.append(f"| {route} | {_cell(x.metrics['cited'])} | {_cell(x.metrics['abstained'])} |")
    out += breakdown_table(result)

    out += ["", "## What the numbers mean", "",
            "- **exact match / token F1**: SQuAD normalisation (case, punctuation, articles), citations `[n]` removed.",
            "- **contains fact**: the answer states the item's `fact` (or the whole gold answer when no fact is given).",
            "- **retrieval hit**: the gold source document is among the passages retrieved for the question.",
            "- **citation correct**: the answer cites at least one `[n]`, every cited number is a passage it was "
            "given, and a cited passage states the fact (uncited answers score 0).",
            "- **latency / tokens/s**: measured by the client per request, end to end (retrieval + generation + "
            "HTTP), after a warm-up; with more than one request in flight it includes queueing and batching. "
            "tokens/s = completion tokens / request seconds.",
            ""]

    out += ["## Sample answers", ""]
    routes = list(result.summaries)
    out += ["| question | gold | " + " | ".join(routes) + " |", "|" + " --- |" * (len(routes) + 2)]
    by_question: dict[str, dict[str, str]] = {}
    gold: dict[str, tuple[str, str]] = {}
    for r in result.records:
        by_question.setdefault(r.qa_id, {})[r.route] = r.answer if r.error is None else f"ERROR: {r.error}"
        gold[r.qa_id] = (r.question, r.gold)
    for qa_id in list(by_question)[:8]:
        question, answer = gold[qa_id]
        out.append(f"| {_escape(question, 100)} | {_escape(answer, 80)} | "
                   + " | ".join(_escape(by_question[qa_id].get(route, "")) for route in routes) + " |")
    out += ["", "All answers: `answers.jsonl`; all numbers: `metrics.json`.", ""]
    return "\n".join(out)


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the four files into ``out_dir`` (created); returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": out / "report.md", "chart": out / "routes.png",
             "metrics": out / "metrics.json", "answers": out / "answers.jsonl"}
    write_chart(result, paths["chart"])
    paths["metrics"].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    paths["answers"].write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in result.records))
    paths["report"].write_text(render_markdown(result, paths["chart"].name))
    return paths


def read_records(path: str | Path) -> list[Record]:
    """The records ``write_report`` stored in ``answers.jsonl`` (to re-score them without asking again)."""
    with open(path, encoding="utf-8") as handle:
        return [Record(**json.loads(line)) for line in handle if line.strip()]

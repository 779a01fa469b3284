"""One call from a QA file to a report folder: what ``python -m evaluation`` and pipelines run.

    from evaluation import EvalSettings, evaluate
    result, paths = evaluate("http://127.0.0.1:8000", "heldout.jsonl", "results/eval/run1",
                             EvalSettings(finetuned_adapter="ft-v1", hybrid_adapter="raft-v1"))
    print(result.recommendation.route, paths["report"])
"""

from __future__ import annotations

from pathlib import Path

from evaluation.report import write_report
from evaluation.runner import EvalResult, EvalSettings, run_eval
from qa import load_qa


def evaluate(
    base_url: str,
    qa_path: str | Path,
    out_dir: str | Path,
    settings: EvalSettings | None = None,
    *,
    api_key: str | None = None,
    limit: int | None = None,
    title: str | None = None,
) -> tuple[EvalResult, dict[str, Path]]:
    """Load the QA file (first ``limit`` questions), run every route, write the report files."""
    items = load_qa(qa_path)[:limit]
    result = run_eval(base_url, items, settings, api_key=api_key, dataset=title or Path(qa_path).name)
    return result, write_report(result, out_dir)

"""Paired comparison of routes across two pipeline evaluations on the same held-out questions.

The documents-only measurement trains a hybrid adapter on questions built from the documents
(``qa_train: null``) and evaluates it in a second work folder; this compares its answers with the
first run's routes (the train-split hybrid, RAG-only) question by question, with the same paired
bootstrap the evaluation uses (``evaluation.stats.paired_difference``).

    python benchmarks/eval/compare_runs.py \\
        synthetic=data/pipeline/covidqa-docs/eval/answers.jsonl:hybrid \\
        train=data/pipeline/covidqa/eval/answers.jsonl:hybrid \\
        rag=data/pipeline/covidqa/eval/answers.jsonl:rag [--metric contains_fact] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

from evaluation.report import read_records
from evaluation.stats import bootstrap_mean, paired_difference


def load(spec: str) -> tuple[str, dict[str, float | None]]:
    """``label=answers.jsonl:route`` -> (label, {question id: score})."""
    label, _, rest = spec.partition("=")
    path, _, route = rest.rpartition(":")
    records = [r for r in read_records(path) if r.route == route]
    if not records:
        raise SystemExit(f"{path} holds no answers of route {route!r}")
    return label, {r.qa_id: r.scores for r in records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="label=path/to/answers.jsonl:route")
    parser.add_argument("--metric", default="contains_fact")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    runs = dict(load(spec) for spec in args.runs)
    common = sorted(set.intersection(*(set(scores) for scores in runs.values())))
    if not common:
        raise SystemExit("the runs share no question")
    out: dict = {"metric": args.metric, "questions": len(common), "routes": {}, "differences": {}}
    for label, scores in runs.items():
        estimate = bootstrap_mean([scores[q][args.metric] for q in common], resamples=args.resamples)
        out["routes"][label] = estimate.to_dict()
        print(f"{label:<12} {estimate.mean:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]")
    for a, b in combinations(runs, 2):
        d = paired_difference([runs[a][q][args.metric] for q in common], [runs[b][q][args.metric] for q in common],
                              resamples=args.resamples)
        out["differences"][f"{a} - {b}"] = d.to_dict()
        verdict = "better" if d.low > 0 else "worse" if d.high < 0 else "no measurable difference"
        print(f"{a} - {b}: {d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] -> {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

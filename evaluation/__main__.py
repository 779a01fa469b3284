"""``python -m evaluation``: compare base, RAG, fine-tuned and hybrid on a held-out QA set.

    python -m evaluation --qa heldout.jsonl --endpoint http://127.0.0.1:8000 \\
        --finetuned-adapter ft-v1 --hybrid-adapter raft-v1 --out results/eval/run1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__.splitlines()[0].split(": ", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qa", required=True, help="held-out QA JSONL: {id, question, answer, source?, fact?} per line")
    parser.add_argument("--endpoint", default="http://127.0.0.1:8000", help="base URL of the running Serve app")
    parser.add_argument("--api-key", default=os.environ.get("EXPERT_API_KEY"), help="bearer key (default: $EXPERT_API_KEY)")
    parser.add_argument("--routes", default="base,rag,finetuned,hybrid", help="comma-separated subset of the four routes")
    parser.add_argument("--finetuned-adapter", default=None, help="adapter of the fine-tuned-only route (instruction data)")
    parser.add_argument("--hybrid-adapter", default=None, help="adapter of the hybrid route (RAFT data)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=None, help="passages per RAG request (default: the server's)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests in flight (default 1: clean latency; more runs faster, the server batches)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--metric", default="contains_fact", choices=["contains_fact", "f1", "exact_match"],
                        help="decision metric of the recommendation")
    parser.add_argument("--data-changes", action="store_true",
                        help="the documents change over time: recommend a route with retrieval")
    parser.add_argument("--title", default=None, help="dataset name in the report (default: the QA file name)")
    parser.add_argument("--out", default=None, help="output folder (default: results/eval/<timestamp>)")
    args = parser.parse_args(argv)

    from evaluation.client import EvalError
    from evaluation.evaluate import evaluate
    from evaluation.runner import EvalSettings
    from qa import QAFormatError

    try:
        settings = EvalSettings(
            routes=tuple(r.strip() for r in args.routes.split(",") if r.strip()),
            finetuned_adapter=args.finetuned_adapter, hybrid_adapter=args.hybrid_adapter, max_tokens=args.max_tokens,
            top_k=args.top_k, seed=args.seed, resamples=args.resamples, decision_metric=args.metric,
            concurrency=args.concurrency,
            data_changes=args.data_changes,
        )
    except ValidationError as exc:
        parser.error(str(exc))
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    out = Path(args.out or Path("results") / "eval" / time.strftime("%Y%m%d-%H%M%S"))
    try:
        result, paths = evaluate(args.endpoint, args.qa, out, settings, api_key=args.api_key, limit=args.limit,
                                 title=args.title)
    except (QAFormatError, EvalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rec = result.recommendation
    print(f"recommendation: {rec.route or 'none'} ({rec.metric})")
    for reason in rec.reasons:
        print(f"  - {reason}")
    print(f"report: {paths['report']}  chart: {paths['chart']}  metrics: {paths['metrics']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

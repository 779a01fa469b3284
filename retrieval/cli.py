"""Command line: ``python -m retrieval ingest|search|delete|stats|eval``.

Every command takes ``--uri``/``--token``/``--collection``/``--config``, so the same commands
work on the embedded Milvus Lite file and on a Milvus server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub implicitly
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from retrieval.api import MODES, Retriever  # noqa: E402 - after the offline switch
from retrieval.config import load_config  # noqa: E402
from retrieval.errors import RetrievalError  # noqa: E402
from retrieval.render import hits_table, ingest_summary, stats_text  # noqa: E402


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML config (default: retrieval/configs/default.yaml)")
    common.add_argument("--uri", help="Milvus URI: a Milvus Lite .db file or http://host:19530 (env RETRIEVAL_MILVUS_URI)")
    common.add_argument("--token", help="Milvus token, 'user:password' or API key (env RETRIEVAL_MILVUS_TOKEN)")
    common.add_argument("--collection", help="collection name (default from config: knowledge)")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="python -m retrieval", description="Ingest documents into Milvus and search them.")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", parents=[common], help="ingest files and folders")
    ingest.add_argument("paths", nargs="+", help="files or folders (recursive)")
    ingest.add_argument("--sync", action="store_true", help="also delete documents that disappeared from the given folders")
    ingest.add_argument("--ray", action="store_true", help="parse/chunk/embed on Ray Data (actor pool of embedders)")
    ingest.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")
    ingest.add_argument("--source-root", help="record sources relative to this folder (stable across machines)")
    ingest.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    search = commands.add_parser("search", parents=[common], help="search the collection")
    search.add_argument("query")
    search.add_argument("--mode", choices=MODES, help="dense, bm25 or hybrid (default from config: hybrid)")
    search.add_argument("--top-k", type=int, help="number of results")
    search.add_argument("--filter", action="append", default=[], metavar="EXPR",
                        help="FIELD=VALUE, FIELD!=VALUE, FIELD>=N, 'FIELD in A,B'; fields: doc_id, source, title, "
                             "section, file_type, page, row, chunk_index, meta.<column>; repeat to AND")

    delete = commands.add_parser("delete", parents=[common], help="delete documents by id or source")
    delete.add_argument("--doc-id", action="append", default=[], help="document id (repeatable)")
    delete.add_argument("--source", action="append", default=[], help="source file or folder (repeatable)")
    delete.add_argument("--source-root", help="as given to ingest --source-root")

    commands.add_parser("stats", parents=[common], help="documents and chunks in the collection")

    evaluate = commands.add_parser("eval", parents=[common],
                                   help="recall@k / MRR / nDCG@10 on a BEIR folder or a company folder with qa/*.jsonl")
    evaluate.add_argument("dataset", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a company "
                                          "folder (document folders + qa/<split>.jsonl naming each gold source)")
    evaluate.add_argument("--split", default="test", help="qrels/<split>.tsv or qa/<split>.jsonl")
    evaluate.add_argument("--qa", help="company layout: comma-separated QA files relative to the folder "
                                       "(e.g. qa/train.jsonl,qa/test.jsonl; default qa/<split>.jsonl)")
    evaluate.add_argument("--documents", help="company layout: comma-separated folders to ingest (default: all but qa/)")
    evaluate.add_argument("--modes", default=None,
                          help="comma-separated; '<mode>+rerank' reranks that mode's candidates (default: dense, bm25, "
                               "hybrid, and hybrid+rerank when the config names a rerank.model)")
    evaluate.add_argument("--k", type=int, action="append", help="recall cut-offs (default 1, 5, 10, 100)")
    evaluate.add_argument("--max-queries", type=int, help="evaluate only the first N queries")
    evaluate.add_argument("--skip-ingest", action="store_true", help="the corpus is already in the collection")
    return parser


def _retriever(args: argparse.Namespace) -> Retriever:
    return Retriever(load_config(args.config), collection=args.collection, uri=args.uri, token=args.token)


def _print(args: argparse.Namespace, payload: object, text: str) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False, default=str) if args.json else text)


def _run(args: argparse.Namespace) -> int:
    with _retriever(args) as retriever:
        if args.command == "ingest":
            report = retriever.ingest(
                args.paths, sync=args.sync, use_ray=args.ray, ray_address=args.ray_address,
                source_root=args.source_root, progress=not args.no_progress and not args.json,
            )
            _print(args, report.to_dict(), ingest_summary(report))
            return 1 if report.errors else 0  # partial failure: the rest is ingested, but scripts must notice
        if args.command == "search":
            hits = retriever.search(args.query, mode=args.mode, top_k=args.top_k, filters=args.filter)
            _print(args, [h.to_dict() for h in hits], hits_table(hits))
            return 0
        if args.command == "delete":
            result = retriever.delete(doc_ids=args.doc_id, sources=args.source, source_root=args.source_root)
            _print(args, {"deleted": result.doc_ids, "sources": result.sources},
                   f"deleted {result.deleted} document(s)" + "".join(f"\n  {s}" for s in result.sources))
            return 0
        if args.command == "stats":
            stats = retriever.stats()
            _print(args, stats.to_dict(), stats_text(stats))
            return 0
        from retrieval.evaluation import run_eval_command

        return run_eval_command(retriever, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except RetrievalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""Retrieval quality on a dataset with gold relevance (BEIR layout), for dense, BM25 and hybrid.

BEIR layout: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id", "text"}) and
qrels/<split>.tsv (query-id, corpus-id, score). The corpus is ingested through the normal
pipeline (the JSONL loader keeps "_id" as metadata), so the numbers measure the real system.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from retrieval.api import Retriever
from retrieval.errors import RetrievalError

DEFAULT_CUTOFFS = (1, 5, 10, 100)


@dataclass
class Dataset:
    corpus_path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class ModeResult:
    mode: str
    queries: int
    recall: dict[int, float]
    mrr: float
    ndcg10: float
    seconds: float
    per_query_ms: float = field(default=0.0)


def load_beir(folder: str | Path, split: str = "test") -> Dataset:
    root = Path(folder)
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise RetrievalError(f"{needed} not found; a BEIR folder has corpus.jsonl, queries.jsonl and qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                continue  # header line
            if int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries = {}
    with open(root / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            if item["_id"] in qrels:
                queries[item["_id"]] = item["text"]
    return Dataset(root / "corpus.jsonl", queries, qrels)


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: dict[str, int]) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked) if doc in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG with linear gains, as trec_eval's ndcg_cut (what BEIR reports)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sum(gain / math.log2(i + 2) for i, gain in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def ranked_ids(retriever: Retriever, query: str, mode: str, depth: int) -> list[str]:
    """Corpus ids in rank order (a document counts at its best-ranked chunk)."""
    seen: dict[str, None] = {}
    for hit in retriever.search(query, mode=mode, top_k=depth):
        doc = str(hit.meta.get("_id", hit.doc_id))
        seen.setdefault(doc, None)
    return list(seen)


def evaluate(retriever: Retriever, dataset: Dataset, modes: Sequence[str], cutoffs: Sequence[int], max_queries: int | None = None) -> list[ModeResult]:
    query_ids = sorted(dataset.queries)[:max_queries] if max_queries else sorted(dataset.queries)
    depth = max(max(cutoffs), 10)
    results = []
    for mode in modes:
        started = time.perf_counter()
        recall = {k: 0.0 for k in cutoffs}
        mrr = ndcg = 0.0
        for qid in query_ids:
            ranked = ranked_ids(retriever, dataset.queries[qid], mode, depth)
            relevant = dataset.qrels[qid]
            for k in cutoffs:
                recall[k] += recall_at(ranked, relevant, k)
            mrr += reciprocal_rank(ranked, relevant)
            ndcg += ndcg_at(ranked, relevant, 10)
        n = max(1, len(query_ids))
        seconds = time.perf_counter() - started
        results.append(ModeResult(mode, len(query_ids), {k: v / n for k, v in recall.items()}, mrr / n, ndcg / n, seconds, 1000 * seconds / n))
    return results


def results_table(results: Sequence[ModeResult]) -> str:
    cutoffs = list(results[0].recall) if results else []
    header = "| mode | queries | " + " | ".join(f"recall@{k}" for k in cutoffs) + " | MRR | nDCG@10 | ms/query |"
    lines = [header, "|" + "---|" * (len(cutoffs) + 5)]
    for r in results:
        recalls = " | ".join(f"{r.recall[k]:.4f}" for k in cutoffs)
        lines.append(f"| {r.mode} | {r.queries} | {recalls} | {r.mrr:.4f} | {r.ndcg10:.4f} | {r.per_query_ms:.1f} |")
    return "\n".join(lines)


def run_eval_command(retriever: Retriever, args: argparse.Namespace) -> int:
    dataset = load_beir(args.dataset, args.split)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.skip_ingest:
        report = retriever.ingest([dataset.corpus_path], progress=not args.json)
        print(report.summary())
    results = evaluate(retriever, dataset, modes, tuple(args.k or DEFAULT_CUTOFFS), args.max_queries)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        print(results_table(results))
    return 0

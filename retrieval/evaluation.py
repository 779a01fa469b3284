"""Retrieval quality on a dataset with gold relevance, for dense, BM25, hybrid and hybrid + rerank.

Two layouts are read:

* BEIR: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id", "text"}) and
  qrels/<split>.tsv (query-id, corpus-id, score); the JSONL loader keeps "_id" as metadata.
* a company folder (the layout of ``examples/quillfen-windworks`` and ``../shared/datasets/*``):
  document folders plus ``qa/*.jsonl`` in the shared QA format, whose ``source`` names each
  question's gold document, which is exactly a relevance judgement. When the questions carry a
  ``fact``, ``answer@k`` also says how often a top-k chunk of the gold document states it.

The documents are ingested through the normal pipeline, so the numbers measure the real system.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from retrieval.api import Retriever
from retrieval.documents import doc_id_for
from retrieval.errors import RetrievalError
from retrieval.reports import Hit

DEFAULT_CUTOFFS = (1, 5, 10, 100)


@dataclass
class Dataset:
    corpus_path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    facts: dict[str, str] = field(default_factory=dict)  # query id -> what a gold chunk must state
    documents: list[Path] = field(default_factory=list)  # what to ingest (default: corpus_path)
    source_root: Path | None = None  # ingest sources relative to this (company layout)

    @property
    def ingest_paths(self) -> list[Path]:
        return self.documents or [self.corpus_path]


@dataclass
class ModeResult:
    mode: str
    queries: int
    recall: dict[int, float]
    mrr: float
    ndcg10: float
    seconds: float
    per_query_ms: float = field(default=0.0)
    hit: dict[int, float] = field(default_factory=dict)  # hit@k: a gold document among the first k CHUNKS
    answer: dict[int, float] = field(default_factory=dict)  # answer@k (company layout with facts)


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


def load_company(folder: str | Path, qa_files: Sequence[str] = ("qa/test.jsonl",),
                 documents: Sequence[str] | None = None) -> Dataset:
    """A company folder as a relevance dataset: each question's gold document is its ``source``.

    ``documents`` are the folders/files to ingest, relative to ``folder`` (default: every
    folder in it but ``qa/`` and hidden ones); sources are recorded relative to ``folder``,
    as the QA files name them.
    """
    from qa import QAFormatError, load_qa  # the shared QA format (imports nothing of ours)

    root = Path(folder)
    names = list(documents) if documents else sorted(p.name for p in root.iterdir()
                                                       if p.is_dir() and p.name != "qa" and not p.name.startswith("."))
    paths = [root / name for name in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing or not paths:
        raise RetrievalError(f"{root}: no documents to ingest ({', '.join(missing) or 'no folders besides qa/'}); "
                             "pass --documents with folders of the dataset")
    queries, qrels, facts = {}, {}, {}
    for name in qa_files:
        try:
            items = load_qa(root / name)
        except QAFormatError as exc:
            raise RetrievalError(str(exc)) from exc
        for item in items:
            if item.source:
                queries[item.id] = item.question
                qrels[item.id] = {doc_id_for(item.source): 1}
                facts[item.id] = item.gold_fact
    if not queries:
        raise RetrievalError(f"{root}: the QA files {', '.join(qa_files)} name no gold 'source'; nothing to score")
    return Dataset(root / qa_files[0], queries, qrels, facts, paths, root)


def load_dataset(folder: str | Path, split: str = "test", qa_files: Sequence[str] | None = None,
                 documents: Sequence[str] | None = None) -> Dataset:
    """BEIR when the folder has corpus.jsonl, else the company layout (qa/<split>.jsonl by default)."""
    root = Path(folder)
    if (root / "corpus.jsonl").is_file():
        return load_beir(root, split)
    if not (root / "qa").is_dir():
        raise RetrievalError(f"{root} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a company "
                             "folder (document folders + qa/*.jsonl)")
    return load_company(root, qa_files or (f"qa/{split}.jsonl",), documents)


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: dict[str, int]) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked) if doc in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG with linear gains, as trec_eval's ndcg_cut (what BEIR reports)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sum(gain / math.log2(i + 2) for i, gain in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def _doc_key(hit: Hit) -> str:
    return str(hit.meta.get("_id", hit.doc_id))


def ranked_ids(hits: Sequence[Hit]) -> list[str]:
    """Corpus ids in rank order (a document counts at its best-ranked chunk)."""
    return list(dict.fromkeys(_doc_key(hit) for hit in hits))


def _search(retriever: Retriever, query: str, mode: str, depth: int) -> list[Hit]:
    """``mode`` is a search mode, or ``<mode>+rerank`` for that mode's candidates reranked."""
    base, _, rerank = mode.partition("+")
    if rerank and rerank != "rerank":
        raise RetrievalError(f"unknown mode {mode!r}; use dense, bm25, hybrid, or any of them + '+rerank'")
    return retriever.search(query, mode=base, top_k=depth, rerank=bool(rerank))


def answer_at(hits: Sequence[Hit], relevant: dict[str, int], fact: str, k: int) -> float:
    """1 when a chunk among the first ``k`` comes from a gold document and states ``fact``."""
    from qa import mentions

    return float(any(_doc_key(h) in relevant and mentions(h.text, fact) for h in hits[:k]))


def evaluate(retriever: Retriever, dataset: Dataset, modes: Sequence[str], cutoffs: Sequence[int],
             max_queries: int | None = None, per_query: dict[str, dict[str, list[str]]] | None = None) -> list[ModeResult]:
    """Score each mode; ``per_query`` (if given) receives {mode: {query id: corpus id of each hit, in rank order}}."""
    query_ids = sorted(dataset.queries)[:max_queries] if max_queries else sorted(dataset.queries)
    depth = max(max(cutoffs), 10)
    results = []
    for mode in modes:
        started = time.perf_counter()
        recall = {k: 0.0 for k in cutoffs}
        hit = {k: 0.0 for k in cutoffs}
        answer = {k: 0.0 for k in cutoffs}
        mrr = ndcg = 0.0
        for qid in query_ids:
            hits = _search(retriever, dataset.queries[qid], mode, depth)
            ranked = ranked_ids(hits)
            if per_query is not None:
                per_query.setdefault(mode, {})[qid] = [_doc_key(h) for h in hits]
            relevant = dataset.qrels[qid]
            for k in cutoffs:
                recall[k] += recall_at(ranked, relevant, k)
                hit[k] += float(any(_doc_key(h) in relevant for h in hits[:k]))
                if qid in dataset.facts:
                    answer[k] += answer_at(hits, relevant, dataset.facts[qid], k)
            mrr += reciprocal_rank(ranked, relevant)
            ndcg += ndcg_at(ranked, relevant, 10)
        n = max(1, len(query_ids))
        with_facts = sum(1 for qid in query_ids if qid in dataset.facts)
        seconds = time.perf_counter() - started
        results.append(ModeResult(
            mode, len(query_ids), {k: v / n for k, v in recall.items()}, mrr / n, ndcg / n, seconds, 1000 * seconds / n,
            {k: v / n for k, v in hit.items()}, {k: v / with_facts for k, v in answer.items()} if with_facts else {},
        ))
    return results


def results_table(results: Sequence[ModeResult], chunk_columns: bool = True) -> str:
    """Markdown table: recall@k over documents, MRR, nDCG@10, then (company layout) hit@k and
    answer@k over the first k chunks, which is what a RAG prompt of top_k = k passages holds."""
    cutoffs = list(results[0].recall) if results else []
    answers = list(results[0].answer) if results and chunk_columns else []
    hits = cutoffs if answers else []
    header = ("| mode | queries | " + " | ".join(f"recall@{k}" for k in cutoffs) + " | MRR | nDCG@10 | "
              + "".join(f"hit@{k} | " for k in hits) + "".join(f"answer@{k} | " for k in answers) + "ms/query |")
    lines = [header, "|" + "---|" * (len(cutoffs) + len(hits) + len(answers) + 5)]
    for r in results:
        recalls = " | ".join(f"{r.recall[k]:.4f}" for k in cutoffs)
        chunk_hits = "".join(f"{r.hit[k]:.4f} | " for k in hits)
        found = "".join(f"{r.answer[k]:.4f} | " for k in answers)
        lines.append(f"| {r.mode} | {r.queries} | {recalls} | {r.mrr:.4f} | {r.ndcg10:.4f} | {chunk_hits}{found}"
                     f"{r.per_query_ms:.1f} |")
    return "\n".join(lines)


def run_eval_command(retriever: Retriever, args: argparse.Namespace) -> int:
    qa_files = [q.strip() for q in args.qa.split(",")] if args.qa else None
    documents = [d.strip() for d in args.documents.split(",")] if args.documents else None
    dataset = load_dataset(args.dataset, args.split, qa_files, documents)
    default = "dense,bm25,hybrid" + (",hybrid+rerank" if retriever.config.rerank.model else "")
    modes = [m.strip() for m in (args.modes or default).split(",") if m.strip()]
    if not args.skip_ingest:
        report = retriever.ingest(dataset.ingest_paths, source_root=dataset.source_root, progress=not args.json)
        print(report.summary(), file=sys.stderr if args.json else sys.stdout)
    results = evaluate(retriever, dataset, modes, tuple(args.k or DEFAULT_CUTOFFS), args.max_queries)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        print(results_table(results))
    return 0

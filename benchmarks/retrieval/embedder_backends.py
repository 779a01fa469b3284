"""Ingest throughput of the default embedder (MiniLM, torch fp32) against its int8-quantised variant,
at the same retrieval quality, on a real corpus.

The chunks are exactly those ingest makes (same loader, chunker, ``embedding_text``); each backend
embeds all of them (chunks/s, the ingest's bottleneck: 98 % of an ingest is embedding) and the
held-out questions, and dense retrieval quality is scored by exact cosine search over the same
chunks (gold document among the first k chunks), so the only difference is the backend.

    python benchmarks/retrieval/embedder_backends.py ../shared/datasets/covidqa --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from retrieval.chunking import chunk_document  # noqa: E402
from retrieval.config import ChunkingConfig, EmbedderConfig  # noqa: E402
from retrieval.embedding import SentenceTransformerEmbedder  # noqa: E402
from retrieval.evaluation import load_company  # noqa: E402
from retrieval.loaders import load_document  # noqa: E402
from retrieval.pipeline import discover  # noqa: E402
from retrieval.documents import doc_id_for  # noqa: E402
from retrieval.tokenization import token_counter_for  # noqa: E402


def corpus(folder: Path) -> tuple[list[str], list[str]]:
    """(embedding text, doc id) of every chunk ingest would make of the dataset's documents."""
    dataset = load_company(folder)
    files, _ = discover(dataset.ingest_paths)
    counter = token_counter_for(EmbedderConfig())
    texts, docs = [], []
    for path in files:
        document = load_document(path)
        source = path.resolve().relative_to(folder.resolve()).as_posix()
        for chunk in chunk_document(document, "v", ChunkingConfig(), counter):
            texts.append(chunk.embedding_text())
            docs.append(doc_id_for(source))
    return texts, docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(args.dataset)
    texts, docs = corpus(folder)
    test = load_company(folder)
    qids = sorted(test.queries)
    out = {"dataset": str(folder), "chunks": len(texts), "threads": args.threads, "backends": {}}
    for quantize in ("none", "int8"):
        embedder = SentenceTransformerEmbedder(EmbedderConfig(quantize=quantize))
        embedder.embed(texts[:64])  # warm-up
        started, cpu = time.perf_counter(), time.process_time()
        vectors = embedder.embed(texts)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        queries = embedder.embed([test.queries[q] for q in qids])
        ranked = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        hits = {k: float(np.mean([any(docs[i] in test.qrels[q] for i in row[:k]) for q, row in zip(qids, ranked)]))
                for k in (1, 4, 10)}
        out["backends"][quantize] = {"seconds": round(seconds, 1), "chunks_per_s": round(len(texts) / seconds, 1),
                                     "cpu_seconds": round(cpu_seconds, 1), "dense_hit": hits}
        print(f"{embedder.name}: {len(texts)} chunks in {seconds:.1f} s ({len(texts) / seconds:.1f} chunks/s, "
              f"{cpu_seconds:.0f} CPU-s); dense hit@1/4/10 {hits[1]:.4f} / {hits[4]:.4f} / {hits[10]:.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

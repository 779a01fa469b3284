"""Build a large knowledge-base collection (10k-100k chunks) without embedding every chunk.

Why: embedding 100k chunks with MiniLM on two shared CPU cores takes hours, but search latency
only needs a collection whose *shape* is real. So the rows go through the project's own write
path (DocumentWriter -> MilvusStore: the same schema, BM25 function, indexes, manifest protocol
and final flush as ``Retriever.ingest``), with

- text: distinct generated chunk-sized paragraphs (80-200 words, the chunker's 200-token size),
  in the real chunk record format of retrieval.pipeline, so BM25 sees realistic posting lists;
- dense: real MiniLM embeddings of the ingest benchmark's chunks, reused round-robin and perturbed
  with Gaussian noise then re-normalised, so the vectors keep the clustered geometry of real
  embeddings (what an HNSW graph's search cost depends on), not the easier/harder geometry of
  uniform random vectors.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from retrieval.config import MilvusConfig, RetrievalConfig
from retrieval.documents import Chunk, doc_id_for
from retrieval.pipeline import FileTask, _chunk_record  # the pipeline's own chunk->record shape
from retrieval.store import MilvusStore
from retrieval.writer import DocumentWriter

from synthetic_corpus import SECTIONS, chunk_texts
from timing import time_methods

VERSION = "bench00000000001"


def perturbed_vectors(pool: np.ndarray, count: int, noise: float, seed: int) -> tuple[np.ndarray, float]:
    """``count`` unit vectors: pool[i % len(pool)] + N(0, noise^2 I), re-normalised.

    Returns the vectors and their mean cosine to the pool vector they came from.
    """
    rng = np.random.default_rng(seed)
    base = pool[np.arange(count) % len(pool)]
    vectors = base + rng.normal(0.0, noise, size=base.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), float(np.mean(np.sum(vectors * base, axis=1)))


def _documents(count: int, chunks_per_doc: int, seed: int, vectors: np.ndarray) -> tuple[dict[str, FileTask], list[dict[str, Any]]]:
    rng = random.Random(seed + 3)
    tasks: dict[str, FileTask] = {}
    records: list[dict[str, Any]] = []
    texts = chunk_texts(count, seed)
    for first in range(0, count, chunks_per_doc):
        members = range(first, min(first + chunks_per_doc, count))
        asset = texts[first][0]
        source = f"bench/site_{(first // chunks_per_doc) % 8}/manual_{first // chunks_per_doc:06d}.md"
        doc_id = doc_id_for(source)
        tasks[doc_id] = FileTask(path=source, source=source, doc_id=doc_id, version=VERSION)
        title = f"Maintenance manual: {asset.equipment} {asset.code} ({asset.site})"
        offset = 0
        for index, position in enumerate(members):
            text = texts[position][1]
            chunk = Chunk(
                doc_id=doc_id, version=VERSION, chunk_index=index, chunk_count=len(members), source=source,
                file_type="markdown", title=title, section=f"{title} > {rng.choice(SECTIONS)}", page=-1, row=-1,
                start=offset, end=offset + len(text), text=text,
            )
            offset += len(text) + 2
            records.append(dict(_chunk_record(chunk), dense=vectors[position]))
    return tasks, records


def build_collection(
    uri: str,
    collection: str,
    chunks: int,
    pool: np.ndarray,
    *,
    noise: float = 0.02,
    chunks_per_doc: int = 20,
    seed: int = 0,
    config: RetrievalConfig | None = None,
    flush: bool = True,
) -> dict[str, Any]:
    """Write ``chunks`` rows into a fresh collection; returns timings (generate, write, flush).

    ``flush=False`` leaves the rows unflushed, as ingests did before ``MilvusStore.flush`` existed.
    """
    config = config or RetrievalConfig()
    started = time.perf_counter()
    vectors, mean_cosine = perturbed_vectors(pool, chunks, noise, seed)
    tasks, records = _documents(chunks, chunks_per_doc, seed, vectors)
    generated = time.perf_counter()
    store = MilvusStore(MilvusConfig(uri=uri, collection=collection))
    try:
        store.ensure(pool.shape[1], config.embedder.model)
        calls = time_methods(store, ["upsert_chunks", "write_manifest", "delete_other_versions"])
        committed: list[str] = []
        writer = DocumentWriter(store, tasks, {}, lambda result: committed.append(result.status))
        batch = config.ingest.write_batch_chunks
        for start in range(0, len(records), batch):
            writer.write(records[start : start + batch])
        written = time.perf_counter()
        if flush:
            store.flush()
        flushed = time.perf_counter()
        if writer.unfinished() or set(committed) != {"added"}:
            raise RuntimeError(f"bench collection incomplete: {len(writer.unfinished())} documents unfinished")
    finally:
        store.close()
    return {
        "chunks": chunks,
        "documents": len(tasks),
        "vector_pool": int(len(pool)),
        "noise_sigma": noise,
        "mean_cosine_to_pool_vector": round(mean_cosine, 4),
        "generate_s": round(generated - started, 2),
        "write_s": round(written - generated, 2),
        "write_rows_per_s": round(chunks / (written - generated), 1),
        "flush_s": round(flushed - written, 2),
        "write_by_call_s": {name: round(value, 2) for name, value in calls.items()},
    }

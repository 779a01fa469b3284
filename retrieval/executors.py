"""Executors: who runs the pipeline stages. Local = this process; Ray = Ray Data (ray_ingest.py).

Both yield batches of embedded records for the same DocumentWriter.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from retrieval.config import RetrievalConfig
from retrieval.embedding import Embedder
from retrieval.pipeline import FileTask, batched, embed_records, parse_records


def run_local(tasks: Sequence[FileTask], config: RetrievalConfig, embedder: Embedder) -> Iterator[list[dict[str, Any]]]:
    """Parse and chunk file by file, embed in batches of ``ingest.write_batch_chunks`` records."""
    records = (record for task in tasks for record in parse_records(task, config.chunking, config.embedder))
    for batch in batched(records, config.ingest.write_batch_chunks):
        yield embed_records(batch, embedder)

"""Ingest orchestration: plan (what changed), execute (local or Ray), write, and sync deletions.

Unchanged documents are recognised by their version (content hash + pipeline fingerprint) in the
manifest and never re-parsed; see writer.py for the crash-safe write protocol.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from retrieval.config import RetrievalConfig
from retrieval.embedding import Embedder
from retrieval.pipeline import FileTask, discover, make_task, pipeline_fingerprint, source_of
from retrieval.reports import FileResult, IngestReport
from retrieval.store import ManifestEntry, MilvusStore
from retrieval.writer import DocumentWriter

Executor = Callable[[Sequence[FileTask]], Iterator[list[dict[str, Any]]]]
EMBED_NODE_KEY = "_embed_node"  # set by the Ray executor on each record: which node embedded it


def delete_documents(store: MilvusStore, entries: Sequence[ManifestEntry]) -> None:
    """Three idempotent steps, so an interrupted delete is finished by the next run (recover)."""
    if not entries:
        return
    store.write_manifest([ManifestEntry(e.doc_id, e.source, e.version, "deleting", e.chunk_count, e.file_type, e.title) for e in entries])
    doc_ids = [e.doc_id for e in entries]
    store.delete_documents_chunks(doc_ids)
    store.delete_manifest(doc_ids)


def recover(store: MilvusStore) -> None:
    """Finish deletions a previous run was killed in the middle of."""
    delete_documents(store, [e for e in store.manifest().values() if e.state == "deleting"])


def _folder_prefix(folder: Path, source_root: Path | None) -> str:
    source = source_of(folder, source_root)
    return "" if source == "." else source.rstrip("/") + "/"


def ingest(
    paths: Sequence[str | Path],
    *,
    config: RetrievalConfig,
    store: MilvusStore,
    embedder: Embedder,
    executor: Executor,
    sync: bool = False,
    source_root: Path | None = None,
    progress: bool = False,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport()
    store.ensure(embedder.dimension, embedder.name)
    recover(store)
    files, problems = discover(paths)
    fingerprint = pipeline_fingerprint(config)
    tasks: dict[str, FileTask] = {}
    for path in files:
        try:
            task = make_task(path, source_root, fingerprint)
        except OSError as exc:
            problems.append((path, f"{path.name}: cannot read file: {exc}"))
            continue
        tasks.setdefault(task.doc_id, task)
    previous = store.manifest(list(tasks))
    todo = [t for t in tasks.values() if not (t.doc_id in previous and previous[t.doc_id].version == t.version and previous[t.doc_id].state == "done")]
    bar = tqdm(total=len(tasks) + len(problems), unit="file", desc="ingest", disable=not progress, leave=True)

    def record(result: FileResult) -> None:
        report.files.append(result)
        bar.update(1)
        if result.status == "error":
            bar.write(f"error: {result.error}")

    for path, message in problems:
        record(FileResult(source_of(path, source_root), "error", error=message))
    todo_ids = {t.doc_id for t in todo}
    for task in tasks.values():
        if task.doc_id not in todo_ids:
            record(FileResult(task.source, "unchanged", previous[task.doc_id].chunk_count, task.doc_id))
    if sync:
        folders = [Path(p) for p in paths if Path(p).is_dir()]
        prefixes = [_folder_prefix(folder, source_root) for folder in folders]
        gone = [
            entry for entry in store.manifest().values()
            if entry.doc_id not in tasks and any(entry.source.startswith(prefix) for prefix in prefixes)
        ]
        delete_documents(store, gone)
        for entry in gone:
            record(FileResult(entry.source, "deleted", entry.chunk_count, entry.doc_id))
    writer = DocumentWriter(store, {t.doc_id: t for t in todo}, previous, record)
    nodes: set[str] = set()
    for batch in executor(todo):
        nodes.update(r.pop(EMBED_NODE_KEY) for r in batch if EMBED_NODE_KEY in r)
        writer.write(batch)
        bar.set_postfix(chunks=writer.chunks_written)
    for doc_id in writer.unfinished():
        record(FileResult(tasks[doc_id].source, "error", doc_id=doc_id, error="pipeline returned no output for this file"))
    bar.close()
    if todo or report.counts.get("deleted"):
        store.flush()  # index what changed now, not at process exit (see MilvusStore.flush)
    report.chunks_written = writer.chunks_written
    report.embed_nodes = sorted(nodes)
    report.seconds = time.perf_counter() - started
    return report

"""DocumentWriter: applies embedded records to Milvus with the crash-safe commit protocol.

Per document, in this order:
  1. manifest row -> state "writing", new version   (intent; written before any chunk)
  2. upsert the new chunks (ids = doc_id:version:index, so a rerun rewrites, never duplicates)
  3. when all chunk_count chunks are in: delete the doc's chunks of any *other* version
  4. manifest row -> state "done"                   (the commit record)
A crash anywhere leaves the manifest not "done" for that version, so the next run redoes steps
1-4 for it; every step is idempotent, hence kill + rerun == one clean run. Old chunks are removed
only after the new ones are fully written, so a crash never loses the previous version either.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Callable

from retrieval.pipeline import MARKER_INDEX, FileTask
from retrieval.reports import FileResult
from retrieval.store import ManifestEntry, MilvusStore, chunk_row

# Fault injection for the kill-and-rerun test: exit abruptly (no cleanup) after N chunk batches.
CRASH_AFTER_BATCHES_ENV = "RETRIEVAL_CRASH_AFTER_BATCHES"


class DocumentWriter:
    def __init__(
        self,
        store: MilvusStore,
        tasks: dict[str, FileTask],
        previous: dict[str, ManifestEntry],
        on_result: Callable[[FileResult], None],
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._previous = previous
        self._on_result = on_result
        self._expected: dict[str, int] = {}
        self._received: dict[str, int] = defaultdict(int)
        self._labels: dict[str, tuple[str, str]] = {}
        self._marked: set[str] = set()
        self._finished: set[str] = set()
        self._batches = 0
        self._crash_after = int(os.environ.get(CRASH_AFTER_BATCHES_ENV, "0") or 0)
        self.chunks_written = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        chunks = [r for r in records if int(r["chunk_index"]) != MARKER_INDEX]
        for record in records:
            doc_id = record["doc_id"]
            self._expected[doc_id] = int(record["chunk_count"])
            self._labels.setdefault(doc_id, (record["file_type"], record["title"]))
            if record["error"]:
                self._finish(doc_id, FileResult(record["source"], "error", doc_id=doc_id, error=record["error"]))
        self._mark_writing(sorted({r["doc_id"] for r in chunks} - self._marked))
        self._store.upsert_chunks([chunk_row(r) for r in chunks])
        self.chunks_written += len(chunks)
        for record in chunks:
            self._received[record["doc_id"]] += 1
        self._commit([d for d, n in self._expected.items() if d not in self._finished and self._received[d] >= n])
        self._batches += 1
        if self._crash_after and self._batches >= self._crash_after:
            os._exit(137)

    def unfinished(self) -> list[str]:
        return [doc_id for doc_id in self._tasks if doc_id not in self._finished]

    def _entry(self, doc_id: str, state: str) -> ManifestEntry:
        task = self._tasks[doc_id]
        file_type, title = self._labels.get(doc_id, ("", ""))
        return ManifestEntry(doc_id, task.source, task.version, state, self._expected.get(doc_id, 0), file_type, title)

    def _mark_writing(self, doc_ids: list[str]) -> None:
        if doc_ids:
            self._store.write_manifest([self._entry(d, "writing") for d in doc_ids])
            self._marked.update(doc_ids)

    def _commit(self, doc_ids: list[str]) -> None:
        if not doc_ids:
            return
        self._mark_writing([d for d in doc_ids if d not in self._marked])
        replaced = {d: self._tasks[d].version for d in doc_ids if d in self._previous}
        self._store.delete_other_versions(replaced)
        self._store.write_manifest([self._entry(d, "done") for d in doc_ids])
        for doc_id in doc_ids:
            count = self._expected[doc_id]
            status = "empty" if count == 0 else ("updated" if doc_id in self._previous else "added")
            error = "no text could be extracted" if count == 0 else ""
            self._finish(doc_id, FileResult(self._tasks[doc_id].source, status, count, doc_id, error))

    def _finish(self, doc_id: str, result: FileResult) -> None:
        if doc_id not in self._finished:
            self._finished.add(doc_id)
            self._on_result(result)

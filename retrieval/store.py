"""MilvusStore: every pymilvus call of the package, behind methods named for what they mean.

Works unchanged on a Milvus Lite file (embedded, no server) and on a Milvus server/cluster URI.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from pymilvus import AnnSearchRequest, MilvusClient, RRFRanker, WeightedRanker
from pymilvus.exceptions import MilvusException

from retrieval.config import MilvusConfig, SearchConfig
from retrieval.errors import CollectionNotFoundError, StoreError
from retrieval.filters import quote_string
from retrieval.schema import (
    CHUNK_OUTPUT_FIELDS,
    INFO_ROW_ID,
    MANIFEST_FIELDS,
    MAX_LABEL_BYTES,
    MAX_SOURCE_BYTES,
    MAX_TEXT_BYTES,
    chunk_schema,
    clip_utf8,
    manifest_name,
    manifest_schema,
)

# pymilvus logs every RPC error with a traceback and warns about iterator timestamps; this module
# re-raises failures as StoreError with context, so its own logging would only duplicate them.
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
# Milvus Lite lacks AllocTimestamp; query_iterator falls back to a client timestamp after this logs.
logging.getLogger("grpc._server").setLevel(logging.CRITICAL)

_BATCH = 1_000  # rows per query/delete "in [...]" list, well below Milvus' expression limits

# Milvus Lite runs its server inside the process that first opens a .db file and keeps it (and
# the file's lock) until the process exits, even after every client closed. So a process that
# ingests and then hands the file to another process (a Serve replica, a Ray task) must release
# it: the last store of a file to close in this process stops its embedded server.
_LITE_OPEN: Counter[str] = Counter()
_LITE_GUARD = threading.Lock()


def _is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _release_lite(path: str) -> None:
    with _LITE_GUARD:
        _LITE_OPEN[path] -= 1
        if _LITE_OPEN[path] > 0:
            return
        del _LITE_OPEN[path]
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


@dataclass(frozen=True)
class ManifestEntry:
    """The record of one document: which version is committed and in what state."""

    doc_id: str
    source: str
    version: str
    state: str  # "writing" | "done" | "deleting"
    chunk_count: int
    file_type: str = ""
    title: str = ""
    updated_at: int = 0


def chunk_row(record: dict[str, Any]) -> dict[str, Any]:
    """Milvus row of a pipeline chunk record (see retrieval/pipeline.py), clipped to field limits."""
    return {
        "id": record["id"],
        "doc_id": record["doc_id"],
        "version": record["version"],
        "source": clip_utf8(record["source"], MAX_SOURCE_BYTES),
        "file_type": record["file_type"],
        "title": clip_utf8(record["title"], MAX_LABEL_BYTES),
        "section": clip_utf8(record["section"], MAX_LABEL_BYTES),
        **{key: int(record[key]) for key in ("page", "row", "chunk_index", "start", "end")},
        "text": clip_utf8(record["text"], MAX_TEXT_BYTES),
        "meta": json.loads(record["meta_json"]),
        "dense": [float(x) for x in record["dense"]],
    }


def _batches(items: Sequence[Any], size: int = _BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _in_list(field: str, values: Iterable[str]) -> str:
    return f"{field} in [{', '.join(quote_string(v) for v in values)}]"


_COLLECTION_NOT_LOADED = 101  # Milvus' error code for a search/query on a released collection


class MilvusStore:
    """One knowledge base = a chunk collection + its manifest collection."""

    def __init__(self, config: MilvusConfig) -> None:
        self.collection = config.collection
        self.manifest_collection = manifest_name(config.collection)
        self.uri = config.resolved_uri()
        try:
            self._client = MilvusClient(uri=self.uri, token=config.resolved_token(), db_name=config.db_name)
        except MilvusException as exc:
            raise StoreError(f"cannot connect to Milvus at {self.uri}: {exc}; check --uri / the token") from exc
        self._loaded = False
        self._lite = _is_lite(self.uri)
        if self._lite:
            with _LITE_GUARD:
                _LITE_OPEN[self.uri] += 1

    def close(self) -> None:
        """Close the connection; the last store of a Milvus Lite file also releases the file."""
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if self._lite:
            _release_lite(self.uri)

    # ---- collections -----------------------------------------------------------------------
    def exists(self) -> bool:
        found = self._client.has_collection(self.collection) and self._client.has_collection(self.manifest_collection)
        if found:
            self._load()
        return found

    def _load(self) -> None:
        """Collections are 'released' after a restart (always so in Milvus Lite); load once per store."""
        if not self._loaded:
            for name in (self.collection, self.manifest_collection):
                self._client.load_collection(name)
            self._loaded = True

    def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read (``query``, ``search``...) that reloads the collections once if Milvus released them.

        A restarted Milvus server comes back with every collection released, and a long-lived
        store (a Serve Retriever replica) would fail every search from then on; it loads them
        again and retries once instead."""
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except MilvusException as exc:
            if exc.code != _COLLECTION_NOT_LOADED and "released" not in str(exc.message):
                raise
        self._loaded = False
        self._load()
        return getattr(self._client, method)(*args, **kwargs)

    def require(self) -> None:
        if not self.exists():
            raise CollectionNotFoundError(
                f"collection '{self.collection}' does not exist at {self.uri}; ingest documents into it first "
                f"(python -m retrieval ingest PATH --collection {self.collection})"
            )

    def ensure(self, dimension: int, embedder_name: str) -> None:
        """Create both collections if missing; refuse a collection built with another embedder."""
        if not self._client.has_collection(self.collection):
            schema, index = chunk_schema(dimension)
            self._client.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")
        if not self._client.has_collection(self.manifest_collection):
            schema, index = manifest_schema()
            self._client.create_collection(
                self.manifest_collection, schema=schema, index_params=index, consistency_level="Strong"
            )
        self._load()
        info = self.collection_info()
        if info is None:
            self._upsert_manifest_rows([ManifestEntry(INFO_ROW_ID, embedder_name, str(dimension), "info", 0)])
        elif (info.source, info.version) != (embedder_name, str(dimension)):
            raise StoreError(
                f"collection '{self.collection}' was built with embedder '{info.source}' ({info.version} dims), "
                f"not '{embedder_name}' ({dimension} dims); use another --collection or drop this one"
            )

    def collection_info(self) -> ManifestEntry | None:
        rows = self._read("query", self.manifest_collection, filter=_in_list("doc_id", [INFO_ROW_ID]), output_fields=MANIFEST_FIELDS)
        return ManifestEntry(**rows[0]) if rows else None

    def drop(self) -> None:
        for name in (self.collection, self.manifest_collection):
            if self._client.has_collection(name):
                self._client.drop_collection(name)

    # ---- chunks ------------------------------------------------------------------------------
    def upsert_chunks(self, rows: list[dict[str, Any]]) -> None:
        """Upsert by deterministic id: writing the same chunk twice leaves one row."""
        if rows:
            self._client.upsert(self.collection, rows)

    def delete_other_versions(self, current: dict[str, str]) -> None:
        """Delete chunks of each document whose version is not ``current[doc_id]``."""
        items = list(current.items())
        for batch in _batches(items, 100):
            clauses = [f"(doc_id == {quote_string(d)} and version != {quote_string(v)})" for d, v in batch]
            self._client.delete(self.collection, filter=" or ".join(clauses))

    def delete_documents_chunks(self, doc_ids: Sequence[str]) -> None:
        for batch in _batches(list(doc_ids)):
            self._client.delete(self.collection, filter=_in_list("doc_id", batch))

    def flush(self) -> None:
        """Seal what was written so it gets indexed.

        Why: Milvus Lite keeps unflushed rows in a memtable that every search scans without an
        index (measured 30-100x slower than flushed, indexed segments: benchmarks/retrieval/),
        and it only flushes on its own at 128 MiB or at process exit. A server seals the same way.
        """
        for name in (self.collection, self.manifest_collection):
            self._client.flush(name)

    def count_chunks(self, expression: str = "") -> int:
        rows = self._read("query", self.collection, filter=expression, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def chunks(self, expression: str, limit: int = 16_384) -> list[dict[str, Any]]:
        return self._read("query", self.collection, filter=expression, output_fields=CHUNK_OUTPUT_FIELDS, limit=limit)

    def iter_chunks(self, expression: str = "chunk_index >= 0", batch_size: int = 2_000) -> Iterable[dict[str, Any]]:
        """Every chunk row matching ``expression``, in batches (no 16k query limit)."""
        iterator = self._read("query_iterator", self.collection, batch_size=batch_size, filter=expression,
                                               output_fields=CHUNK_OUTPUT_FIELDS)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    # ---- manifest ------------------------------------------------------------------------------
    def _upsert_manifest_rows(self, entries: Sequence[ManifestEntry]) -> None:
        now = int(time.time())
        rows = [
            {
                **{k: getattr(e, k) for k in MANIFEST_FIELDS},
                "source": clip_utf8(e.source, MAX_SOURCE_BYTES),
                "title": clip_utf8(e.title, MAX_LABEL_BYTES),
                "updated_at": now,
                "_unused_vector": [0.0, 0.0],
            }
            for e in entries
        ]
        if rows:
            self._client.upsert(self.manifest_collection, rows)

    def write_manifest(self, entries: Sequence[ManifestEntry]) -> None:
        self._upsert_manifest_rows(entries)

    def delete_manifest(self, doc_ids: Sequence[str]) -> None:
        for batch in _batches(list(doc_ids)):
            self._client.delete(self.manifest_collection, filter=_in_list("doc_id", batch))

    def manifest(self, doc_ids: Sequence[str] | None = None) -> dict[str, ManifestEntry]:
        """Manifest rows of the given documents (all documents when ``doc_ids`` is None)."""
        rows: list[dict[str, Any]] = []
        if doc_ids is None:
            iterator = self._read(
                "query_iterator",
                self.manifest_collection, batch_size=5_000, filter=f"doc_id != {quote_string(INFO_ROW_ID)}",
                output_fields=MANIFEST_FIELDS,
            )
            try:
                while batch := iterator.next():
                    rows.extend(batch)
            finally:
                iterator.close()
        else:
            for batch in _batches(list(doc_ids)):
                rows.extend(self._read("query", self.manifest_collection, filter=_in_list("doc_id", batch), output_fields=MANIFEST_FIELDS))
        return {row["doc_id"]: ManifestEntry(**{k: row[k] for k in MANIFEST_FIELDS}) for row in rows if row["doc_id"] != INFO_ROW_ID}

    # ---- search ------------------------------------------------------------------------------
    def search(
        self,
        mode: str,
        query_text: str,
        query_vector: list[float] | None,
        limit: int,
        expression: str,
        settings: SearchConfig,
    ) -> list[dict[str, Any]]:
        """Raw Milvus hits (dicts with id, distance, entity), best first."""
        try:
            if mode == "dense":
                result = self._read(
                    "search",
                    self.collection, data=[query_vector], anns_field="dense", limit=limit,
                    filter=expression, output_fields=CHUNK_OUTPUT_FIELDS,
                )
            elif mode == "bm25":
                result = self._read(
                    "search",
                    self.collection, data=[query_text], anns_field="sparse", limit=limit,
                    filter=expression, output_fields=CHUNK_OUTPUT_FIELDS, search_params={"metric_type": "BM25"},
                )
            else:
                candidates = max(limit, settings.candidates)
                requests = [
                    AnnSearchRequest(data=[query_vector], anns_field="dense", param={}, limit=candidates, expr=expression or None),
                    AnnSearchRequest(data=[query_text], anns_field="sparse", param={}, limit=candidates, expr=expression or None),
                ]
                ranker = (
                    RRFRanker(settings.rrf_k)
                    if settings.ranker == "rrf"
                    else WeightedRanker(settings.dense_weight, settings.bm25_weight)
                )
                result = self._read("hybrid_search", self.collection, requests, ranker, limit=limit, output_fields=CHUNK_OUTPUT_FIELDS)
        except MilvusException as exc:
            raise StoreError(f"Milvus {mode} search on '{self.collection}' failed: {exc}") from exc
        return list(result[0]) if result else []

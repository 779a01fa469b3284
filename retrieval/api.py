"""The Python API of the knowledge store: what the CLI and the serving layer call.

    from retrieval.api import Retriever
    with Retriever(collection="acme") as kb:
        report = kb.ingest(["docs/"])
        hits = kb.search("how do I reset my badge?", mode="hybrid", top_k=5, filters={"file_type": "pdf"})
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from retrieval.config import RetrievalConfig, SearchMode, load_config
from retrieval.embedding import Embedder, build_embedder
from retrieval.errors import RetrievalError
from retrieval.filters import Filters, build_expression
from retrieval.ingest import delete_documents, ingest, recover
from retrieval.documents import contextual_text
from retrieval.pipeline import source_of
from retrieval.rerank import Reranker, build_reranker
from retrieval.reports import CollectionStats, DeleteReport, Hit, IngestReport
from retrieval.store import ManifestEntry, MilvusStore

MODES = ("dense", "bm25", "hybrid")


def _hit(raw: dict[str, Any], mode: str) -> Hit:
    entity = raw["entity"]
    score = float(raw["distance"])
    if mode == "bm25":
        score = abs(score)  # Milvus Lite reports BM25 as a negated distance; higher is better here
    return Hit(
        chunk_id=entity["id"], doc_id=entity["doc_id"], score=score, text=entity["text"], source=entity["source"],
        title=entity["title"], section=entity["section"], page=entity["page"], row=entity["row"],
        chunk_index=entity["chunk_index"], start=entity["start"], end=entity["end"],
        file_type=entity["file_type"], meta=entity.get("meta") or {},
    )


class Retriever:
    """One knowledge base (a Milvus collection) with ingest, search, delete and stats.

    The embedder loads lazily on first use and can be injected (tests share one instance);
    everything else comes from the config, whose defaults work offline on this machine.
    """

    def __init__(
        self,
        config: RetrievalConfig | None = None,
        *,
        collection: str | None = None,
        uri: str | None = None,
        token: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        base = config or load_config()
        self.config = base.with_overrides(milvus__collection=collection, milvus__uri=uri, milvus__token=token)
        self._embedder = embedder
        self._store: MilvusStore | None = None
        self._reranker: Reranker | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> "Retriever":
        return cls(load_config(path), **kwargs)

    # ---- lifecycle ----------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = build_embedder(self.config.embedder)
        return self._embedder

    @property
    def reranker(self) -> Reranker:
        """The second-stage model of ``rerank.model`` (loaded on first use)."""
        if self._reranker is None:
            self._reranker = build_reranker(self.config.rerank)
        return self._reranker

    @property
    def store(self) -> MilvusStore:
        if self._store is None:
            self._store = MilvusStore(self.config.milvus)
        return self._store

    def close(self) -> None:
        """Release the Milvus connection (a Milvus Lite file is locked while it is open)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- operations ---------------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        sync: bool = False,
        use_ray: bool = False,
        ray_address: str | None = None,
        source_root: str | Path | None = None,
        progress: bool = False,
    ) -> IngestReport:
        """Ingest files/folders; unchanged documents are skipped, changed ones replaced.

        ``sync=True`` also deletes documents that vanished from the given folders.
        ``use_ray=True`` runs parse/chunk/embed on Ray Data (``ray_address`` or RAY_ADDRESS).
        ``source_root`` records sources relative to it (stable ids across machines/working dirs).
        """
        if use_ray:
            from retrieval.ray_ingest import run_ray

            def executor(tasks):  # noqa: ANN001, ANN202 - matches ingest.Executor
                return run_ray(tasks, self.config, ray_address)
        else:
            from retrieval.executors import run_local

            def executor(tasks):  # noqa: ANN001, ANN202
                return run_local(tasks, self.config, self.embedder)

        return ingest(
            paths, config=self.config, store=self.store, embedder=self.embedder, executor=executor,
            sync=sync, source_root=Path(source_root) if source_root else None, progress=progress,
        )

    def search(
        self,
        query: str,
        *,
        mode: SearchMode | None = None,
        top_k: int | None = None,
        filters: Filters = None,
        rerank: bool | None = None,
    ) -> list[Hit]:
        """Top-k chunks for a question. ``filters``: {"field": value}, Filter objects or "field=value".

        ``rerank`` (default: ``rerank.enabled``) re-orders the first ``rerank.candidates`` hits
        of ``mode`` with the reranker; the returned scores are then the reranker's.
        """
        mode = mode or self.config.search.mode
        if mode not in MODES:
            raise RetrievalError(f"unknown search mode '{mode}'; use one of: {', '.join(MODES)}")
        if not query or not query.strip():
            raise RetrievalError("empty query; pass the question to search for")
        top_k = top_k or self.config.search.top_k
        expression = build_expression(filters)  # validate filters before touching Milvus
        self.store.require()
        vector = self.embedder.embed_query(query) if mode != "bm25" else None
        rerank = self.config.rerank.enabled if rerank is None else rerank
        depth = max(top_k, self.config.rerank.candidates) if rerank else top_k
        raw = self.store.search(mode, query, vector, depth, expression, self.config.search)
        hits = [_hit(item, mode) for item in raw]
        return self._rerank(query, hits)[:top_k] if rerank else hits

    def _rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """Hits re-ordered by the reranker, which reads each chunk with its title and section."""
        scores = self.reranker.score(query, [contextual_text(h.title, h.section, h.text) for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -scores[i])  # stable: ties keep the first-stage order
        return [replace(hits[i], score=scores[i]) for i in order]

    def chunks(self) -> list[Hit]:
        """Every stored chunk (score 0), ordered by source and position: for tools that read the
        whole collection, such as the synthetic-question builder."""
        self.store.require()
        hits = [_hit({"entity": row, "distance": 0.0}, "dense") for row in self.store.iter_chunks()]
        return sorted(hits, key=lambda h: (h.source, h.chunk_index))

    def documents(self) -> list[ManifestEntry]:
        self.store.require()
        return sorted(self.store.manifest().values(), key=lambda e: e.source)

    def delete(self, *, doc_ids: Sequence[str] = (), sources: Sequence[str] = (), source_root: str | Path | None = None) -> DeleteReport:
        """Delete documents by id, or by source (a file, or a folder: everything under it)."""
        if not doc_ids and not sources:
            raise RetrievalError("nothing to delete; pass doc_ids and/or sources")
        self.store.require()
        recover(self.store)
        root = Path(source_root) if source_root else None
        manifest = self.store.manifest()
        wanted = set(doc_ids)
        for source in sources:
            forms = {source.rstrip("/"), source_of(Path(source), root)}
            wanted.update(
                e.doc_id for e in manifest.values()
                if any(e.source == f or e.source.startswith(f + "/") for f in forms)
            )
        entries = [manifest[d] for d in sorted(wanted) if d in manifest]
        delete_documents(self.store, entries)
        return DeleteReport(doc_ids=[e.doc_id for e in entries], sources=[e.source for e in entries])

    def stats(self) -> CollectionStats:
        self.store.require()
        manifest = self.store.manifest()
        info = self.store.collection_info()
        return CollectionStats(
            collection=self.store.collection,
            uri=self.store.uri,
            documents=sum(1 for e in manifest.values() if e.state == "done"),
            chunks=self.store.count_chunks(),
            incomplete_documents=sum(1 for e in manifest.values() if e.state != "done"),
            embedder=info.source if info else "",
            dimension=int(info.version) if info else 0,
            by_file_type=dict(Counter(e.file_type for e in manifest.values() if e.state == "done")),
        )

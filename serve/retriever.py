"""The ``Retriever`` deployment: the retrieval package's API behind a Serve handle.

It scales on its own (embedding a query is CPU work, independent of generation) and
returns plain dicts shaped like ``serve.schemas.Source`` minus ``ref``, so the gateway
never sees retrieval's internal types.
"""

from __future__ import annotations

import threading
from dataclasses import asdict

from ray import serve

from retrieval.api import Retriever as KnowledgeBase
from retrieval.config import load_config
from retrieval.reports import Hit
from serve.settings import RetrieverSettings

_METADATA = ("title", "page", "row", "chunk_index", "start", "end", "file_type", "meta")


def hit_to_source(hit: Hit) -> dict:
    data = asdict(hit)
    return {
        "chunk_id": data["chunk_id"],
        "doc_id": data["doc_id"],
        "source": data["source"],
        "section": data["section"],
        "score": data["score"],
        "text": data["text"],
        "metadata": {k: data[k] for k in _METADATA},
    }


@serve.deployment(name="Retriever")
class Retriever:
    def __init__(self, settings: dict | RetrieverSettings) -> None:
        self.settings = RetrieverSettings.model_validate(settings)
        self.kb = KnowledgeBase(
            load_config(self.settings.config),
            collection=self.settings.collection,
            uri=self.settings.uri,
            token=self.settings.token,
        )
        self.kb.embedder  # load the embedding model now, not on the first request
        # Serve runs this sync method in a thread pool; the store opens lazily (so a replica can
        # start before the collection exists), and two first requests must not both open it.
        self._open = threading.Lock()

    def search(self, query: str, top_k: int, mode: str | None, filters: list[dict]) -> list[dict]:
        wanted = [(f["field"], f["op"], f["value"]) for f in filters]
        with self._open:
            self.kb.store  # noqa: B018 - opens the Milvus connection once
        return [hit_to_source(h) for h in self.kb.search(query, mode=mode, top_k=top_k, filters=wanted)]

    def __del__(self) -> None:
        if hasattr(self, "kb"):
            self.kb.close()

"""Shared fixtures: one real embedder per session, a fresh Milvus Lite file per test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from retrieval.api import Retriever  # noqa: E402
from retrieval.config import EmbedderConfig, RetrievalConfig  # noqa: E402
from retrieval.embedding import SentenceTransformerEmbedder  # noqa: E402
from tests.retrieval.corpus import snapshot  # noqa: E402,F401 - re-exported for tests


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(EmbedderConfig())


@pytest.fixture
def make_retriever(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Callable[..., Retriever]:
    opened: list[Retriever] = []

    def factory(name: str = "kb", db: str = "milvus.db", config: RetrievalConfig | None = None) -> Retriever:
        retriever = Retriever(config or RetrievalConfig(), collection=name, uri=str(tmp_path / db), embedder=embedder)
        opened.append(retriever)
        return retriever

    yield factory
    for retriever in opened:
        retriever.close()

"""Shared fixtures: one real embedder per session, a fresh Milvus Lite file per test, a Milvus server."""

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


class MilvusServer:
    """``milvus-lite server`` on 127.0.0.1 (Milvus's gRPC protocol, what a cluster's nodes reach):
    a real process, stopped (and restartable, for fault drills) by its process id."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        from cluster.local.processes import free_port

        self.data_dir, self.log, self.port = data_dir, log, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "MilvusServer":
        from cluster.local import services

        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
        self.process = services.start_milvus(self.port, self.data_dir, self.log, env)
        services.wait_for("milvus-lite server", lambda: services.milvus_ready(self.uri), self.process, self.log, 60)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        from cluster.local.processes import stop_pids

        if self.process and self.process.poll() is None:
            stop_pids([self.process.pid])
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("milvus-server")
    server = MilvusServer(root / "data", root / "milvus.log").start()
    yield server
    server.stop()

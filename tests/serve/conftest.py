"""One real Serve app for the serving tests: local Ray, the offline Phi-3, two trained
adapters in a temp registry, and a real Milvus Lite collection built by the retrieval CLI.

The app runs with API keys (auth on); ``test_cli.py`` runs ``serve run`` on the shipped
config without keys (auth off) before this app starts.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import ray
from ray import serve

from modeling import AdapterRegistry
from serve.local import run_local
from tests.conftest import REPO, codeword_registry_copy
from tests.serve.corpus import build_collection

API_KEY = "test-key-123"
QUEUE_BOUND = 8  # requests that may wait beyond the 8 batch rows; the overload test sends more
MAX_TOKENS_LIMIT = 48
SINGLE_REPLICA = {"num_replicas": 1, "autoscaling_config": None}


@dataclass
class RunningApp:
    base_url: str
    registry: AdapterRegistry
    milvus_uri: str
    collection: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def registry(tmp_path_factory, codeword_adapters) -> AdapterRegistry:
    return codeword_registry_copy(codeword_adapters, tmp_path_factory.mktemp("adapters"))


def start_app(registry: AdapterRegistry, uri: str, collection: str, api_keys: list[str]) -> str:
    port = free_port()
    run_local(
        host="127.0.0.1",
        port=port,
        overrides={
            "generator.adapter_registry": str(registry.root),
            "generator.engine.max_batch_size": 8,
            "generator.engine.max_queued_requests": QUEUE_BOUND,
            "generator.max_tokens_limit": MAX_TOKENS_LIMIT,  # small, so generated API tests stay fast
            "generator.default_max_tokens": 16,
            "retriever.uri": uri,
            "retriever.collection": collection,
            "gateway.api_keys": api_keys,
            "gateway.max_body_bytes": 200_000,
        },
        deployment_overrides={name: SINGLE_REPLICA for name in ("Gateway", "Retriever", "Generator")},
    )
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="package")
def app(registry, tmp_path_factory) -> Iterator[RunningApp]:
    uri, collection = build_collection(tmp_path_factory.mktemp("milvus"))
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(REPO / ".cache" / "ray"), log_to_driver=False,
        _system_config={"metrics_report_interval_ms": 1000},  # /metrics tests see new values within seconds
    )
    try:
        yield RunningApp(start_app(registry, uri, collection, [API_KEY]), registry, uri, collection)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture()
def client(app) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.base_url, timeout=180, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c

"""The Retriever deployment searches in the mode its retrieval config names unless told otherwise.

Runs the deployment's class directly (no Serve) on a real Milvus Lite collection: what the
RAG and hybrid routes send is ``mode=None`` unless ``retriever.mode`` or the request sets one.
"""

from __future__ import annotations

import pytest
import yaml

from serve.retriever import Retriever
from tests.serve.corpus import build_collection

pytestmark = pytest.mark.slow
QUERY = "HX-220 flange bolts torque"


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mode")
    uri, collection = build_collection(folder)
    config = folder / "bm25.yaml"
    config.write_text(yaml.safe_dump({"search": {"mode": "bm25"}}))
    replica = Retriever.func_or_class({"config": str(config), "uri": uri, "collection": collection})
    yield replica
    replica.kb.close()


def scored(hits: list[dict]) -> list[tuple[str, float]]:
    return [(h["chunk_id"], round(h["score"], 6)) for h in hits]


def test_no_mode_searches_with_the_retrieval_configs_mode(retriever):
    assert retriever.settings.mode is None
    default = scored(retriever.search(QUERY, 3, None, []))
    assert default == scored(retriever.search(QUERY, 3, "bm25", []))
    assert default != scored(retriever.search(QUERY, 3, "dense", []))  # the mode really changes the ranking

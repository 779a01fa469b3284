"""RAG, hybrid and search routes: answers cite chunks the retriever really returned."""

from __future__ import annotations

import re

import openai
import pytest

from tests.serve.conftest import API_KEY

pytestmark = pytest.mark.slow
QUESTION = "What torque do the HX-220 flange bolts need?"


def test_search_route_returns_ranked_chunks_with_metadata(client):
    r = client.post("/search", json={"query": "HX-220 flange bolts torque", "top_k": 3})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["source"] == "hx220-manual.md" and "45 Nm" in results[0]["text"]
    assert [s["ref"] for s in results] == list(range(1, len(results) + 1))
    assert results[0]["score"] >= results[-1]["score"] and results[0]["metadata"]["file_type"]


def test_search_filters_and_their_errors(client):
    only_csv = client.post("/search", json={"query": "gasket", "filters": [{"field": "source", "op": "==", "value": "parts.csv"}]})
    assert only_csv.status_code == 200 and {s["source"] for s in only_csv.json()["results"]} == {"parts.csv"}
    injected = client.post(
        "/search", json={"query": "gasket", "filters": [{"field": "source", "op": "==", "value": 'x" or source != "'}]}
    )
    assert injected.status_code == 200 and injected.json()["results"] == []
    unknown = client.post("/search", json={"query": "gasket", "filters": [{"field": "owner", "op": "==", "value": "x"}]})
    assert unknown.status_code == 422 and "owner" in unknown.json()["error"]["message"]


def test_rag_answer_cites_what_search_returned(client):
    searched = client.post("/search", json={"query": QUESTION, "top_k": 3}).json()["results"]
    r = client.post("/rag", json={"question": QUESTION, "top_k": 3, "max_tokens": 40})
    body = r.json()
    assert r.status_code == 200, r.text
    assert [s["chunk_id"] for s in body["sources"]] == [s["chunk_id"] for s in searched]
    assert "45" in body["answer"]
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
    assert cited <= {s["ref"] for s in body["sources"]}  # every [n] names a chunk that was retrieved
    documented = {"ref", "chunk_id", "doc_id", "source", "section", "score", "text"}
    assert all(documented <= set(s) for s in body["sources"])
    assert body["model"] == "base" and body["adapter"] is None
    assert body["timings"]["retrieval_s"] > 0 and body["timings"]["generation_s"] > 0
    with_adapter = client.post("/rag", json={"question": QUESTION, "adapter": "alpha"})
    assert with_adapter.status_code == 422 and "/hybrid" in with_adapter.json()["error"]["message"]


def test_openai_rag_returns_sources_extra_field(app):
    oai = openai.OpenAI(base_url=f"{app.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=180)
    by_suffix = oai.chat.completions.create(model="base+rag", messages=[{"role": "user", "content": QUESTION}], max_tokens=40)
    by_field = oai.chat.completions.create(
        model="base", messages=[{"role": "user", "content": QUESTION}], max_tokens=40, extra_body={"rag": True}
    )
    for completion in (by_suffix, by_field):
        sources = completion.model_extra["sources"]
        assert sources and sources[0]["source"] == "hx220-manual.md"
    assert by_suffix.choices[0].message.content == by_field.choices[0].message.content
    plain = oai.chat.completions.create(model="base", messages=[{"role": "user", "content": QUESTION}], max_tokens=8)
    assert "sources" not in (plain.model_extra or {})


def test_openai_rag_streaming_sends_sources_with_the_last_chunk(app):
    oai = openai.OpenAI(base_url=f"{app.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=180)
    chunks = list(
        oai.chat.completions.create(
            model="base+rag", messages=[{"role": "user", "content": QUESTION}], max_tokens=16, stream=True
        )
    )
    with_sources = [c for c in chunks if (c.model_extra or {}).get("sources")]
    assert len(with_sources) == 1 and with_sources[0] is chunks[-1] and chunks[-1].choices[0].finish_reason
    assert with_sources[0].model_extra["sources"][0]["source"] == "hx220-manual.md"


def test_hybrid_uses_adapter_and_retrieval(client):
    r = client.post("/hybrid", json={"question": QUESTION, "adapter": "alpha", "max_tokens": 24})
    body = r.json()
    assert r.status_code == 200 and body["model"] == "alpha" and body["sources"]
    assert body["adapter"] == "alpha" and body["timings"]["retrieval_s"] > 0
    missing = client.post("/hybrid", json={"question": QUESTION})
    assert missing.status_code == 422 and "adapter" in missing.json()["error"]["message"]
    ghost = client.post("/hybrid", json={"question": QUESTION, "adapter": "ghost"})
    assert ghost.status_code == 404 and "known adapters: alpha, bravo" in ghost.json()["error"]["message"]

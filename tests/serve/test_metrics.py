"""``GET /metrics``: Prometheus text, parsed with prometheus_client's own parser, after real requests.

Counters are compared as deltas around requests whose answers say what to expect (tokens,
sources), and against the Generator's engine counters read through its handle: the exported
values are the engine's own, per replica. Ray's agents export on an interval (1 s in the
test app), so every comparison waits, bounded, for the values to arrive.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ray import serve

from tests.conftest import REPO

pytestmark = pytest.mark.slow
QUESTION = "What torque do the HX-220 flange bolts need?"
CHAT = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset], float]


def scrape(client: httpx.Client) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text[:500]
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every sample of ``name`` whose labels include ``labels`` (all replicas)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def settle(client: httpx.Client, condition: Callable[[Samples], bool], seconds: float = 30) -> Samples:
    deadline = time.monotonic() + seconds
    while True:
        samples = scrape(client)
        if condition(samples):
            return samples
        names = sorted({n for n, _ in samples if "expert" in n})
        assert time.monotonic() < deadline, f"metrics did not reach the expected values; exported: {names}"
        time.sleep(0.5)


def answered_besides_metrics(samples: Samples) -> dict[frozenset, float]:
    """The Gateway's request counters, less the scrapes themselves (each GET /metrics counts)."""
    return {
        labels: v for (n, labels), v in samples.items()
        if n == "ray_expert_http_requests_total" and dict(labels).get("route") != "/metrics"
    }


def quiet(client: httpx.Client, seconds: float = 30) -> Samples:
    """A scrape after which nothing earlier is still on its way: the engine's counters match its
    own, and the Gateway's request counters are unchanged over 2.5 report intervals (requests of
    earlier tests may still be in flight to the agent otherwise)."""
    deadline = time.monotonic() + seconds
    previous = settle(client, in_step_with_the_engine, seconds)
    while True:
        time.sleep(2.5)
        samples = settle(client, in_step_with_the_engine, seconds)
        if answered_besides_metrics(samples) == answered_besides_metrics(previous):
            return samples
        assert time.monotonic() < deadline, "the Gateway's request counters kept changing with no requests sent"
        previous = samples


def generator_info() -> dict:
    return serve.get_deployment_handle("Generator", app_name="expert").info.remote().result()


def in_step_with_the_engine(samples: Samples) -> bool:
    engine = generator_info()["engine"]
    return all(
        total(samples, f"ray_expert_{name}_total") == engine[key]
        for key, name in (("generated_tokens", "generated_tokens"), ("steps", "engine_steps"), ("step_rows", "engine_step_rows"))
    ) and total(samples, "ray_expert_engine_requests_total", outcome="finished") == engine["finished"]


def test_metrics_count_requests_tokens_retrieval_and_latency(client, app):
    before = quiet(client)
    plain = client.post(CHAT, json={"model": "base", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8})
    adapter = client.post(CHAT, json={"model": "alpha", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6})
    rag = client.post(CHAT, json={"model": "base+rag", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8})
    streamed_tokens = 0
    with client.stream(
        "POST", CHAT,
        json={"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": True,
              "stream_options": {"include_usage": True}},
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: {") and (usage := json.loads(line[6:]).get("usage")):
                streamed_tokens = usage["completion_tokens"]
    search = client.post("/search", json={"query": "gasket kit", "top_k": 3})
    nothing = client.post("/search", json={"query": "gasket kit", "filters": [{"field": "source", "op": "==", "value": "none.md"}]})
    assert nothing.status_code == 200 and nothing.json()["results"] == []
    invalid = client.post(CHAT, json={"model": "base", "messages": [{"role": "user", "content": "Hi"}], "temperature": 9})
    unauthorized = httpx.get(f"{app.base_url}/v1/models")
    assert [plain.status_code, adapter.status_code, rag.status_code, search.status_code] == [200] * 4
    assert (invalid.status_code, unauthorized.status_code, streamed_tokens > 0) == (422, 401, True)
    tokens = sum(r.json()["usage"]["completion_tokens"] for r in (plain, adapter, rag)) + streamed_tokens
    hits = len(rag.json()["sources"]) + len(search.json()["results"])

    def grew(samples: Samples, name: str, **labels: str) -> float:
        return total(samples, name, **labels) - total(before, name, **labels)

    after = settle(client, lambda s: grew(s, "ray_expert_generated_tokens_total") >= tokens
                   and grew(s, "ray_expert_http_requests_total", route="/v1/models", status="401") >= 1
                   and in_step_with_the_engine(s))
    assert grew(after, "ray_expert_generated_tokens_total") == tokens
    assert grew(after, "ray_expert_http_requests_total", route=CHAT, method="POST", status="200") == 4
    assert grew(after, "ray_expert_http_requests_total", route=CHAT, status="422") == 1
    assert grew(after, "ray_expert_http_requests_total", route="/search", status="200") == 2
    assert grew(after, "ray_expert_http_requests_total", route="/v1/models", status="401") == 1  # before routing
    assert grew(after, "ray_expert_http_request_duration_seconds_count", route=CHAT) == 5
    assert grew(after, "ray_expert_retrieval_searches_total") == 3
    assert grew(after, "ray_expert_retrieval_hits_total") == hits
    assert grew(after, "ray_expert_retrieval_empty_total") == 1
    assert grew(after, "ray_expert_retrieval_duration_seconds_count") == 3
    assert grew(after, "ray_expert_queue_wait_seconds_count") == 4
    assert grew(after, "ray_expert_generation_duration_seconds_count", stream="false") == 3
    assert grew(after, "ray_expert_generation_duration_seconds_count", stream="true") == 1
    # A histogram's buckets are cumulative: every request falls in the +Inf bucket.
    assert grew(after, "ray_expert_generation_duration_seconds_bucket", stream="false", le="+Inf") == 3


def test_metrics_are_per_generator_replica_and_match_its_engine(client):
    samples = settle(client, in_step_with_the_engine)
    info = generator_info()
    engine, adapters = info["engine"], info["adapter_stats"]
    replicas = {dict(ls).get("replica") for (n, ls) in samples if n == "ray_expert_engine_running"}
    assert len(replicas) == 1 and None not in replicas  # one replica here, named by Serve's replica tag
    labels = dict(next(ls for (n, ls) in samples if n == "ray_expert_engine_running"))
    assert labels["deployment"] == "Generator" and labels["application"] == "expert"
    assert total(samples, "ray_expert_engine_waiting") == engine["waiting"] == 0  # idle: the queue is empty
    assert total(samples, "ray_expert_engine_running") == engine["running"] == 0
    assert total(samples, "ray_expert_engine_requests_total", outcome="refused") == engine["refused"]
    assert total(samples, "ray_expert_engine_requests_total", outcome="cancelled") == engine["cancelled"]
    assert total(samples, "ray_expert_adapter_loads_total") == adapters["loads"] >= 1  # alpha was loaded
    assert total(samples, "ray_expert_adapter_evictions_total") == adapters["unloads"]
    assert total(samples, "ray_expert_adapters_loaded") == len(engine["adapters_loaded"])
    mean_batch = total(samples, "ray_expert_engine_step_rows_total") / total(samples, "ray_expert_engine_steps_total")
    assert 1 <= mean_batch <= 8  # the test app's max_batch_size
    assert any(n.startswith("ray_serve_") for n, _ in samples)  # Serve's own metrics come along


def test_metrics_need_the_key_like_the_api(app):
    r = httpx.get(f"{app.base_url}/metrics")
    assert r.status_code == 401 and r.json()["error"]["type"] == "auth_error"


def test_the_grafana_dashboard_reads_only_metrics_the_app_exports(client):
    dashboard = json.loads((REPO / "cluster" / "grafana-expert-serving.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    named = {name for q in queries for name in re.findall(r"ray_expert_\w+", q)}
    exported = {name for name, _ in settle(client, in_step_with_the_engine)}
    # Ray exports a counter once it first grows: two adapters never overflow an LRU of four.
    assert named - exported <= {"ray_expert_adapter_evictions_total"}, named - exported
    assert len(named) >= 15

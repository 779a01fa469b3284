"""The app's Prometheus metrics, recorded with Ray Serve's metrics API and read at ``/metrics``.

Why Ray's metrics and not a ``prometheus_client`` registry per process: the Gateway and every
Generator replica are separate processes, Serve may run several replicas of each on several
nodes, and requests reach them through Serve's router, so no single process could answer
for the others. ``ray.serve.metrics`` tags every sample with its ``deployment``, ``replica``
and ``application``, and each node's Ray metrics agent exports the samples of the processes
on that node, next to Ray's own Serve metrics (``ray_serve_*``). Names get Ray's ``ray_``
prefix: ``ray_expert_generated_tokens_total{replica="..."}``.

* On a cluster, Prometheus scrapes every node's agent (Ray writes the targets to
  ``/tmp/ray/prom_metrics_service_discovery.json`` for file-based service discovery).
* ``GET /metrics`` on the Gateway answers the same text for the whole cluster: it reads every
  alive node's agent and returns the ``ray_expert_*`` and ``ray_serve_*`` families, merged and
  rendered by ``prometheus_client`` (for a single scrape target, the playground and tests).

Generator replicas mirror their engine's counters (``GenerationEngine.snapshot()``, the one
place they are counted) into Ray metrics every ``MIRROR_INTERVAL_S``: counters grow by the
engine's own deltas, gauges are set from its current occupancy, so the exported values are
the engine's, per replica.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import ray
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from ray.serve.metrics import Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeling import Completion

log = logging.getLogger("ray.serve")

EXPORTED_PREFIXES = ("ray_expert_", "ray_serve_")  # what GET /metrics returns of each agent's text
MIRROR_INTERVAL_S = 1.0
SCRAPE_TIMEOUT_S = 5.0
# Seconds: from a cached search on CPU (~ms) to a long generation on a busy replica (minutes).
LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
UNMATCHED_ROUTE = "unmatched"  # a path no route declares: one label, not one per path
# Engine counters (EngineStats field -> metric name, description); each is a Prometheus counter.
ENGINE_COUNTERS = {
    "generated_tokens": ("expert_generated_tokens", "tokens generated (every request, streamed or not)"),
    "prompt_tokens": ("expert_prompt_tokens", "prompt tokens computed (not served from the prefix cache)"),
    "prefix_hit_tokens": ("expert_prefix_hit_tokens", "prompt tokens served from the prefix cache"),
    "steps": ("expert_engine_steps", "decoding steps (forward passes) of the continuous-batching engine"),
    "step_rows": ("expert_engine_step_rows", "sequences summed over steps: / steps = the mean batch size"),
}
OUTCOMES = ("finished", "cancelled", "timed_out", "refused", "failed")


class GatewayMetrics:
    """What the Gateway records: requests by route and status, their latency, retrieval."""

    def __init__(self) -> None:
        self.requests = Counter(
            "expert_http_requests", description="HTTP requests answered, by route template and status",
            tag_keys=("route", "method", "status"),
        )
        self.request_seconds = Histogram(
            "expert_http_request_duration_seconds",
            description="end to end: first byte in to last byte out (a stream's whole length)",
            boundaries=LATENCY_BUCKETS, tag_keys=("route",),
        )
        self.retrieval_seconds = Histogram(
            "expert_retrieval_duration_seconds", description="one search through the Retriever deployment",
            boundaries=LATENCY_BUCKETS,
        )
        self.searches = Counter("expert_retrieval_searches", description="searches sent to the Retriever")
        self.hits = Counter("expert_retrieval_hits", description="passages the searches returned")
        self.empty = Counter("expert_retrieval_empty", description="searches that returned no passage")

    def searched(self, seconds: float, hits: int) -> None:
        self.retrieval_seconds.observe(seconds)
        self.searches.inc()
        if hits:
            self.hits.inc(hits)
        else:
            self.empty.inc()


def route_templates(routes: Iterable[BaseRoute]) -> list[Route]:
    """Every route of an app, flattened (FastAPI keeps included routers, e.g. Serve's ingress, nested)."""
    flat: list[Route] = []
    for route in routes:
        nested = getattr(getattr(route, "original_router", None), "routes", None)
        if nested is not None:
            flat.extend(route_templates(nested))
        elif isinstance(route, Route):
            flat.append(route)
    return flat


def route_of(scope: Scope, templates: Iterable[Route]) -> str:
    """The route template a request matched, also for requests answered before routing (401, 413)
    or by it (405): a bounded set of labels, never one per path."""
    routed = scope.get("route")
    if isinstance(routed, Route):
        return routed.path
    for route in templates:
        if route.matches(scope)[0] != Match.NONE:
            return route.path
    return UNMATCHED_ROUTE


class RequestMetrics:
    """Pure ASGI middleware (outermost, so 401s and 413s count too): status and duration per route."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._templates: list[Route] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if self._templates is None:
                self._templates = route_templates(self.routes())
            route = route_of(scope, self._templates)
            self.metrics.requests.inc(tags={"route": route, "method": scope["method"], "status": str(status)})
            self.metrics.request_seconds.observe(time.perf_counter() - started, tags={"route": route})


class GeneratorMetrics:
    """Per-replica metrics of a Generator: engine counters and occupancy, request latencies, adapters.

    ``sources`` returns ``(engine snapshot, adapter stats)``; a daemon thread mirrors them every
    ``interval_s`` (gauges must be refreshed or Ray drops them, and counters need the engine's deltas).
    """

    def __init__(self, sources: Callable[[], tuple[dict[str, Any], dict[str, Any]]], interval_s: float = MIRROR_INTERVAL_S) -> None:
        self.sources = sources
        self.interval_s = interval_s
        self.counters = {key: Counter(name, description=text) for key, (name, text) in ENGINE_COUNTERS.items()}
        self.outcomes = Counter(
            "expert_engine_requests", description="requests that left the engine, by outcome "
            "(finished; cancelled: the client went away; timed_out; refused: queue full, HTTP 429; failed)",
            tag_keys=("outcome",),
        )
        self.adapter_loads = Counter("expert_adapter_loads", description="LoRA adapters loaded into this replica")
        self.adapter_evictions = Counter(
            "expert_adapter_evictions", description="adapters the multiplexing LRU evicted from this replica"
        )
        self.adapter_load_seconds = Counter("expert_adapter_load_seconds", description="time spent loading adapters")
        self.running = Gauge("expert_engine_running", description="sequences in the running batch now (batch size)")
        self.waiting = Gauge("expert_engine_waiting", description="requests waiting for a batch row now (queue depth)")
        self.last_step_rows = Gauge("expert_engine_last_step_rows", description="tokens in the last forward pass")
        self.kv_utilization = Gauge("expert_engine_kv_utilization", description="KV cache memory in use / budget")
        self.adapters_loaded = Gauge("expert_adapters_loaded", description="adapters held by this replica now")
        self.queue_seconds = Histogram(
            "expert_queue_wait_seconds", description="time a request waited before joining the running batch",
            boundaries=LATENCY_BUCKETS,
        )
        self.generation_seconds = Histogram(
            "expert_generation_duration_seconds",
            description="one request in this replica: queue wait, prompt and decoding", boundaries=LATENCY_BUCKETS,
            tag_keys=("stream",),
        )
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-mirror", daemon=True)
        self._thread.start()

    def request_done(self, completion: Completion, seconds: float, *, stream: bool) -> None:
        self.queue_seconds.observe(completion.queue_s)
        self.generation_seconds.observe(seconds, tags={"stream": str(stream).lower()})

    def stop(self) -> None:
        self._stop.set()

    def mirror(self) -> None:
        """Bring the exported values up to the engine's (one pass of the mirror thread)."""
        engine, adapters = self.sources()
        for key, counter in self.counters.items():
            self._grow(key, engine[key], counter)
        for outcome in OUTCOMES:
            self._grow(f"outcome:{outcome}", engine[outcome], self.outcomes, {"outcome": outcome})
        self._grow("adapter_loads", adapters["loads"], self.adapter_loads)
        self._grow("adapter_evictions", adapters["unloads"], self.adapter_evictions)
        self._grow("adapter_load_seconds", adapters["load_seconds"], self.adapter_load_seconds)
        self.running.set(engine["running"])
        self.waiting.set(engine["waiting"])
        self.last_step_rows.set(engine["last_step_rows"])
        self.kv_utilization.set(engine["kv_used_bytes"] / max(1, engine["kv_budget_bytes"]))
        self.adapters_loaded.set(len(engine["adapters_loaded"]))

    def _grow(self, key: str, total: float, counter: Counter, tags: dict[str, str] | None = None) -> None:
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            counter.inc(delta, tags=tags)
            self._seen[key] = total

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.mirror()
            except Exception:  # noqa: BLE001 - metrics must never take the replica down
                log.exception("mirroring the engine's counters into metrics failed")


# -- GET /metrics: every node's agent, merged --------------------------------------------
def _agent_urls() -> list[str]:
    """The metrics agent of every alive node (the Gateway's own through loopback)."""
    here = ray.get_runtime_context().get_node_id()
    urls = []
    for node in ray.nodes():
        port = node.get("MetricsExportPort")
        if not node.get("Alive") or not port or port <= 0:
            continue
        host = "127.0.0.1" if node.get("NodeID") == here else node["NodeManagerAddress"]
        urls.append(f"http://{host}:{port}/metrics")
    return urls


class _Families:
    """A collector serving already-parsed families, so ``generate_latest`` renders them."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_families(texts: Iterable[str], prefixes: tuple[str, ...] = EXPORTED_PREFIXES) -> bytes:
    """Several agents' exposition texts as one: the families with ``prefixes``, samples concatenated."""
    merged: dict[str, Metric] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if not family.name.startswith(prefixes):
                continue
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
            into.samples.extend(family.samples)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))  # type: ignore[arg-type]
    return generate_latest(registry)


async def cluster_metrics() -> bytes:
    """``GET /metrics``: the app's and Serve's metrics from every node, in Prometheus text format."""
    urls = await asyncio.to_thread(_agent_urls)
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
        replies = await asyncio.gather(*(client.get(url) for url in urls), return_exceptions=True)
    texts = []
    for url, reply in zip(urls, replies):
        if isinstance(reply, BaseException) or reply.status_code != 200:
            log.warning("metrics agent %s did not answer: %s", url, reply)  # its node's samples are missing
            continue
        texts.append(reply.text)
    return merge_families(texts)

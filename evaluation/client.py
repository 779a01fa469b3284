"""The four routes as HTTP calls to a running Serve app (``python -m serve``).

Every route goes through ``/v1/chat/completions`` with the bare question as the user turn, so
the only differences between routes are the two the comparison is about: which weights
(``model``: ``base`` or an adapter name) and whether retrieval runs (``rag: true``, the same
search and RAG prompt as ``/rag`` and ``/hybrid``). Latency is measured here, end to end, as
the user sees it (retrieval + generation + HTTP).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

ROUTES = ("base", "rag", "finetuned", "hybrid")
BASE_MODEL = "base"


class EvalError(RuntimeError):
    """The evaluation cannot run as asked (server unreachable, adapter unknown, bad key ...)."""


@dataclass(frozen=True)
class RouteSpec:
    name: str
    model: str  # "base" or an adapter name
    rag: bool


@dataclass(frozen=True)
class ReturnedSource:
    ref: int
    source: str
    chunk_id: str
    text: str


@dataclass
class RouteAnswer:
    text: str = ""
    sources: list[ReturnedSource] = field(default_factory=list)
    latency_s: float = 0.0
    completion_tokens: int = 0
    error: str | None = None


def route_specs(routes: tuple[str, ...], finetuned_adapter: str | None, hybrid_adapter: str | None) -> list[RouteSpec]:
    """base = base model; rag = base + retrieval; finetuned = adapter; hybrid = adapter + retrieval."""
    unknown = [r for r in routes if r not in ROUTES]
    if unknown or not routes:
        raise EvalError(f"unknown route(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ROUTES)}")
    specs = []
    for name in dict.fromkeys(routes):
        adapter = {"finetuned": finetuned_adapter, "hybrid": hybrid_adapter}.get(name, BASE_MODEL)
        if not adapter:
            raise EvalError(f"route '{name}' needs an adapter: pass --{name}-adapter NAME (a name from the server's registry)")
        specs.append(RouteSpec(name, adapter, rag=name in ("rag", "hybrid")))
    return specs


class EndpointClient:
    """A thin HTTP client for one Serve app; raises ``EvalError`` for anything a user must fix."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "EndpointClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str) -> httpx.Response:
        try:
            response = self.http.get(path)
        except httpx.HTTPError as exc:
            raise EvalError(f"cannot reach {self.base_url}{path} ({exc}); start the app with `python -m serve` "
                            "or pass --endpoint") from exc
        if response.status_code == 401:
            raise EvalError(f"{self.base_url} rejected the API key; pass --api-key (or set EXPERT_API_KEY)")
        if response.status_code != 200:
            raise EvalError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def check(self, specs: list[RouteSpec]) -> None:
        """Fail before the first question if the server is down or does not serve an adapter."""
        served = {m["id"] for m in self._get("/v1/models").json()["data"]}
        for spec in specs:
            if spec.model not in served:
                names = ", ".join(sorted(m for m in served if not m.endswith("+rag")))
                raise EvalError(f"adapter '{spec.model}' for route '{spec.name}' is not served by {self.base_url}; "
                                f"it serves: {names}")

    def ask(self, spec: RouteSpec, question: str, *, max_tokens: int, top_k: int | None = None,
            seed: int = 0, retries: int = 1) -> RouteAnswer:
        """One greedy answer. A 4xx is the caller's mistake (raised); a 5xx/timeout is retried, then recorded."""
        body: dict = {"model": spec.model, "messages": [{"role": "user", "content": question}],
                      "max_tokens": max_tokens, "temperature": 0.0, "seed": seed, "rag": spec.rag}
        if spec.rag and top_k:
            body["rag_top_k"] = top_k
        error = ""
        for _ in range(retries + 1):
            started = time.perf_counter()
            try:
                response = self.http.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            latency = time.perf_counter() - started
            if 400 <= response.status_code < 500:
                try:
                    message = response.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    message = response.text[:300]
                raise EvalError(f"route '{spec.name}' request rejected ({response.status_code}): {message}")
            if response.status_code != 200:
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            data = response.json()
            sources = [ReturnedSource(int(s["ref"]), s["source"], s["chunk_id"], s["text"]) for s in data.get("sources", [])]
            return RouteAnswer(data["choices"][0]["message"]["content"], sources, latency,
                               int(data.get("usage", {}).get("completion_tokens", 0)))
        return RouteAnswer(error=error or "no response")

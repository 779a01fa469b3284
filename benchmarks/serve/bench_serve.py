"""Serving benchmark: the Ray Serve app (continuous batching) against the app before it and a naive server.

In one run, on the same machine, with the same model, prompts and generation parameters:

1. ``/v1/chat/completions`` throughput and latency p50/p99, with and without retrieval, at
   concurrency 1, 8 and 32, on three servers: a naive one-``generate``-per-request server
   (naive_server.py), this project's Serve app as it was before continuous batching (a
   ``git worktree`` of ``--before-rev``, served by serve_app.py) and the Serve app of this
   checkout. All three are up for the whole run and are driven in turn, cell by cell (never
   at the same time; who goes first rotates from cell to cell), so background load drifts hit
   them alike. The naive server uses as many torch threads as a Generator replica.
2. Mixed traffic on the current app (base model + 3 adapters, 4 temperatures, 3 ``max_tokens``
   values in one stream of requests) against single-adapter greedy traffic, alternating.
3. 32 concurrent streams: time to first token against a lone stream's, and total tokens/s
   against non-streaming requests at the same concurrency, alternating.
4. The cost of switching LoRA adapters: base model, a cached adapter, a cold one (evicted).

Every request asks a different question (distinct prompts: prefix reuse only finds what
requests really share, the chat template and the RAG instructions). Writes
benchmarks/serve/RESULTS.md (or --out) with the command that produced it.

    python benchmarks/serve/bench_serve.py            # ~25 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
for _key, _value in {
    "EXPERT_CACHE_DIR": REPO / ".cache",
    "HF_HOME": REPO / ".cache" / "huggingface",
    "TORCH_EXTENSIONS_DIR": REPO / ".cache" / "torch_extensions",
}.items():
    os.environ.setdefault(_key, str(_value))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import yaml  # noqa: E402

from benchmarks.results_header import loads, machine_line, produced_by  # noqa: E402
from tests.serve.corpus import build_collection  # noqa: E402 - the serving tests' knowledge base

SUBJECTS = [
    "What torque do the HX-220 flange bolts need",
    "Which gasket kit fits the HX-220",
    "How often should the HX-220 plates be flushed, and with what",
    "Who replaces a lost badge",
    "How much does descaler DS-4 cost",
    "In which building is the security desk",
    "Describe the tightening pattern for the flange bolts",
    "What is the price of gasket kit GK-9 in euros",
]
FRAMES = ["{}?", "Quick question: {}?", "{}? Answer briefly.", "Please tell me: {}?", "I need to know: {}.",
          "{}? One sentence, please.", "For a technician on site: {}?", "{}? Be precise."]
QUESTIONS = [frame.format(subject) for frame in FRAMES for subject in SUBJECTS]  # 64 distinct prompts


@dataclass
class Run:
    server: str
    label: str
    concurrency: int
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    statuses: list[int] = field(default_factory=list)
    answers: dict[int, str] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    def pct(self, q: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if values is None else values)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(i: int, rag: bool, max_tokens: int, model: str = "base", temperature: float = 0.0, **extra) -> dict:
    out = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "rag": rag,
        **extra,
    }
    if temperature > 0:
        out["seed"] = i
    return out


def uniform(rag: bool, max_tokens: int, model: str = "base"):
    return lambda i: body(i, rag, max_tokens, model)


def mixed(adapters: list[str]):
    """Base + adapters, 4 temperatures and 3 max_tokens values (mean 32), cycling at different periods."""
    models = ["base", *adapters]
    return lambda i: body(i, False, (16, 32, 48)[i % 3], models[i % len(models)], (0.0, 0.5, 0.8, 1.2)[(i // 2) % 4])


async def drive(url: str, run: Run, requests: int, make_body, stream: bool = False) -> Run:
    """``requests`` requests with at most ``run.concurrency`` in flight; per-request latency and wall time."""
    gate = asyncio.Semaphore(run.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=900) as client:

        async def one(i: int) -> None:
            payload = make_body(i)
            async with gate:
                started = time.perf_counter()
                if stream:
                    payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
                    text = []
                    async with client.stream("POST", "/v1/chat/completions", json=payload) as r:
                        run.statuses.append(r.status_code)
                        async for line in r.aiter_lines():
                            if not line.startswith("data: {"):
                                continue
                            chunk = json.loads(line[6:])
                            if "error" in chunk:
                                raise RuntimeError(chunk["error"])
                            if chunk.get("usage"):
                                run.completion_tokens += chunk["usage"]["completion_tokens"]
                            for choice in chunk.get("choices", []):
                                piece = choice["delta"].get("content")
                                if piece:
                                    if not text:
                                        run.first_token.append(time.perf_counter() - started)
                                    text.append(piece)
                    run.latencies.append(time.perf_counter() - started)
                    run.answers[i] = "".join(text)
                    return
                r = await client.post("/v1/chat/completions", json=payload)
                run.latencies.append(time.perf_counter() - started)
                run.statuses.append(r.status_code)
                r.raise_for_status()
                out = r.json()
                if payload["rag"]:
                    assert out["sources"], "a RAG answer without sources"
                run.completion_tokens += out["usage"]["completion_tokens"]
                run.answers[i] = out["choices"][0]["message"]["content"]

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        run.wall_s = time.perf_counter() - started
    return run


def requests_for(concurrency: int, minimum: int) -> int:
    return max(minimum, 2 * concurrency)


def measure_table(urls: dict[str, str], levels: list[int], minimum: int, max_tokens: int) -> list[Run]:
    """Every (retrieval, concurrency) cell on each server in turn; the order rotates from cell to cell."""
    runs: list[Run] = []
    names = list(urls)
    cell = 0
    for rag in (False, True):
        for server in names:
            asyncio.run(drive(urls[server], Run(server, "warm-up", 2), 2, uniform(rag, max_tokens)))
        for c in levels:
            order = names[cell % len(names):] + names[: cell % len(names)]
            cell += 1
            for server in order:
                label = f"rag={'yes' if rag else 'no'}"
                run = asyncio.run(drive(urls[server], Run(server, label, c), requests_for(c, minimum), uniform(rag, max_tokens)))
                print(f"{server:7} {label} c={c:2}: {run.throughput:6.2f} req/s  p50 {run.pct(0.5):6.2f}s  "
                      f"p99 {run.pct(0.99):6.2f}s", flush=True)
                runs.append(run)
    return runs


def alternate(url: str, cells: dict[str, tuple], rounds: int) -> dict[str, list[Run]]:
    """Each named cell ``rounds`` times, in alternating order: {name: (concurrency, requests, make_body, stream)}."""
    out: dict[str, list[Run]] = {name: [] for name in cells}
    names = list(cells)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            concurrency, requests, make_body, stream = cells[name]
            run = asyncio.run(drive(url, Run("serve", name, concurrency), requests, make_body, stream))
            print(f"{name:28} round {round_}: {run.throughput:6.2f} req/s {run.tokens_per_s:7.1f} tok/s  "
                  f"p50 {run.pct(0.5):6.2f}s" + (f"  TTFT p50 {run.pct(0.5, run.first_token):5.2f}s" if stream else ""),
                  flush=True)
            out[name].append(run)
    return out


def wait_ready(url: str, process: subprocess.Popen | None = None, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not ready after {limit_s}s")


def generator_threads(config_path: Path) -> int:
    """The torch threads Ray gives the Generator replica: floor(num_cpus), at least 1 (OMP_NUM_THREADS)."""
    app = yaml.safe_load(config_path.read_text())["applications"][0]
    generator = next(d for d in app["deployments"] if d["name"] == "Generator")
    return max(1, math.floor(generator["ray_actor_options"].get("num_cpus", 1)))


@contextmanager
def process_server(command: list[str], url: str, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """A server in its own process group, stopped by its process id (SIGINT, then SIGKILL)."""
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def naive_server(uri: str, collection: str, top_k: int, threads: int) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, str(REPO / "benchmarks" / "serve" / "naive_server.py"), "--port", str(port),
        "--threads", str(threads), "--milvus-uri", uri, "--collection", collection, "--top-k", str(top_k),
    ]
    # OMP_NUM_THREADS as Ray sets it for the Generator replica's process, so both run alike.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with process_server(command, f"http://127.0.0.1:{port}", REPO, env) as url:
        yield url


@contextmanager
def checkout_of(rev: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``rev`` (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(dir=REPO / ".cache", prefix="bench-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), rev], cwd=REPO, check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO, capture_output=True)


@contextmanager
def before_server(rev: str, registry: Path, uri: str, collection: str) -> Iterator[str]:
    """This project's Serve app at commit ``rev``, on its own private local Ray."""
    with checkout_of(rev) as checkout:
        port = free_port()
        command = [
            sys.executable, str(REPO / "benchmarks" / "serve" / "serve_app.py"), "--checkout", str(checkout),
            "--port", str(port), "--registry", str(registry), "--uri", uri, "--collection", collection,
            "--temp-dir", str(REPO / ".cache" / "ray"),
        ]
        env = {**os.environ, "PYTHONPATH": str(checkout)}  # Ray's workers inherit it: they import the old code
        with process_server(command, f"http://127.0.0.1:{port}", checkout, env) as url:
            yield url


def save_adapters(root: Path, count: int) -> list[str]:
    """``count`` LoRA adapters of the default shape (r=16 on all four Phi-3 projections), untrained:
    their cost depends on their size, not their values."""
    import torch

    from modeling import AdapterRegistry, LoraSettings, ModelSettings, attach_lora, load_base_model

    registry = AdapterRegistry(root)
    names = [f"bench-{i}" for i in range(count)]
    for i, name in enumerate(names):
        torch.manual_seed(i)
        model = attach_lora(load_base_model(ModelSettings()), LoraSettings())
        registry.save(model, name, {"base_model": ModelSettings().name_or_path, "method": "untrained"})
    return names


async def switching(url: str, names: list[str], lru: int, rounds: int, max_tokens: int) -> dict[str, list[float]]:
    """Sequential requests in rounds of three: the base model, a cached adapter (used every round,
    so it never leaves the LRU), and a cold one (a pool of ``lru`` others in rotation: by the time
    one comes back, the LRU has evicted it). Measuring the three side by side in every round keeps
    drifts in background load out of their differences."""
    cached, pool = names[0], names[1 : lru + 1]
    assert len(pool) == lru, f"need {lru + 1} adapters for an LRU of {lru}"
    out: dict[str, list[float]] = {"base model": [], "cached adapter": [], "cold adapter (loaded from disk)": []}
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def timed(model: str) -> float:
            started = time.perf_counter()
            (await client.post("/v1/chat/completions", json=body(0, False, max_tokens, model))).raise_for_status()
            return time.perf_counter() - started

        for i in range(lru + rounds):  # the first lru rounds are warm-up: they bring the LRU to its steady state
            if i < lru:
                for model in ("base", cached, pool[i]):
                    await timed(model)
                continue
            out["base model"].append(await timed("base"))
            out["cached adapter"].append(await timed(cached))
            out["cold adapter (loaded from disk)"].append(await timed(pool[i % lru]))  # evicted since round i - lru
    for label, latencies in out.items():
        print(f"switching: {label:32} p50 {statistics.median(latencies) * 1000:7.1f} ms", flush=True)
    return out


@contextmanager
def serve_app(config: Path, registry: Path, uri: str, collection: str) -> Iterator[tuple[str, object]]:
    """The shipped config on a private local Ray; yields its URL and a handle to the Generator."""
    import ray
    from ray import serve

    from serve.local import run_local

    ray.init(address="local", include_dashboard=False, _temp_dir=str(REPO / ".cache" / "ray"), log_to_driver=False)
    try:
        port = free_port()
        run_local(config, host="127.0.0.1", port=port, overrides={
            "generator.adapter_registry": str(registry), "retriever.uri": uri, "retriever.collection": collection,
        })
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield url, serve.get_deployment_handle("Generator", app_name="expert")
    finally:
        serve.shutdown()
        ray.shutdown()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def med(runs: list[Run], metric) -> float:
    return statistics.median(metric(r) for r in runs)


def write_results(out: Path, command: str, args, table: list[Run], extra: dict[str, list[Run]], info: dict,
                  switch: dict, threads: int, load: tuple, elapsed: float) -> None:
    engine = yaml.safe_load(args.config.read_text())["applications"][0]["args"]["generator"]["engine"]
    cell = {(r.server, r.label, r.concurrency): r for r in table}
    levels = sorted({r.concurrency for r in table})
    lines = [
        "# Serving benchmark: continuous batching vs the app before it vs a naive server",
        "",
        *produced_by(command),
        machine_line() + f"(1/5/15 min) {loads(load[0])} at the start, {loads(load[1])} "
        "at the end (the machine is shared, so absolute numbers are noisy: read the ratios). All servers were up for "
        "the whole run and were driven in turn, cell by cell (the order rotated from cell to cell), never at the same time.",
        f"- Model: `{info['base_model']}` (135M-parameter Phi3ForCausalLM, float32) on `{info['device']}`; greedy "
        f"decoding, `max_tokens={args.max_tokens}`; every request a different question ({len(QUESTIONS)} distinct).",
        f"- **serve** = this checkout's `{args.config.relative_to(REPO)}` as shipped: Generator 1 replica, continuous "
        f"batching (`max_batch_size={engine['max_batch_size']}`, `max_step_tokens={engine['max_step_tokens']}`, "
        f"prefix cache {engine['prefix_cache_mb']} MB), torch threads {info['torch_threads']}; Retriever 1 replica, "
        "hybrid search, top_k 4.",
        f"- **before** = the same app at commit `{args.before_rev}` (static `serve.batch` batching: `max_batch_size=8`, "
        "20 ms window, one left-padded `generate` per (adapter, parameters) group, streams one at a time), "
        "served from a `git worktree` of that commit in the same run.",
        f"- **naive** = `benchmarks/serve/naive_server.py`: FastAPI + one `model.generate` per request behind a lock, "
        f"same model layer, chat template, retrieval API and RAG prompt; torch threads {threads} "
        f"(`OMP_NUM_THREADS={threads}`), as Ray sets them for the Generator replica.",
        f"- Requests per cell: {', '.join(f'{requests_for(c, args.requests)} at concurrency {c}' for c in levels)}. "
        "Latency is client-side, end to end; p99 of so few samples is close to the maximum.",
        "",
        "## `/v1/chat/completions` throughput and latency",
        "",
        "| retrieval | concurrency | naive req/s | before req/s | serve req/s | **serve / naive** | **serve / before** "
        "| p50 ms naive / before / serve | p99 ms naive / before / serve | serve tokens/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    goals: list[str] = []
    for label in ("rag=no", "rag=yes"):
        for c in levels:
            n, b, s = (cell[(server, label, c)] for server in ("naive", "before", "serve"))
            lines.append(
                f"| {label[4:]} | {c} | {n.throughput:.2f} | {b.throughput:.2f} | {s.throughput:.2f} | "
                f"**{s.throughput / n.throughput:.2f}x** | **{s.throughput / b.throughput:.2f}x** | "
                f"{ms(n.pct(0.5))} / {ms(b.pct(0.5))} / {ms(s.pct(0.5))} | "
                f"{ms(n.pct(0.99))} / {ms(b.pct(0.99))} / {ms(s.pct(0.99))} | {s.tokens_per_s:.1f} |"
            )
            if s.pct(0.99) >= n.pct(0.99):
                goals.append(f"p99 below naive's: NOT met at retrieval {label[4:]}, concurrency {c}")
    top = max(levels)
    for label, goal in (("rag=no", 4.0), ("rag=yes", 3.0)):
        ratio = cell[("serve", label, top)].throughput / cell[("naive", label, top)].throughput
        goals.append(f"throughput >= {goal:g}x naive at concurrency {top}, retrieval {label[4:]}: "
                     f"{ratio:.2f}x ({'met' if ratio >= goal else 'NOT met'})")
    one = cell[("serve", "rag=no", 1)].throughput / cell[("before", "rag=no", 1)].throughput
    goals.append(f"no worse than before at concurrency 1 (no retrieval): {one:.2f}x ({'met' if one >= 0.95 else 'NOT met'})")
    same = {
        server: [sum(cell[("naive", label, c)].answers.get(i) == cell[(server, label, c)].answers[i]
                     for i in cell[(server, label, c)].answers) / len(cell[(server, label, c)].answers)
                 for label in ("rag=no", "rag=yes") for c in levels]
        for server in ("before", "serve")
    }
    lines += [
        "",
        "Answers identical to the naive server's (same prompt, greedy), per cell: "
        + "; ".join(f"{server} {min(v):.0%} to {max(v):.0%}" for server, v in same.items()) + ".",
    ]

    single, mix = extra["single adapter, greedy"], extra["mixed adapters and sampling"]
    ratio = med(mix, lambda r: r.tokens_per_s) / med(single, lambda r: r.tokens_per_s)
    goals.append(f"mixed traffic >= 0.85x single-adapter greedy (tokens/s): {ratio:.2f}x ({'met' if ratio >= 0.85 else 'NOT met'})")
    lines += [
        "",
        f"## Mixed traffic (serve, concurrency {args.mix_concurrency}, no retrieval; median of {len(single)} alternating runs)",
        "",
        "Mixed: the base model and 3 adapters (r=16 on all four projections), temperatures 0 / 0.5 / 0.8 / 1.2 "
        "(seeded), `max_tokens` 16 / 32 / 48, all interleaved in one stream of requests; single: one adapter, greedy, "
        "`max_tokens` 32. Throughput in tokens/s because the mixes ask for different lengths (the same on average).",
        "",
        "| traffic | req/s | tokens/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in (("single adapter, greedy", single), ("mixed adapters and sampling", mix)):
        lines.append(f"| {name} | {med(runs, lambda r: r.throughput):.2f} | {med(runs, lambda r: r.tokens_per_s):.1f} | "
                     f"{ms(med(runs, lambda r: r.pct(0.5)))} | {ms(med(runs, lambda r: r.pct(0.99)))} |")
    lines += ["", f"Mixed / single: **{ratio:.2f}x** tokens/s."]

    lone, streams, plain = extra["lone stream"], extra["32 streams"], extra["32 non-streaming"]
    lone_ttft = med(lone, lambda r: r.pct(0.5, r.first_token))
    ttft = med(streams, lambda r: r.pct(0.5, r.first_token))
    tok_ratio = med(streams, lambda r: r.tokens_per_s) / med(plain, lambda r: r.tokens_per_s)
    goals.append(f"32 streams: time to first token p50 <= 2x a lone stream's: {ttft / lone_ttft:.2f}x "
                 f"({'met' if ttft <= 2 * lone_ttft else 'NOT met'})")
    goals.append(f"32 streams: tokens/s within 15% of non-streaming: {tok_ratio:.2f}x "
                 f"({'met' if tok_ratio >= 0.85 else 'NOT met'})")
    lines += [
        "",
        f"## Streams (serve, greedy, `max_tokens={args.max_tokens}`, no retrieval; median of {len(streams)} alternating runs)",
        "",
        "| cell | requests | time to first token p50 ms | p99 ms | end to end p50 ms | tokens/s | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, runs in (("lone stream", lone), ("32 streams", streams), ("32 non-streaming", plain)):
        first = (f"{ms(med(runs, lambda r: r.pct(0.5, r.first_token)))} | {ms(med(runs, lambda r: r.pct(0.99, r.first_token)))}"
                 if runs[0].first_token else "- | -")
        statuses = sorted({s for r in runs for s in r.statuses})
        lines.append(f"| {name} | {len(runs[0].latencies)} | {first} | {ms(med(runs, lambda r: r.pct(0.5)))} | "
                     f"{med(runs, lambda r: r.tokens_per_s):.1f} | {statuses} |")

    lines += [
        "",
        "## Switching LoRA adapters (serve, sequential requests, `max_tokens=8`)",
        "",
        f"{len(next(iter(switch.values())))} rounds of three requests (base model, a cached adapter, a cold adapter), "
        "after warm-up; the extra cost is the median of the per-round differences. The replica keeps an LRU of "
        "`max_adapters_per_replica=4` adapters; the cold adapter of each round was evicted by the rounds before it.",
        "",
        "| request | p50 ms | p99 ms | extra over the cached adapter (median of paired differences) ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    reference = switch["cached adapter"]
    for label, latencies in switch.items():
        ordered = sorted(latencies)
        p50, p99 = statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
        extra_ms = statistics.median(x - r for x, r in zip(latencies, reference))
        lines.append(f"| {label} | {ms(p50)} | {ms(p99)} | {ms(extra_ms)} |")
    stats = info["adapter_stats"]
    if stats["loads"]:
        lines += ["", f"Inside the Generator replica, loading an adapter took {stats['load_seconds'] / stats['loads'] * 1000:.0f} ms "
                  f"on average over {stats['loads']} loads ({stats['unloads']} LRU evictions)."]
    engine_stats = info["engine"]
    lines += [
        "",
        "## Goals",
        "",
        *[f"- {g}" for g in goals],
        "",
        f"Engine counters at the end: {engine_stats['steps']} steps, {engine_stats['generated_tokens']} tokens generated, "
        f"{engine_stats['prompt_tokens']} prompt tokens computed and {engine_stats['prefix_hit_tokens']} served from the "
        f"prefix cache, {engine_stats['refused']} requests refused.",
        "",
        f"Whole run: {elapsed / 60:.1f} minutes.",
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "serve" / "config.yaml")
    parser.add_argument("--before-rev", default="1cac142", help="the commit whose Serve app is 'before'")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=16, help="requests per cell (at least 2 per client)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--mix-concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the mixed and stream cells")
    parser.add_argument("--switch-rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "serve" / "RESULTS.md")
    args = parser.parse_args()
    args.config = args.config.resolve()
    levels = [int(x) for x in args.levels.split(",")]

    started, load_start = time.perf_counter(), os.getloadavg()
    command = ("python benchmarks/serve/bench_serve.py " + shlex.join(sys.argv[1:])).strip()
    threads = generator_threads(args.config)
    app_args = yaml.safe_load(args.config.read_text())["applications"][0]["args"]
    with tempfile.TemporaryDirectory(dir=REPO / ".cache", prefix="bench-serve-") as tmp:
        work = Path(tmp)
        # The same documents in one Milvus Lite file per server: each is locked by the one process that opens it.
        uris = {}
        for name in ("naive", "before", "serve"):
            (work / name).mkdir()
            uris[name], collection = build_collection(work / name)
        adapters = save_adapters(work / "adapters", 5)
        with naive_server(uris["naive"], collection, app_args["retriever"]["top_k"], threads) as naive_url, \
                before_server(args.before_rev, work / "adapters", uris["before"], collection) as before_url, \
                serve_app(args.config, work / "adapters", uris["serve"], collection) as (serve_url, generator):
            urls = {"naive": naive_url, "before": before_url, "serve": serve_url}
            table = measure_table(urls, levels, args.requests, args.max_tokens)
            c = args.mix_concurrency
            extra = alternate(serve_url, {
                "single adapter, greedy": (c, 2 * c, uniform(False, args.max_tokens, adapters[0]), False),
                "mixed adapters and sampling": (c, 2 * c, mixed(adapters[1:4]), False),
            }, args.rounds)
            extra |= alternate(serve_url, {
                "lone stream": (1, 8, uniform(False, args.max_tokens), True),
                "32 streams": (32, 64, uniform(False, args.max_tokens), True),
                "32 non-streaming": (32, 64, uniform(False, args.max_tokens), False),
            }, args.rounds)
            lru = app_args["generator"]["max_adapters_per_replica"]
            switch = asyncio.run(switching(serve_url, adapters, lru, args.switch_rounds, max_tokens=8))
            info = generator.info.remote().result()
    write_results(args.out, command, args, table, extra, info, switch, threads, (load_start, os.getloadavg()),
                  time.perf_counter() - started)


if __name__ == "__main__":
    main()

"""Serving benchmark: the Ray Serve app against a naive one-``generate``-per-request server.

In one run, on the same machine, with the same model, prompts and generation parameters:

1. ``/v1/chat/completions`` throughput and latency p50/p99, with and without retrieval, at
   concurrency 1, 8 and 32, on the naive baseline (naive_server.py) and on the Serve app
   (serve/config.yaml as shipped, on a private local Ray). Both are up for the whole run and
   are driven in turn, cell by cell (never at the same time, alternating which goes first), so
   background load drifts hit both alike; the naive server uses as many torch threads as the Generator replica.
2. The cost of switching LoRA adapters on the Serve app: base model, a cached adapter and a
   cold one (evicted from the replica's LRU, so loaded from disk), side by side in rounds.

Writes benchmarks/serve/RESULTS.md (or --out) with the command that produced it.

    python benchmarks/serve/bench_serve.py            # ~10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
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

from tests.serve.corpus import build_collection  # noqa: E402 - the serving tests' knowledge base

QUESTIONS = [
    "What torque do the HX-220 flange bolts need?",
    "Which gasket kit fits the HX-220?",
    "How often should the HX-220 plates be flushed, and with what?",
    "Who replaces a lost badge?",
    "How much does descaler DS-4 cost?",
    "In which building is the security desk?",
    "Describe the tightening pattern for the flange bolts.",
    "What is the price of gasket kit GK-9 in euros?",
]


@dataclass
class Run:
    server: str
    rag: bool
    concurrency: int
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    answers: dict[int, str] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(i: int, rag: bool, max_tokens: int, model: str = "base") -> dict:
    return {
        "model": model,
        "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "rag": rag,
    }


async def drive(url: str, run: Run, requests: int, max_tokens: int) -> Run:
    """``requests`` requests with at most ``run.concurrency`` in flight; per-request latency and wall time."""
    gate = asyncio.Semaphore(run.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(i: int) -> None:
            async with gate:
                started = time.perf_counter()
                r = await client.post("/v1/chat/completions", json=body(i, run.rag, max_tokens))
                run.latencies.append(time.perf_counter() - started)
                r.raise_for_status()
                out = r.json()
                if run.rag:
                    assert out["sources"], "a RAG answer without sources"
                run.completion_tokens += out["usage"]["completion_tokens"]
                run.answers[i] = out["choices"][0]["message"]["content"]

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        run.wall_s = time.perf_counter() - started
    return run


def measure(urls: dict[str, str], levels: list[int], requests_for, max_tokens: int) -> dict[str, list[Run]]:
    """Every (retrieval, concurrency) cell on each server in turn (which one goes first
    alternates), so slow drifts in the machine's background load hit both servers alike."""
    runs: dict[str, list[Run]] = {server: [] for server in urls}
    cell = 0
    for rag in (False, True):
        for server, url in urls.items():
            asyncio.run(drive(url, Run(server, rag, 2), 2, max_tokens))  # warm-up (first-call costs)
        for c in levels:
            order = list(urls.items()) if cell % 2 == 0 else list(urls.items())[::-1]  # who goes first alternates
            cell += 1
            for server, url in order:
                run = asyncio.run(drive(url, Run(server, rag, c), requests_for(c), max_tokens))
                print(f"{server:5} rag={rag!s:5} c={c:2}: {run.throughput:6.2f} req/s  p50 {run.pct(0.5):6.2f}s  "
                      f"p99 {run.pct(0.99):6.2f}s", flush=True)
                runs[server].append(run)
    return runs


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
def naive_server(uri: str, collection: str, top_k: int, threads: int) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, str(REPO / "benchmarks" / "serve" / "naive_server.py"), "--port", str(port),
        "--threads", str(threads), "--milvus-uri", uri, "--collection", collection, "--top-k", str(top_k),
    ]
    # OMP_NUM_THREADS as Ray sets it for the Generator replica's process, so both run alike.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def save_adapters(root: Path, count: int) -> list[str]:
    """``count`` LoRA adapters of the default shape (r=16 on all four Phi-3 projections), untrained:
    switching cost depends on their size, not their values."""
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


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def write_results(out: Path, command: str, args, naive: list[Run], served: list[Run], info: dict, switch: dict,
                  threads: int, load: tuple[tuple[float, ...], tuple[float, ...]], elapsed: float) -> None:
    config = yaml.safe_load(args.config.read_text())["applications"][0]["args"]["generator"]
    lines = [
        "# Serving benchmark: Ray Serve app vs naive one-`generate`-per-request server",
        "",
        "Produced by (from the repository root, nothing else of ours running):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU; "
        f"load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load[0])} at the start, "
        f"{'/'.join(f'{x:.1f}' for x in load[1])} at the end (the machine is shared with other work, so absolute "
        "numbers are noisy). Both servers were up for the whole run and were driven in turn, cell by cell "
        "(which one went first alternated from row to row), never at the same time.",
        f"- Model: `{info['base_model']}` (135M-parameter Phi3ForCausalLM, float32) on `{info['device']}`; "
        f"greedy decoding, `max_tokens={args.max_tokens}`; {len(QUESTIONS)} different questions in rotation.",
        f"- Serve app: `{args.config.relative_to(REPO)}` as shipped (Generator: 1 replica, "
        f"`max_batch_size={config['max_batch_size']}`, `batch_wait_timeout_s={config['batch_wait_timeout_s']}`; "
        f"Retriever: 1 replica, hybrid search, top_k 4). Generator torch threads: {info['torch_threads']}.",
        f"- Naive baseline: `benchmarks/serve/naive_server.py`: FastAPI + one `model.generate` per request "
        f"behind a lock (no batching), same model layer, chat template, retrieval API and RAG prompt; "
        f"torch threads: {threads} and `OMP_NUM_THREADS={threads}`, as Ray sets them for the Generator replica.",
        f"- Requests per level: {', '.join(f'{len(s.latencies)} at concurrency {s.concurrency}' for s in served if not s.rag)}"
        " (at least 2 per client); p99 of so few samples is close to the maximum. Latency is client-side, end to end.",
        "",
        "## `/v1/chat/completions` throughput and latency",
        "",
        "| retrieval | concurrency | naive req/s | Serve req/s | **throughput ratio** | naive p50 ms | Serve p50 ms "
        "| naive p99 ms | Serve p99 ms | **p50 ratio** (naive/Serve) | Serve tokens/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, s in zip(naive, served):
        lines.append(
            f"| {'yes' if s.rag else 'no'} | {s.concurrency} | {n.throughput:.2f} | {s.throughput:.2f} | "
            f"**{s.throughput / n.throughput:.2f}x** | {fmt_ms(n.pct(0.5))} | {fmt_ms(s.pct(0.5))} | "
            f"{fmt_ms(n.pct(0.99))} | {fmt_ms(s.pct(0.99))} | **{n.pct(0.5) / s.pct(0.5):.2f}x** | {s.tokens_per_s:.1f} |"
        )
    same = [
        sum(n.answers[i] == s.answers[i] for i in s.answers) / len(s.answers)
        for n, s in zip(naive, served)
    ]
    lines += [
        "",
        f"Answers identical to the naive server's (same prompt, greedy): {min(same):.0%} to {max(same):.0%} per level "
        "(batched requests are left-padded to a common length, which can change float rounding and so a token).",
        "",
        "## Switching LoRA adapters (Serve app, sequential requests, `max_tokens=8`)",
        "",
        f"{len(next(iter(switch.values())))} rounds of three requests (base model, a cached adapter, a cold adapter), "
        "after warm-up; the extra cost is the median of the per-round differences. Adapters: r=16 LoRA on qkv_proj, "
        "o_proj, gate_up_proj, down_proj (untrained: the cost depends on size, not values). Serve's multiplexing keeps "
        f"an LRU of `max_adapters_per_replica={config['max_adapters_per_replica']}` adapters per replica; the cold "
        "adapter of each round was evicted by the rounds before it.",
        "",
        "| request | p50 ms | p99 ms | extra over the cached adapter (median of paired differences) ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    reference = switch["cached adapter"]
    for label, latencies in switch.items():
        ordered = sorted(latencies)
        p50, p99 = statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
        extra = statistics.median(x - r for x, r in zip(latencies, reference))
        lines.append(f"| {label} | {fmt_ms(p50)} | {fmt_ms(p99)} | {fmt_ms(extra)} |")
    stats = info["adapter_stats"]
    if stats["loads"]:
        lines += [
            "",
            f"Inside the Generator replica, loading an adapter (read safetensors + inject LoRA layers) took "
            f"{stats['load_seconds'] / stats['loads'] * 1000:.0f} ms on average over {stats['loads']} loads "
            f"({stats['unloads']} LRU evictions); switching to a cached adapter is only peft's `set_adapter`, "
            "and the base model runs with the adapters disabled.",
        ]
    lines += ["", f"Whole run: {elapsed / 60:.1f} minutes.", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "serve" / "config.yaml")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=16, help="requests per level (at least 2 per client)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--switch-rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "serve" / "RESULTS.md")
    args = parser.parse_args()
    args.config = args.config.resolve()
    levels = [int(x) for x in args.levels.split(",")]

    def requests_for(c: int) -> int:
        return max(args.requests, 2 * c)

    started, load_start = time.perf_counter(), os.getloadavg()
    command = "python benchmarks/serve/bench_serve.py " + shlex.join(sys.argv[1:])
    threads = generator_threads(args.config)
    app_args = yaml.safe_load(args.config.read_text())["applications"][0]["args"]
    with tempfile.TemporaryDirectory(dir=REPO / ".cache", prefix="bench-serve-") as tmp:
        work = Path(tmp)
        # The same documents in two Milvus Lite files: each is locked by the one process that opens it.
        for name in ("naive", "serve"):
            (work / name).mkdir()
        naive_uri, collection = build_collection(work / "naive")
        serve_uri, _ = build_collection(work / "serve")
        adapter_names = save_adapters(work / "adapters", 5)
        with naive_server(naive_uri, collection, app_args["retriever"]["top_k"], threads) as naive_url, \
                serve_app(args.config, work / "adapters", serve_uri, collection) as (serve_url, generator):
            info = generator.info.remote().result()
            runs = measure({"naive": naive_url, "serve": serve_url}, levels, requests_for, args.max_tokens)
            lru = app_args["generator"]["max_adapters_per_replica"]
            switch = asyncio.run(switching(serve_url, adapter_names, lru, args.switch_rounds, max_tokens=8))
            info["adapter_stats"] = generator.info.remote().result()["adapter_stats"]  # loads timed in the replica
    write_results(args.out, command.strip(), args, runs["naive"], runs["serve"], info, switch, threads,
                  (load_start, os.getloadavg()), time.perf_counter() - started)


if __name__ == "__main__":
    main()

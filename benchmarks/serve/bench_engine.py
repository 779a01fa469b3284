"""Engine-level measurements of continuous batching (no HTTP, no Ray): how close decoding gets to
what this CPU allows, and what prefix reuse saves.

0. What the libraries ship, on the same 32 requests (greedy, 32 new tokens): transformers'
   static batched ``generate`` (left-padded), transformers' continuous batching
   (``generate_batch``, its paged cache, warm manager) and this engine.
1. The limits of one replica's thread: memory bandwidth (a read-bound reduction over 1 GiB) and
   the float32 matmul rate (a 64 x 576 x 3072 GEMM, the shape of one decoding step's MLP).
2. Decode tokens/s of the engine at batch 1, 8 and 32 (all rows decoding), against the
   memory-bandwidth bound (every step reads every weight once: batch x bandwidth / weight bytes)
   and the compute bound (batch tokens x 2 x parameters per token / matmul rate).
3. Prefix reuse: 32 RAG-shaped requests (the shared RAG system prompt, four passages, distinct
   questions) with the prefix cache on and off, alternating; prompt tokens computed, wall time and
   time to first token.

    python benchmarks/serve/bench_engine.py            # ~3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
for _key, _value in {"EXPERT_CACHE_DIR": REPO / ".cache", "HF_HOME": REPO / ".cache" / "huggingface"}.items():
    os.environ.setdefault(_key, str(_value))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from benchmarks.results_header import loads, machine_line, produced_by  # noqa: E402
from modeling import AdapterHost, AdapterRegistry, GenerationParams, ModelSettings, encode_chat  # noqa: E402
from modeling import load_base_model, load_tokenizer  # noqa: E402
from modeling.engine import EngineSettings, GenerationEngine  # noqa: E402
from modeling.rag_prompt import Passage, build_rag_messages  # noqa: E402

PASSAGES = [
    Passage(text="Tighten the HX-220 flange bolts to 45 Nm in a star pattern. Use gasket kit GK-9 only. "
            "Check the torque again after the first 24 hours of operation.", source="manuals/hx220.md", section="Assembly"),
    Passage(text="Flush the plates with descaler DS-4 every 600 operating hours, then rinse with clean water "
            "until the outlet runs clear.", source="manuals/hx220.md", section="Cleaning"),
    Passage(text="Lost badges are replaced by the security desk in building C within one working day.",
            source="policies/badges.md", section="Badges"),
    Passage(text="part_no: GK-9 | name: Gasket kit | price_eur: 38.50", source="structured/parts.csv", section="row 1"),
]
TOPICS = ["flange bolts", "gasket kit", "descaler", "plate flushing", "badge replacement", "security desk",
          "star pattern", "torque check", "outlet rinse", "parts price"]


class Sink:
    """Records when a request was submitted, got its first token and finished."""

    def __init__(self) -> None:
        self.submitted = time.perf_counter()
        self.first: float | None = None
        self.done_at = 0.0
        self.done = threading.Event()
        self.result = None

    def piece(self, text: str) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def finish(self, completion) -> None:
        self.done_at = time.perf_counter()
        if self.first is None:
            self.first = self.done_at
        self.result = completion
        self.done.set()

    def fail(self, error: BaseException) -> None:
        raise error


def bandwidth_gb_s(repeats: int = 5) -> float:
    x = torch.ones(2**28)  # 1 GiB of float32
    x.sum()
    best = min(_timed(lambda: x.sum()) for _ in range(repeats))
    return x.numel() * 4 / best / 1e9


def matmul_gflops(repeats: int = 50) -> float:
    a, w = torch.randn(64, 576), torch.randn(3072, 576)
    torch.nn.functional.linear(a, w)
    seconds = _timed(lambda: [torch.nn.functional.linear(a, w) for _ in range(repeats)]) / repeats
    return 2 * 64 * 576 * 3072 / seconds / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(engine: GenerationEngine, prompts: list[list[int]], params: GenerationParams) -> tuple[float, list[Sink]]:
    """Submit all at once; wall time until the last finishes."""
    sinks = [Sink() for _ in prompts]
    started = time.perf_counter()
    for prompt, sink in zip(prompts, sinks):
        engine.submit(prompt, params, sink)
    for sink in sinks:
        sink.done.wait()
    return time.perf_counter() - started, sinks


def decode_rate(engine: GenerationEngine, tokenizer, batch: int, new_tokens: int) -> float:
    """Tokens/s while all ``batch`` rows decode: from the moment every row has its first token
    to the moment the first row finishes (sampled from the engine's counters)."""
    prompts = [encode_chat(tokenizer, [{"role": "user", "content": f"Tell me about {TOPICS[i % len(TOPICS)]} #{i}."}])
               for i in range(batch)]
    params = GenerationParams(max_new_tokens=new_tokens, temperature=1.0, seed=1)  # rows rarely stop early
    sinks = [Sink() for _ in prompts]
    for prompt, sink in zip(prompts, sinks):
        engine.submit(prompt, params, sink)
    while any(s.first is None for s in sinks):
        time.sleep(0.001)
    t0, tokens0 = time.perf_counter(), engine.stats.generated_tokens
    while not any(s.done.is_set() for s in sinks):
        time.sleep(0.001)
    t1, tokens1 = time.perf_counter(), engine.stats.generated_tokens
    for sink in sinks:
        sink.done.wait()
    return (tokens1 - tokens0) / (t1 - t0)


def library_comparison(model, tokenizer, host, rounds: int) -> dict[str, float]:
    """Seconds for 32 greedy requests of 32 new tokens: static generate, transformers CB, this engine.

    Run one implementation after the other (transformers' continuous batching switches the
    model to its paged attention and keeps a persistent manager while it is measured warm).
    """
    from transformers import GenerationConfig

    from modeling.generation import end_token_ids, generate_from_ids

    prompts = [encode_chat(tokenizer, [{"role": "user", "content": f"Tell me about {TOPICS[i % len(TOPICS)]}, case {i}."}])
               for i in range(32)]
    params = GenerationParams(max_new_tokens=32)
    config = GenerationConfig(max_new_tokens=32, do_sample=False, eos_token_id=end_token_ids(model, tokenizer),
                              pad_token_id=tokenizer.pad_token_id)
    static = "transformers generate (static batch, left-padded)"
    paged = "transformers generate_batch (continuous batching, paged cache)"
    ours = "this engine (continuous batching, ragged attention)"
    times: dict[str, list[float]] = {static: [], paged: [], ours: []}
    model.set_attn_implementation("sdpa")
    with torch.inference_mode():
        model.generate_batch(prompts[:2], generation_config=config, persistent_manager=True, warmup=False)  # warm up
        for _ in range(rounds):
            times[paged].append(_timed(lambda: model.generate_batch(
                prompts, generation_config=config, persistent_manager=True, warmup=False)))
    model.destroy_cached_continuous_batching_manager()
    model.set_attn_implementation("sdpa")
    with torch.inference_mode():
        generate_from_ids(model, tokenizer, prompts[:2], params)
        for _ in range(rounds):
            times[static].append(_timed(lambda: generate_from_ids(model, tokenizer, prompts, params)))
    engine = GenerationEngine(host, tokenizer, EngineSettings())
    try:
        run(engine, prompts[:2], params)
        for _ in range(rounds):
            times[ours].append(run(engine, prompts, params)[0])
    finally:
        engine.stop()
    for name, values in times.items():
        print(f"{name}: {statistics.median(values):.2f}s", flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a CPU Generator replica has 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "serve" / "ENGINE.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/serve/bench_engine.py " + shlex.join(sys.argv[1:])
    started = time.perf_counter()
    load = os.getloadavg()

    settings = ModelSettings()
    tokenizer = load_tokenizer(settings)
    model = load_base_model(settings).eval()
    host = AdapterHost(model, AdapterRegistry(REPO / ".cache" / "bench-engine-none"))
    params_total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied head: read once per step
    per_token_flops = 2 * params_total  # every linear layer plus the LM head; the embedding lookup is free

    libraries = library_comparison(model, tokenizer, host, args.rounds)
    gb_s, gflops = bandwidth_gb_s(), matmul_gflops()
    print(f"bandwidth {gb_s:.1f} GB/s, matmul {gflops:.1f} GFLOP/s", flush=True)

    engine = GenerationEngine(host, tokenizer, EngineSettings(max_batch_size=64))
    decode = {}
    try:
        run(engine, [encode_chat(tokenizer, [{"role": "user", "content": "warm up"}])], GenerationParams(max_new_tokens=8))
        for batch in (1, 8, 32):
            rates = [decode_rate(engine, tokenizer, batch, 48) for _ in range(args.rounds)]
            decode[batch] = statistics.median(rates)
            print(f"decode batch {batch}: {decode[batch]:.1f} tokens/s", flush=True)
    finally:
        engine.stop()

    rag_prompts = [
        encode_chat(tokenizer, build_rag_messages(f"What does the manual say about the {t} (case {i})?", PASSAGES))
        for i, t in enumerate(TOPICS * 4)
    ][:32]
    prefix = {0: [], 256: []}
    for round_ in range(args.rounds):
        for cache_mb in ((0, 256) if round_ % 2 == 0 else (256, 0)):
            engine = GenerationEngine(host, tokenizer, EngineSettings(prefix_cache_mb=cache_mb))
            try:
                wall, sinks = run(engine, rag_prompts, GenerationParams(max_new_tokens=16))
                stats = engine.snapshot()
            finally:
                engine.stop()
            ttft = statistics.median(s.first - s.submitted for s in sinks)
            prefix[cache_mb].append((wall, ttft, stats["prompt_tokens"], stats["prefix_hit_tokens"]))
            print(f"prefix cache {cache_mb} MB: {wall:.2f}s, TTFT p50 {ttft:.2f}s, computed {stats['prompt_tokens']}",
                  flush=True)

    def med(cache_mb: int, i: int) -> float:
        return statistics.median(r[i] for r in prefix[cache_mb])

    lines = [
        "# Engine measurements: decode rate against this CPU's limits, and prefix reuse",
        "",
        *produced_by(command.strip()),
        machine_line() + f"{loads(load)} at the start. torch threads: {args.threads} (as in a CPU Generator replica).",
        f"- Model: `{settings.name_or_path}`, {params_total / 1e6:.0f}M parameters ({embedding / 1e6:.0f}M of them the "
        f"tied embedding / LM head), float32: {weight_bytes / 1e6:.0f} MB of weights read per decoding step.",
        "",
        f"## What the libraries ship, on the same 32 requests (greedy, 32 new tokens, median of {args.rounds})",
        "",
        "| implementation | seconds | requests/s |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {seconds:.2f} | {32 / seconds:.2f} |" for name, seconds in libraries.items()],
        "",
        f"- Limits measured here: memory bandwidth **{gb_s:.1f} GB/s** (read-bound sum over 1 GiB, best of 5), "
        f"float32 matmul **{gflops:.1f} GFLOP/s** (64 x 576 x 3072).",
        "",
        "## Decode tokens/s per replica (all rows decoding; median of "
        f"{args.rounds} runs of 48 new tokens per row)",
        "",
        "| batch | engine tokens/s | memory-bandwidth bound | compute bound | **fraction of the tighter bound** |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch, rate in decode.items():
        memory_bound = batch * gb_s * 1e9 / weight_bytes
        compute_bound = gflops * 1e9 / per_token_flops
        bound = min(memory_bound, compute_bound)
        lines.append(f"| {batch} | {rate:.1f} | {memory_bound:.1f} | {compute_bound:.1f} | **{rate / bound:.0%}** |")
    lines += [
        "",
        "The memory bound grows with the batch (one read of the weights serves every row); past a few rows the "
        "float32 matmul rate is the limit on one core, so batching beyond that adds rows without adding speed.",
        "",
        f"## Prefix reuse (32 RAG prompts of ~{statistics.mean(map(len, rag_prompts)):.0f} tokens: the shared RAG system "
        f"prompt and four passages, then distinct questions; 16 new tokens; median of {args.rounds} alternating runs)",
        "",
        "| prefix cache | prompt tokens computed | served from the cache | wall s | time to first token p50 s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for cache_mb, label in ((0, "off"), (256, "on (256 MB)")):
        lines.append(f"| {label} | {med(cache_mb, 2):.0f} | {med(cache_mb, 3):.0f} | {med(cache_mb, 0):.2f} | "
                     f"{med(cache_mb, 1):.2f} |")
    lines += [
        "",
        f"With the cache on the 32 requests took **{med(256, 0) / med(0, 0):.2f}x** the time without it "
        f"(time to first token {med(256, 1) / med(0, 1):.2f}x).",
        "",
        f"Whole run: {(time.perf_counter() - started) / 60:.1f} minutes.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Training throughput: our trainer (Ray Train + DeepSpeed, packing) against the usual recipe.

One command runs, one after the other on the same machine, model, data and sequence length,
every variant given the same 2 cores:

* ``baseline-2t``: Hugging Face ``Trainer`` + PEFT LoRA, batches of 4 padded to their longest
  example (``hf_baseline.py``), one process with 2 torch threads;
* ``baseline-ddp2``: the same Trainer as 2 single-threaded processes (``torchrun``, its DDP
  over gloo), 2 examples each per step;
* ``baseline-1t``: one process, one thread (the most efficient per CPU-second; optional);
* ``ours``: ``train.run`` on ``train/recipes/cpu-demo.yaml`` (2 Ray Train workers x 1 core,
  DeepSpeed ZeRO-2, packing on);
* ``ours-ddp``: the same with ``strategy: ddp`` (torch DDP instead of the ZeRO engine);
* ``ours-unpacked``: packing off (4 examples per step padded to their longest, like the
  baseline), which separates what packing buys from the rest (optional).

Each variant runs in a fresh process. Tokens/s counts real (non-padding) tokens over the
training time; tokens per CPU-second divides them by the CPU time the training steps used
(all threads, all workers), which stays meaningful when other work shares the machine.
Startup is everything before the first step (imports, data, Ray, worker start, model load,
DeepSpeed init). Prints a Markdown table and writes the raw numbers to
``results/train-throughput.json``.

    python benchmarks/train/throughput.py [--variants baseline-2t,baseline-ddp2,ours,ours-ddp]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = "train/recipes/cpu-demo.yaml"


def run_ours(variant: str) -> dict:
    """Train in this process through the public API (``train.run``) and measure it."""
    started = time.time()
    from train import load_recipe, run

    imports_s = time.time() - started
    packing, ddp = variant != "ours-unpacked", variant == "ours-ddp"
    name = f"bench-{variant}"
    overrides = [
        f"output.registry={REPO / 'results' / 'bench-adapters'}",
        f"output.run_dir={REPO / 'results' / 'bench-runs'}",
        f"output.adapter_name={name}",
        "output.overwrite=true",
        "training.eval_every=0",  # evaluation is not training throughput; only before and after
        "tracking.tensorboard=false",  # the baseline logs nothing either
    ]
    if ddp:
        overrides += ["strategy=ddp"]
    if not packing:
        overrides += ["data.packing=false", "training.micro_batch_size=2"]  # 2 workers x 2 = 4 examples/step
    result = run(load_recipe(CONFIG, overrides))
    m = result.metrics
    return {
        "variant": f"ours: Ray Train 2 workers, {'torch DDP' if ddp else 'DeepSpeed ZeRO-2'}, packing {'on' if packing else 'off'}",
        "real_tokens": m["tokens_seen"],
        "steps": m["steps"],
        "train_seconds": m["train_seconds"],
        "tokens_per_s": m["train_tokens_per_s"],
        "train_cpu_s": m["train_cpu_seconds_all_workers"],
        "tokens_per_cpu_s": round(m["tokens_seen"] / m["train_cpu_seconds_all_workers"], 2),
        "startup_s": round(imports_s + m["startup_s"], 2),
        "ray_init_s": m["ray_init_s"],
        "worker_startup_s": m["worker_startup_s"],
        "engine_init_s": m["engine_init_s"],
        "model_load_s": m["model_load_s"],
        "wall_s": round(time.time() - started, 2),
        "peak_rss_mb_per_worker": m["peak_memory_mb_per_worker"],
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss_first": m["train_loss_first"],
        "loss_last": m["train_loss_last"],
        "eval_loss_start": m["eval_loss_start"],
        "eval_loss_end": m["eval_loss_end"],
        "row_fill": m["row_fill"],
    }


def measure(variant: str) -> dict:
    """Run one variant in a fresh Python process and return its JSON line."""
    baseline = [str(REPO / "benchmarks/train/hf_baseline.py"), "--config", CONFIG]
    if variant in ("baseline-1t", "baseline-2t"):
        command = [sys.executable, *baseline, "--threads", variant[-2], "--batch-size", "4"]
    elif variant == "baseline-ddp2":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   *baseline, "--threads", "1", "--batch-size", "2"]
    else:
        command = [sys.executable, __file__, "--child", variant]
    started = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-4000:]}")
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    result["process_wall_s"] = round(time.time() - started, 2)
    return result


def table(results: dict[str, dict]) -> str:
    """Every variant against the better baseline (highest tokens/s, and highest tokens per CPU-second)."""
    baselines = [r for name, r in results.items() if name.startswith("baseline")]
    best_speed = max((r["tokens_per_s"] for r in baselines), default=None)
    best_cpu = max((r["tokens_per_cpu_s"] for r in baselines), default=None)
    lines = [
        "| variant | real tokens | train s | tokens/s | vs best baseline | tokens per CPU-s | vs best baseline "
        "| startup s | process wall s | peak memory MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.values():
        ratio = f"{r['tokens_per_s'] / best_speed:.2f}x" if best_speed else "-"
        cpu_ratio = f"{r['tokens_per_cpu_s'] / best_cpu:.2f}x" if best_cpu else "-"
        rss = r.get("peak_rss_mb") or f"{r['peak_rss_mb_per_worker']} per worker x2 + driver {r['driver_peak_rss_mb']}"
        lines.append(
            f"| {r['variant']} | {r['real_tokens']} | {r['train_seconds']} | {r['tokens_per_s']} | {ratio} | "
            f"{r['tokens_per_cpu_s']} | {cpu_ratio} | {r['startup_s']} | {r['process_wall_s']} | {rss} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="baseline-2t,baseline-ddp2,ours,ours-ddp")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_ours(args.child)))
        return
    results = {}
    for variant in args.variants.split(","):
        print(f"running {variant} ...", file=sys.stderr, flush=True)
        results[variant] = measure(variant)
        print(json.dumps(results[variant]), file=sys.stderr, flush=True)
    out = REPO / "results" / "train-throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()

"""Per-worker memory by strategy, and what gradient checkpointing trades, measured through ``train.run``.

Two measurements, each variant in a fresh process, one after the other:

* ``strategies``: a Phi-3 of about 1B parameters with random weights (hidden 2048, 16 layers,
  intermediate 5632, the offline tokenizer's vocabulary of 49,152, fp32; built once under the cache folder), 2 Ray Train
  workers, 2 steps of micro-batch 1 x ``--seq-len`` tokens: LoRA ZeRO-2, LoRA ZeRO-3
  (sharded loading through HfDeepSpeedConfig), QLoRA ZeRO-2, QLoRA ZeRO-3 (4-bit weights in
  fp32 storage, sharded by ``deepspeed.initialize``); ZeRO-3 with
  ``deepspeed.stage3_live_parameters=1e8`` (two layers' worth kept gathered, not DeepSpeed's
  1e9, which is the whole of this model). Reported per rank: the private-memory
  peak of the whole run and of loading alone (``train.memory_usage``), the kernel's RSS
  high-water mark, and the ``--plan`` estimate.
* ``checkpointing``: the offline Phi-3 (135M) on 1 worker at sequence length 2048, with and
  without gradient checkpointing: peak memory and seconds per step.

    python benchmarks/train/memory.py [--measure strategies,checkpointing] [--seq-len 256]

Prints Markdown tables and writes ``results/train-memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = "train/recipes/cpu-demo.yaml"
DATA = "train/examples/parts-catalogue.jsonl"
SHAPE_1B = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16,
                num_key_value_heads=16, max_position_embeddings=4096,
                original_max_position_embeddings=4096, tie_word_embeddings=False)
STRATEGIES = {
    "lora-zero2": ["model.quantization=none", "deepspeed.zero_stage=2"],
    "lora-zero3": ["model.quantization=none", "deepspeed.zero_stage=3", "deepspeed.stage3_live_parameters=100000000"],
    "qlora-zero2": ["model.quantization=nf4", "deepspeed.zero_stage=2"],
    "qlora-zero3": ["model.quantization=nf4", "deepspeed.zero_stage=3", "deepspeed.stage3_live_parameters=100000000"],
}


def random_1b_model() -> Path:
    """A randomly initialised ~1B-parameter Phi-3 with the offline model's tokenizer (built once)."""
    from modeling import ModelSettings, load_tokenizer
    from modeling.paths import cache_dir

    folder = cache_dir() / "bench-phi3-1b-random-v2"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    tokenizer = load_tokenizer(ModelSettings())
    torch.manual_seed(0)
    # the vocabulary is the tokenizer's (49,152 for the offline model, not Phi-3's 32,064): the data's
    # token ids must all have an embedding row
    config = Phi3Config(**SHAPE_1B, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                        bos_token_id=tokenizer.bos_token_id)
    Phi3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_variant(name: str, seq_len: int) -> dict:
    """Train one variant in this process and return its measurements."""
    from train import load_recipe, run
    from train.memory_plan import plan_memory

    common = [
        f"data.train_files=[{DATA}]", "data.val_fraction=0", f"data.max_seq_len={seq_len}",
        "training.max_steps=2", "training.grad_accum_steps=1", "training.micro_batch_size=1",
        f"output.registry={REPO / 'results' / 'bench-adapters'}", f"output.run_dir={REPO / 'results' / 'bench-runs'}",
        f"output.adapter_name=bench-mem-{name}", "output.overwrite=true", "tracking.tensorboard=false",
    ]
    if name in STRATEGIES:
        overrides = common + [f"model.name_or_path={random_1b_model()}", "strategy=deepspeed"] + STRATEGIES[name]
    else:  # checkpointing on/off, 1 worker, offline Phi-3
        overrides = common + ["scaling.num_workers=1", "strategy=ddp", f"training.gradient_checkpointing={name == 'ckpt-on'}"]
    recipe = load_recipe(CONFIG, overrides)
    plan = plan_memory(recipe)
    started = time.time()
    m = run(recipe).metrics
    return {
        "variant": name,
        "plan_mb": round(plan.total_mb),
        "peak_mb_by_rank": m["peak_memory_mb_by_rank"],
        "load_peak_mb_by_rank": m["load_peak_memory_mb_by_rank"],
        "peak_rss_mb_by_rank": m["peak_rss_mb_by_rank"],
        "seconds_per_step": round(m["train_seconds"] / m["steps"], 2),
        "tokens_per_s": m["train_tokens_per_s"],
        "model_load_s": m["model_load_s"],
        "gradient_checkpointing": m["gradient_checkpointing"],
        "wall_s": round(time.time() - started, 1),
    }


def measure(name: str, seq_len: int) -> dict:
    command = [sys.executable, __file__, "--child", name, "--seq-len", str(seq_len)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-4000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def strategies_table(results: dict[str, dict]) -> str:
    base = {"lora": results.get("lora-zero2"), "qlora": results.get("qlora-zero2")}
    lines = ["| variant | peak MB rank 0 / 1 | vs ZeRO-2 (max rank) | load peak MB rank 0 / 1 | RSS high-water MB rank 0 / 1 "
             "| --plan MB | s/step |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        if name not in STRATEGIES:
            continue
        ref = base[name.split("-")[0]]
        ratio = f"{max(r['peak_mb_by_rank']) / max(ref['peak_mb_by_rank']):.2f}x" if ref else "-"
        pair = lambda v: " / ".join(f"{x:.0f}" for x in v)  # noqa: E731
        lines.append(f"| {name} | {pair(r['peak_mb_by_rank'])} | {ratio} | {pair(r['load_peak_mb_by_rank'])} | "
                     f"{pair(r['peak_rss_mb_by_rank'])} | {r['plan_mb']} | {r['seconds_per_step']} |")
    return "\n".join(lines)


def checkpointing_table(results: dict[str, dict]) -> str:
    off, on = results.get("ckpt-off"), results.get("ckpt-on")
    if not (off and on):
        return ""
    lines = ["| gradient checkpointing | peak MB | --plan MB | s/step |", "| --- | ---: | ---: | ---: |"]
    for r in (off, on):
        lines.append(f"| {'on' if r['gradient_checkpointing'] else 'off'} | {r['peak_mb_by_rank'][0]:.0f} | {r['plan_mb']} | "
                     f"{r['seconds_per_step']} |")
    saved = off["peak_mb_by_rank"][0] - on["peak_mb_by_rank"][0]
    added = on["seconds_per_step"] / off["seconds_per_step"] - 1
    lines.append(f"\nsaved {saved:.0f} MB ({saved / off['peak_mb_by_rank'][0]:.0%} of the peak) for {added:+.0%} time per step")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", default="strategies,checkpointing")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per row for the strategies (2048 for checkpointing)")
    parser.add_argument("--variants", default=None, help="subset, e.g. lora-zero2,lora-zero3")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.seq_len)))
        return
    names = []
    if "strategies" in args.measure:
        names += list(STRATEGIES)
    if "checkpointing" in args.measure:
        names += ["ckpt-off", "ckpt-on"]
    if args.variants:
        names = [n for n in names if n in args.variants.split(",")]
    if any(n in STRATEGIES for n in names):
        random_1b_model()  # built once, outside the measured processes
    out = REPO / "results" / "train-memory.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        seq = 2048 if name.startswith("ckpt") else args.seq_len
        results[name] = measure(name, seq)
        print(json.dumps(results[name]), file=sys.stderr, flush=True)
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    print(strategies_table(results))
    print()
    print(checkpointing_table(results))


if __name__ == "__main__":
    main()

"""The baseline: the usual single-process recipe, Hugging Face ``Trainer`` + PEFT LoRA, padded batches.

This is how fine-tuning tutorials (and Phi-3's cookbook) train: examples padded to the
longest in each batch, the loss over every position's logits. Model, LoRA shape,
tokenization (chat template, assistant-only labels) and the train split come from the same
packages and recipe as our trainer, so only the training method differs. Prints one JSON
line of measurements.

Two ways to give it the machine's cores: one process with N torch threads, or (launched by
``torchrun``) one single-threaded process per core, HF Trainer's own DDP over gloo, the
global batch split across the processes; rank 0 then reports the sums over all ranks.

    python benchmarks/train/hf_baseline.py --config train/recipes/cpu-demo.yaml [--batch-size 4] [--threads 2]
    python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/train/hf_baseline.py --threads 1 --batch-size 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

T0 = time.time()

import torch  # noqa: E402
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments  # noqa: E402

from modeling import attach_lora, load_base_model, load_tokenizer  # noqa: E402
from train.dataset import build_training_data  # noqa: E402
from train.recipe_loading import load_recipe  # noqa: E402
from train.tokenization import IGNORE_INDEX  # noqa: E402


class CountingCollator(DataCollatorForSeq2Seq):
    """Pads like the usual recipe, and counts the token slots computed and the real tokens among them."""

    computed_tokens = 0
    real_tokens = 0

    def __call__(self, features, return_tensors=None):
        batch = super().__call__(features, return_tensors)
        CountingCollator.computed_tokens += batch["input_ids"].numel()
        CountingCollator.real_tokens += int(batch["attention_mask"].sum())
        return batch


def summed_over_ranks(values: list[float], op: str = "sum") -> list[float]:
    """The values summed (or maxed) over DDP ranks; unchanged in a single process."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor.tolist()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="train/recipes/cpu-demo.yaml")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = load_recipe(args.config, ["data.packing=false"])  # one example per row: the same split
    tokenizer = load_tokenizer(recipe.model)
    data = build_training_data(recipe, tokenizer)
    examples = []
    for row in data.train_rows:
        ids = row.input_ids.tolist()
        labels = [IGNORE_INDEX] + row.targets[:-1].tolist()  # HF shifts labels itself
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})

    torch.manual_seed(recipe.seed)
    model = attach_lora(load_base_model(recipe.model), recipe.lora)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=args.batch_size,
                num_train_epochs=1,
                learning_rate=recipe.optim.lr,
                lr_scheduler_type="cosine",
                warmup_steps=recipe.schedule.warmup_ratio,  # a float below 1 is a ratio of the steps
                max_grad_norm=recipe.optim.max_grad_norm,
                logging_steps=1,
                save_strategy="no",
                report_to=[],
                use_cpu=True,
                # only under torchrun: accelerate treats any backend as "distributed" and asks a
                # process group that a single process never creates
                ddp_backend="gloo" if "LOCAL_RANK" in os.environ else None,
                seed=recipe.seed,
                dataloader_num_workers=0,
            ),
            train_dataset=examples,
            data_collator=CountingCollator(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX),
        )
        started, cpu_started = time.time(), time.process_time()
        output = trainer.train()
        finished, cpu_seconds = time.time(), time.process_time() - cpu_started
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    train_s = finished - started
    real, computed, cpu_seconds = summed_over_ranks(
        [CountingCollator.real_tokens, CountingCollator.computed_tokens, cpu_seconds])
    (train_s,) = summed_over_ranks([train_s], op="max")
    (peak,) = summed_over_ranks([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], op="max")
    if int(os.environ.get("RANK", "0")) != 0:
        return
    how = f"{args.threads} threads" if world == 1 else f"DDP {world} processes x {args.threads} thread, batch {args.batch_size} each"
    print(json.dumps({
        "variant": f"HF Trainer + PEFT LoRA, padding, batch {args.batch_size * world}, {how}",
        "examples": len(examples),
        "real_tokens": int(real),
        "computed_tokens": int(computed),
        "train_seconds": round(train_s, 2),
        "train_runtime": output.metrics["train_runtime"],
        "tokens_per_s": round(real / train_s, 1),
        "train_cpu_s": round(cpu_seconds, 1),
        "tokens_per_cpu_s": round(real / cpu_seconds, 2),
        "startup_s": round(started - T0, 2),
        "wall_s": round(finished - T0, 2),
        "peak_rss_mb": round(peak, 1) if world == 1 else f"{peak:.1f} per process x{world}",
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }))


if __name__ == "__main__":
    main()

"""The training loop every Ray Train worker runs.

Read top to bottom: load the base model through the model layer and attach LoRA, restore
the last checkpoint if Ray handed one over, wrap the model in DDP or DeepSpeed, then for
each step run ``grad_accum_steps`` micro-batches and one optimizer step, evaluating,
printing progress and checkpointing along the way.

The loss is the mean over every assistant token of the global batch (all workers, all
micro-batches). Each worker knows the step's global target-token count from the batch
plan, so it scales its token-summed loss by ``world_size / global_tokens``; the engines
average gradients over workers, which makes the update exactly that of one big batch.
Dropout is seeded from (seed, step, rank), so a resumed run replays the same randomness.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from modeling import attach_lora, load_base_model
from train.batching import BatchPlan, eval_batches
from train.checkpoints import ADAPTER_DIR, TrainerState, load_adapter_weights, save_adapter
from train.dataset import TrainingData
from train.engines import make_engine, sharded_loading
from train.memory_usage import PeakMemory, device_peak_mb, peak_rss_mb
from train.packing import collate
from train.progress import progress_line, say
from train.tracking import RunTracker
from train.recipe import Recipe
from train.tokenization import IGNORE_INDEX


def token_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed cross-entropy over the batch's target tokens; logits are computed only there."""
    keep = batch["targets"] != IGNORE_INDEX
    out = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],  # restarts per packed example: no cross-attention
        use_cache=False,
        logits_to_keep=keep,  # boolean mask: lm_head runs on target positions only
    )
    return F.cross_entropy(out.logits.float(), batch["targets"][keep], reduction="sum")


def train_step(engine, plan: BatchPlan, data: TrainingData, step: int, rank: int, world: int, device) -> tuple[float, float]:
    """One optimizer step: this worker's micro-batches, then the update. Returns (global loss, grad norm)."""
    global_targets = max(plan.step_targets(step), 1)
    local_loss = torch.zeros((), dtype=torch.float64, device=device)
    micro_batches = plan.micro_batches(step, rank)
    for i, rows in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        batch = collate([data.train_rows[r] for r in rows], data.pad_token_id, device)
        with engine.micro_step(last):
            loss_sum = token_loss_sum(engine.model, batch)
            engine.backward(loss_sum * (world / global_targets), last)
        local_loss += loss_sum.detach()
    grad_norm = engine.optimizer_step()
    (loss_total,) = all_reduce([local_loss.item()], device)
    return loss_total / global_targets, grad_norm


def all_reduce(values: list[float], device: torch.device, op: str = "sum") -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor.tolist()


def per_rank(values: list[float], rank: int, world: int, device: torch.device) -> list[list[float]]:
    """Every worker's ``values`` (a collective): row r holds rank r's."""
    table = torch.zeros(world, len(values), dtype=torch.float64, device=device)
    table[rank] = torch.tensor(values, dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(table)
    return table.tolist()


def seed_step(seed: int, step: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


@torch.no_grad()
def evaluate(engine, data: TrainingData, recipe: Recipe, rank: int, world: int, device: torch.device) -> float:
    """Mean loss per target token over the validation rows, split across workers."""
    engine.model.eval()
    loss, count = 0.0, 0
    for rows, counts in eval_batches(len(data.val_rows), recipe.training.micro_batch_size, world, rank):
        batch = collate([data.val_rows[i] for i in rows], data.pad_token_id, device)
        with engine.micro_step(last=True):
            value = token_loss_sum(engine.model, batch).item()
        if counts:
            loss += value
            count += int((batch["targets"] != IGNORE_INDEX).sum())
    engine.model.train()
    loss, count = all_reduce([loss, count], device)
    return loss / max(count, 1)


def maybe_inject_fault(recipe: Recipe, step: int, rank: int, run_path: str | None) -> None:
    """Test knob: worker ``rank`` dies once during ``step`` (a marker file keeps it to once)."""
    fault = recipe.fault_injection
    if not fault or fault.at_step != step or fault.rank != rank or not run_path:
        return
    marker = Path(run_path) / f"fault-injected-step-{step}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"worker {rank} died here on purpose\n")
    # Ray Train's controller registers reported checkpoints when it next polls the workers;
    # with steps of milliseconds (tests) a death could beat it. Real steps take seconds.
    import ray.train

    ray.train.get_all_reported_checkpoints(ray.train.CheckpointConsistencyMode.COMMITTED, timeout_s=120)
    say(f"[train] fault injection: worker {rank} dies during step {step}")
    if fault.how == "exit":
        os._exit(1)
    raise RuntimeError(f"injected failure in worker {rank} at step {step}")


def save_checkpoint(engine, state: TrainerState, metrics: dict, rank: int) -> None:
    """Adapter + optimizer/scheduler + trainer state, reported to Ray Train (a barrier for all workers)."""
    import ray.train

    with tempfile.TemporaryDirectory(prefix="train-ckpt-") as tmp:
        folder = Path(tmp)
        engine.save_state(folder, rank)
        with engine.full_lora_weights():  # collective under ZeRO-3
            if rank == 0:
                save_adapter(engine.peft_model, folder / ADAPTER_DIR)
        if rank == 0:
            state.save(folder)
        has_files = any(folder.iterdir())
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(tmp) if has_files else None,
            checkpoint_dir_name=f"checkpoint-step-{state.step:06d}",
        )


def train_loop_per_worker(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch

    recipe = Recipe.model_validate(config["recipe"])
    data: TrainingData = ray.get(config["data"]) if isinstance(config["data"], ray.ObjectRef) else config["data"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    plan = BatchPlan.build(
        data.train_rows,
        micro_batch_size=recipe.training.micro_batch_size,
        grad_accum_steps=recipe.training.grad_accum_steps,
        world_size=world,
        seed=recipe.seed,
        epochs=recipe.training.epochs,
        max_steps=recipe.training.max_steps,
    )

    memory = PeakMemory()
    loaded_at = time.time()
    torch.manual_seed(recipe.seed)  # same LoRA initialisation on every worker
    zero3_loading = sharded_loading(recipe, world)  # noqa: F841 (kept alive: transformers asks for it)
    peft_model = attach_lora(
        load_base_model(recipe.model, quant_storage=recipe.quant_storage),
        recipe.lora,
        gradient_checkpointing=recipe.training.gradient_checkpointing,
    )
    model_load_s = time.time() - loaded_at
    load_peak_mb = device_peak_mb(device, memory)
    memory.new_phase()  # from here on: training (engine, steps, evaluation, checkpoints)

    checkpoint = ray.train.get_checkpoint()
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as restored:
        state = TrainerState()
        if restored:
            state = TrainerState.load(Path(restored))
            state.attempts += 1
            load_adapter_weights(peft_model, Path(restored) / ADAPTER_DIR)
        engine_at = time.time()
        engine = make_engine(peft_model, recipe, plan.total_steps, world)
        engine_init_s = time.time() - engine_at
        if restored:
            engine.load_state(Path(restored))
    if rank == 0 and restored:
        say(f"[train] resumed from the checkpoint at step {state.step} (attempt {state.attempts})")
    tracker = RunTracker(recipe, rank, config.get("run_path"), config.get("run_name", "run"), state.tracking.get("mlflow_run_id"))
    if rank == 0:
        state.tracking = {"tensorboard": tracker.tensorboard_path, "mlflow_run_id": tracker.mlflow_run_id,
                          "mlflow_uri": recipe.tracking.mlflow_uri}

    engine.model.train()
    last_eval = state.evals[-1]["eval_loss"] if state.evals else None
    if state.step == 0 and data.val_rows:
        last_eval = evaluate(engine, data, recipe, rank, world, device)
        state.evals.append({"step": 0, "eval_loss": last_eval})
        tracker.log(0, {"eval/loss": last_eval})
    every = recipe.checkpointing.every_steps
    window_start, window_tokens = time.time(), 0
    # ETA from the mean wall time per step of this attempt, evaluations and checkpoints included:
    # the last window alone swings with every evaluation.
    loop_start, first_step = time.time(), state.step

    for step in range(state.step, plan.total_steps):
        maybe_inject_fault(recipe, step + 1, rank, config.get("run_path"))
        seed_step(recipe.seed, step, rank)
        started, cpu_started = time.time(), time.process_time()
        state.first_step_at = state.first_step_at or started
        loss, grad_norm = train_step(engine, plan, data, step, rank, world, device)
        seconds = time.time() - started
        state.cpu_seconds += time.process_time() - cpu_started  # this worker's; summed at the end

        tokens = plan.step_tokens(step)
        state.step = step + 1
        state.rows_consumed = state.step * plan.rows_per_step
        state.tokens_seen += tokens
        state.train_seconds += seconds
        state.history.append(
            {"step": state.step, "loss": loss, "lr": engine.lr, "grad_norm": grad_norm,
             "tokens": tokens, "seconds": round(seconds, 4)}
        )
        done = state.step == plan.total_steps
        eval_every = recipe.training.eval_every
        tracked = {"train/loss": loss, "train/lr": engine.lr, "train/grad_norm": grad_norm, "train/tokens_per_s": tokens / seconds}
        if data.val_rows and (done or (eval_every and state.step % eval_every == 0)):
            last_eval = evaluate(engine, data, recipe, rank, world, device)
            state.evals.append({"step": state.step, "eval_loss": last_eval})
            tracked["eval/loss"] = last_eval
        tracker.log(state.step, tracked)

        window_tokens += tokens
        if rank == 0 and (state.step % recipe.training.log_every == 0 or done):
            elapsed = time.time() - window_start
            say(
                progress_line(
                    step=state.step,
                    total_steps=plan.total_steps,
                    epoch=plan.epoch_at(state.step),
                    loss=state.history[-1]["loss"],
                    eval_loss=last_eval,
                    lr=engine.lr,
                    tokens_per_s=window_tokens / max(elapsed, 1e-9),
                    eta_s=(plan.total_steps - state.step) * (time.time() - loop_start) / (state.step - first_step),
                )
            )
            window_start, window_tokens = time.time(), 0

        if done or state.step % every == 0:
            metrics = {"step": state.step, "loss": state.history[-1]["loss"], "eval_loss": last_eval,
                       "epoch": plan.epoch_at(state.step)}
            if done:
                (cpu,) = all_reduce([state.cpu_seconds], device)
                peaks = per_rank([device_peak_mb(device, memory), load_peak_mb, peak_rss_mb(), memory.peak()[1]],
                                 rank, world, device)
                state.summary = {
                    "peak_memory_mb_per_worker": round(max(p[0] for p in peaks), 1),
                    "peak_memory_mb_by_rank": [round(p[0], 1) for p in peaks],
                    "load_peak_memory_mb_by_rank": [round(p[1], 1) for p in peaks],
                    "peak_rss_mb_by_rank": [round(p[2], 1) for p in peaks],
                    "peak_private_mb_by_rank": [round(p[3], 1) for p in peaks],
                    "memory_measure": "cuda_max_allocated" if device.type == "cuda" else "resident",
                    "gradient_checkpointing": bool(getattr(peft_model, "is_gradient_checkpointing", False)),
                    "optimizer": engine.optimizer_name,
                    "train_cpu_seconds_all_workers": round(cpu, 1),
                    "model_load_s": round(model_load_s, 2),
                    "engine_init_s": round(engine_init_s, 2),
                    "world_size": world,
                    "total_steps": plan.total_steps,
                    "rows_per_step": plan.rows_per_step,
                }
            save_checkpoint(engine, state, metrics, rank)
    memory.stop()
    tracker.finish(state.summary)

"""``train.run(recipe)``: check the data, start Ray Train, and publish the adapter.

The driver does the cheap, fallible work first (recipe combinations, output name free,
every data line valid) so mistakes surface in seconds, then hands tokenized rows to a
``TorchTrainer`` whose workers run ``train.loop``. Each run lives in
``<run_dir>/<adapter_name>/run-<time>``; ``resume=True`` re-enters the newest such run, and
Ray Train restores its latest checkpoint (the same mechanism that replaces a dead worker
under ``FailureConfig(max_failures)``).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cluster.private_ray import start_private_ray
from modeling import load_tokenizer
from modeling import storage
from train.checkpoints import TrainerState
from train.dataset import TrainingData, build_training_data
from train.errors import RecipeError, ResumeError
from train.loop import train_loop_per_worker
from train.progress import keep_progress_lines_whole
from train.publish import build_metadata, check_output_free, publish_adapter
from train.recipe import Recipe
from train.tracking import log_published

log = logging.getLogger(__name__)
RECIPE_FILE = "recipe.json"
# Keys a resumed run may change: they do not alter what is computed.
RESUMABLE_CHANGES = ("checkpointing.max_failures", "output.overwrite", "output.registry", "training.log_every", "fault_injection",
                     "tracking")


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    adapter_name: str
    adapter_path: str  # registry folder of the adapter (or its URI)
    registry: str
    metrics: dict
    run_path: str  # Ray Train storage of this run (checkpoints)
    checkpoint_path: str  # the final checkpoint
    history: list[dict] = field(default_factory=list)  # per step: loss, lr, grad_norm, tokens, seconds
    evals: list[dict] = field(default_factory=list)  # {"step", "eval_loss"}


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(saved: dict, current: dict) -> list[str]:
    a, b = _flatten(saved), _flatten(current)
    return sorted(
        k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith(RESUMABLE_CHANGES)
    )


def run_location(recipe: Recipe, resume: bool) -> tuple[str, str]:
    """(Ray storage path, run name) for a new run, or for the newest run when resuming."""
    root = storage.join(storage.absolute(recipe.output.run_dir), recipe.output.adapter_name)
    current = recipe.model_dump(mode="json")
    if not resume:
        name = f"run-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        storage.write_text(storage.join(root, name, RECIPE_FILE), json.dumps(current, indent=1))
        return root, name
    runs = [n for n in storage.subfolders(root) if storage.exists(storage.join(root, n, RECIPE_FILE))]
    if not runs:
        raise ResumeError(f"nothing to resume: no run of adapter {recipe.output.adapter_name!r} in {root}; start without --resume")
    name = runs[-1]
    saved = json.loads(storage.read_text(storage.join(root, name, RECIPE_FILE)))
    changed = changed_keys(saved, current)
    if changed:
        raise ResumeError(
            f"cannot resume {storage.join(root, name)}: the recipe changed since it started ({', '.join(changed)}); "
            "resume with the same recipe, or start a new run without --resume"
        )
    return root, name


def check_resources(recipe: Recipe) -> None:
    """Fail fast when the workers could never be scheduled (Ray would wait for them forever).

    Checked against the running Ray instance, or this machine when Ray is not up yet. A
    cluster named by RAY_ADDRESS is not checked: its autoscaler may add the nodes.
    """
    import ray
    import torch

    if not ray.is_initialized() and os.environ.get("RAY_ADDRESS"):
        return
    scaling = recipe.scaling
    per_worker = dict(scaling.resources_per_worker or {})
    if scaling.use_gpu:
        per_worker.setdefault("GPU", 1)
    if ray.is_initialized():
        have = ray.cluster_resources()
        where = "the running Ray instance"
    else:
        have = {"CPU": float(max(os.cpu_count() or 1, per_worker.get("CPU", 1) * scaling.num_workers)),
                "GPU": float(torch.cuda.device_count()), "memory": float("inf")}
        where = "this machine (no Ray cluster is configured: RAY_ADDRESS is unset)"
    for key, amount in sorted(per_worker.items(), key=lambda kv: kv[0] != "GPU"):  # GPUs: the likeliest miss
        need = amount * scaling.num_workers
        if have.get(key, 0.0) < need:
            raise RecipeError(
                f"scaling asks for {scaling.num_workers} workers with {key}={amount:g} each, but {where} has "
                f"{have.get(key, 0.0):g} {key}; submit to a cluster that has them (`ray job submit --working-dir . -- "
                "python -m train --config ...`), or use train/recipes/cpu-demo.yaml here"
            )


def check_memory(recipe: Recipe) -> None:
    """Refuse a recipe whose estimated per-worker memory exceeds what each worker has (``--plan`` shows it)."""
    from train.memory_plan import check_fits, plan_memory

    try:
        plan = plan_memory(recipe)
    except RecipeError as exc:  # the config cannot be read here (offline hub id): the workers will load it
        log.warning("memory not checked: %s", exc)
        return
    check_fits(plan)
    log.info("memory plan: %.1f GiB per worker", plan.total_mb / 1024)


def start_ray(recipe: Recipe) -> bool:
    """Connect to the cluster (``ray job submit`` sets RAY_ADDRESS) or start a local Ray; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
        return True
    per_worker = (recipe.scaling.resources_per_worker or {}).get("CPU", 1)
    return start_private_ray(
        num_cpus=max(os.cpu_count() or 1, int(per_worker * recipe.scaling.num_workers)), logging_level=logging.WARNING
    )


def _trainer(recipe: Recipe, data_ref, run_root: str, run_name: str):
    import ray.train
    from ray.train.torch import TorchTrainer

    scaling = recipe.scaling
    run_path = storage.join(run_root, run_name)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "recipe": recipe.model_dump(mode="json"),
            "data": data_ref,
            "run_path": None if storage.is_uri(run_path) else run_path,
            "run_name": run_name,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker=scaling.resources_per_worker,
            placement_strategy=scaling.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=run_root,
            failure_config=ray.train.FailureConfig(max_failures=recipe.checkpointing.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=recipe.checkpointing.keep),
        ),
    )


def summarize(state: TrainerState, data: TrainingData, started_at: float, launched_at: float, ray_init_s: float) -> dict:
    """The metrics recorded in the adapter's metadata.

    ``startup_s`` is everything before the first step (data, Ray, workers, model, engine);
    ``worker_startup_s`` the part from ``TorchTrainer.fit`` on. A run resumed with --resume
    first stepped in an earlier session, so it has neither.
    """
    losses = [h["loss"] for h in state.history]
    tail = losses[-max(1, len(losses) // 10) :]
    evals = [e["eval_loss"] for e in state.evals]
    first = state.first_step_at
    return {
        "steps": state.step,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": sum(tail) / len(tail) if tail else None,
        "eval_loss_start": evals[0] if evals else None,
        "eval_loss_end": evals[-1] if evals else None,
        "tokens_seen": state.tokens_seen,
        "train_seconds": round(state.train_seconds, 2),
        "train_tokens_per_s": round(state.tokens_seen / state.train_seconds, 1) if state.train_seconds else None,
        "attempts": state.attempts,
        "ray_init_s": round(ray_init_s, 2),
        "startup_s": round(first - started_at, 2) if first and first >= launched_at else None,
        "worker_startup_s": round(first - launched_at, 2) if first and first >= launched_at else None,
        **state.summary,
        "row_fill": data.stats.get("row_fill"),
    }


def run(recipe: Recipe, *, resume: bool = False) -> TrainResult:
    """Train the recipe's adapter with Ray Train and publish it to the recipe's registry."""
    import ray

    started_at = time.time()
    check_output_free(recipe)
    check_resources(recipe)
    check_memory(recipe)
    if recipe.fault_injection and storage.is_uri(recipe.output.run_dir):
        raise RecipeError("fault_injection needs a local output.run_dir (it marks the injected failure there)")
    data = build_training_data(recipe, load_tokenizer(recipe.model))
    print(f"[train] data: {json.dumps(data.stats)}", flush=True)
    run_root, run_name = run_location(recipe, resume)
    print(f"[train] run folder: {storage.join(run_root, run_name)}", flush=True)

    # Ray Train gives a worker group 60 s to start; importing torch, transformers and DeepSpeed
    # on a busy 2-core machine, or pulling a large image on a fresh node, can take longer.
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
    keep_progress_lines_whole()
    ray_started_at = time.time()
    started_here = start_ray(recipe)
    ray_init_s = time.time() - ray_started_at
    try:
        launched_at = time.time()
        result = _trainer(recipe, ray.put(data), run_root, run_name).fit()
        if result.checkpoint is None:
            raise RuntimeError(f"run {run_name} finished without a checkpoint; see the log above")
        with result.checkpoint.as_directory() as folder:
            state = TrainerState.load(Path(folder))
            metrics = summarize(state, data, started_at, launched_at, ray_init_s)
            metadata = build_metadata(recipe, data.fingerprint, data.stats, metrics, started_at, state.tracking)
            adapter_path = publish_adapter(Path(folder), recipe, state, metadata)
        if not storage.is_uri(adapter_path):
            log_published(recipe, state.tracking.get("mlflow_run_id"), Path(adapter_path))
    finally:
        if started_here:
            ray.shutdown()
    print(f"[train] adapter {recipe.output.adapter_name!r} -> {adapter_path}", flush=True)
    print(f"[train] metrics: {json.dumps(metrics)}", flush=True)
    return TrainResult(
        adapter_name=recipe.output.adapter_name,
        adapter_path=adapter_path,
        registry=storage.absolute(recipe.output.registry),
        metrics=metrics,
        run_path=storage.join(run_root, run_name),
        checkpoint_path=result.checkpoint.path,
        history=state.history,
        evals=state.evals,
    )

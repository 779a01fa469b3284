"""The two ways a worker trains its model copy: torch DDP, or a DeepSpeed ZeRO engine.

Both present the same small interface to the loop (``train.loop``): run a micro-batch's
forward/backward, take an optimizer step, save and restore their optimizer state, and give
the full LoRA weights for saving. Gradients are averaged over workers by both, which the
loop's loss scaling accounts for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from peft import PeftModel
from transformers import get_scheduler

from modeling.lora import is_quantized
from train.deepspeed_config import deepspeed_config
from train.recipe import Recipe

DS_CHECKPOINT_DIR = "deepspeed"
DS_TAG = "state"
OPTIMIZER_FILE = "optimizer.pt"


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int):
    """Linear warm-up, then cosine or linear decay to 0 (or constant) over ``total_steps``."""
    sched = recipe.schedule
    warmup = sched.warmup_steps if sched.warmup_steps is not None else round(sched.warmup_ratio * total_steps)
    name = "constant_with_warmup" if sched.kind == "constant" else sched.kind
    return get_scheduler(name, optimizer, num_warmup_steps=min(warmup, total_steps), num_training_steps=total_steps)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_adamw(params: list[torch.nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    o = recipe.optim
    return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)


class DDPEngine:
    """torch DistributedDataParallel through ``ray.train.torch.prepare_model``."""

    def __init__(self, peft_model: PeftModel, recipe: Recipe, total_steps: int) -> None:
        import ray.train.torch

        self.peft_model = peft_model
        self.bf16 = recipe.bf16
        self.max_grad_norm = recipe.optim.max_grad_norm
        # A quantized base was placed by bitsandbytes when it loaded; moving it again is refused.
        self.model = ray.train.torch.prepare_model(peft_model, move_to_device=not is_quantized(peft_model))
        self.params = trainable_parameters(peft_model)
        self.optimizer = make_adamw(self.params, recipe)
        self.scheduler = make_scheduler(self.optimizer, recipe, total_steps)

    def micro_step(self, last: bool) -> contextlib.AbstractContextManager:
        """Forward and backward of one micro-batch; gradients are all-reduced only on the last one."""
        stack = contextlib.ExitStack()
        if not last and isinstance(self.model, torch.nn.parallel.DistributedDataParallel):
            stack.enter_context(self.model.no_sync())
        if self.bf16:
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        loss.backward()

    def optimizer_step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm or float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    @property
    def optimizer_name(self) -> str:
        return type(self.optimizer).__name__

    @contextlib.contextmanager
    def full_lora_weights(self) -> Iterator[None]:
        yield

    def save_state(self, folder: Path, rank: int) -> None:
        if rank == 0:
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, folder / OPTIMIZER_FILE)

    def load_state(self, folder: Path) -> None:
        state = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class DeepSpeedEngine:
    """A DeepSpeed engine (ZeRO-2/3, optional CPU offload) configured from the recipe."""

    def __init__(self, peft_model: PeftModel, recipe: Recipe, total_steps: int, world_size: int) -> None:
        import deepspeed

        self.peft_model = peft_model
        self.zero_stage = recipe.deepspeed.zero_stage
        config = deepspeed_config(recipe, world_size)
        params = trainable_parameters(peft_model)
        client_optimizer = None if "optimizer" in config else make_adamw(params, recipe)
        self.model, _, _, self.scheduler = deepspeed.initialize(
            model=peft_model,
            model_parameters=params,
            optimizer=client_optimizer,
            lr_scheduler=lambda optimizer: make_scheduler(optimizer, recipe, total_steps),
            config=config,
            dist_init_required=False,  # Ray Train already set up torch.distributed
        )

    def micro_step(self, last: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        # The loop already divided the loss by the step's token count; DeepSpeed must not
        # divide it again by the number of micro-batches.
        self.model.backward(loss, scale_wrt_gas=False)
        if not last:
            self.model.step()  # advances DeepSpeed's micro-batch counter; no update yet

    def optimizer_step(self) -> float:
        self.model.step()  # the accumulation boundary: clip, update, schedule, zero grads
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    @property
    def optimizer_name(self) -> str:
        """The update rule's class inside DeepSpeed's ZeRO wrapper (``DeepSpeedCPUAdam`` when offloaded)."""
        inner = getattr(self.model.optimizer, "optimizer", self.model.optimizer)
        return type(inner).__name__

    @contextlib.contextmanager
    def full_lora_weights(self) -> Iterator[None]:
        """Under ZeRO-3 each worker holds a shard of every LoRA matrix; gather them (collective)."""
        if self.zero_stage != 3:
            yield
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(trainable_parameters(self.peft_model), modifier_rank=None):
            yield

    def save_state(self, folder: Path, rank: int) -> None:
        # Every worker writes its own optimizer shard; Ray merges the workers' folders.
        self.model.save_checkpoint(
            str(folder / DS_CHECKPOINT_DIR), tag=DS_TAG, save_latest=False, exclude_frozen_parameters=True
        )

    def load_state(self, folder: Path) -> None:
        path, _ = self.model.load_checkpoint(
            str(folder / DS_CHECKPOINT_DIR),
            tag=DS_TAG,
            load_module_strict=False,  # frozen base weights are not in the checkpoint
            load_optimizer_states=True,
            load_lr_scheduler_states=True,
        )
        if path is None:
            raise RuntimeError(f"DeepSpeed found no checkpoint in {folder / DS_CHECKPOINT_DIR}")


def sharded_loading(recipe: Recipe, world_size: int):
    """Under ZeRO-3, an ``HfDeepSpeedConfig`` that makes ``from_pretrained`` build the base sharded.

    While the returned object lives, transformers creates the model inside
    ``deepspeed.zero.Init`` and copies the checkpoint in module by module, so each worker
    holds only its shard of the weights from the start (not a full copy that DeepSpeed
    partitions later). Keep it referenced until training ends: transformers and peft ask
    ``is_deepspeed_zero3_enabled()`` throughout. transformers 5 leaves bitsandbytes-quantised
    models out of ``zero.Init`` (they quantise while loading onto real tensors): a QLoRA
    base loads whole in 4 bits on each worker and ``deepspeed.initialize`` shards it.
    None for DDP and ZeRO-2.
    """
    if not recipe.zero3:
        return None
    import deepspeed
    import torch.distributed as dist
    from transformers.integrations import HfDeepSpeedConfig

    # zero.Init reads the world size from DeepSpeed's communication layer: attach it to the
    # process group Ray Train already set up (gloo on CPU, nccl on GPUs) before any model exists.
    deepspeed.init_distributed(dist_backend=dist.get_backend(), dist_init_required=False)

    return HfDeepSpeedConfig(deepspeed_config(recipe, world_size))


def make_engine(peft_model: PeftModel, recipe: Recipe, total_steps: int, world_size: int) -> DDPEngine | DeepSpeedEngine:
    if recipe.strategy == "deepspeed":
        return DeepSpeedEngine(peft_model, recipe, total_steps, world_size)
    return DDPEngine(peft_model, recipe, total_steps)

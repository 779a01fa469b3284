"""Per-worker memory a recipe will need, estimated before anything starts (``--plan``).

The parameter counts are exact: the model is built from its config on the meta device (no
weights are read or allocated), so every Linear layer, embedding and norm is counted, and
LoRA's matrices follow from the recipe's targets and rank. The rest is arithmetic:

* **base weights**: bitsandbytes NF4/FP4 stores 0.5 byte per weight plus its scales (one
  per 64 weights: fp32, or 8-bit with double quantisation); the embeddings, norms and
  ``lm_head`` stay unquantised, and peft's k-bit preparation casts them to fp32. Under
  ZeRO-3 each worker keeps 1/world of all of it, plus what DeepSpeed keeps gathered
  (``deepspeed.stage3_live_parameters``, DeepSpeed's 1e9 by default, at least one layer,
  at most the whole model).
* **LoRA parameters, gradients, AdamW state** (two fp32 moments, plus an fp32 master copy
  under bf16): ZeRO shards the optimizer state (and, ZeRO-2/3, the gradients) across
  workers; ``offload_optimizer`` moves the state to CPU memory (not the GPU's).
* **activations** of one micro-batch at the recipe's ``max_seq_len``: the tensors a Phi-3
  decoder layer keeps for backward (counted per token: 14 hidden-size and 5
  intermediate-size vectors, plus 3 + 1 more when LoRA dropout copies the inputs), or,
  with gradient checkpointing, each layer's input plus one layer recomputed at a time;
  and the fp32 logits at the target positions (bounded by all positions) with their
  softmax and gradient.
* **runtime**: on CPU the worker's Python, torch, transformers, DeepSpeed and Ray heap
  (measured here: ``CPU_RUNTIME_MB``); on GPUs the CUDA context is outside the allocator.

A recipe whose estimate exceeds the memory each worker has (``scaling.memory_per_worker_gb``,
else the GPU type from its resources, else this machine's RAM shared by its workers) is
refused. ``tests/train/test_memory_plan.py`` checks the estimate against measured peaks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from train.errors import RecipeError
from train.recipe import Recipe

MB = 2**20
CPU_RUNTIME_MB = 800.0  # resident memory of a Ray Train worker with torch, transformers, peft and DeepSpeed loaded (measured)
# Device memory of the GPU types the cluster definitions name (cluster/README.md), in GiB.
GPU_MEMORY_GB = {"gpu_l4": 24, "gpu_a100_80g": 80, "accelerator_type:L4": 24, "accelerator_type:A10G": 24,
                 "accelerator_type:A100-80G": 80, "accelerator_type:A100-40G": 40, "accelerator_type:H100": 80}
# Public configs of the hub models the shipped recipes name, so --plan works offline.
KNOWN_SHAPES = {
    "microsoft/Phi-3-mini-4k-instruct": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                                             num_attention_heads=32, num_key_value_heads=32, vocab_size=32064),
    "microsoft/Phi-3-medium-4k-instruct": dict(hidden_size=5120, intermediate_size=17920, num_hidden_layers=40,
                                               num_attention_heads=40, num_key_value_heads=10, vocab_size=32064),
}
DEEPSPEED_LIVE_PARAMETERS = 10**9  # DeepSpeed's stage3_max_live_parameters / max_reuse_distance default
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about the base model (counted on the meta device)."""

    quantizable_params: int  # Linear weights bitsandbytes converts (every Linear but lm_head)
    other_params: int  # embeddings, norms, lm_head, biases
    lora_params: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    largest_layer_params: int


@dataclass
class MemoryPlan:
    """The estimate, line by line (MiB per worker)."""

    recipe: Recipe
    shape: ModelShape
    lines: list[tuple[str, float, str]] = field(default_factory=list)  # (what, MiB, how)
    activations_without_checkpointing_mb: float = 0.0
    activations_with_checkpointing_mb: float = 0.0
    available_mb: float | None = None
    available_from: str = ""
    device: str = "CPU"

    @property
    def total_mb(self) -> float:
        return sum(mb for _, mb, _ in self.lines)

    @property
    def fits(self) -> bool:
        return self.available_mb is None or self.total_mb <= self.available_mb

    def render(self) -> str:
        r = self.recipe
        lines = [
            f"memory plan for {r.output.adapter_name}: {r.model.name_or_path}, {r.method}, "
            f"{r.strategy if r.strategy == 'ddp' else f'DeepSpeed ZeRO-{r.deepspeed.zero_stage}'}, "
            f"{r.scaling.num_workers} worker(s), micro-batch {r.training.micro_batch_size} x {r.data.max_seq_len} tokens",
            f"  base model: {(self.shape.quantizable_params + self.shape.other_params) / 1e6:.0f}M parameters "
            f"({self.shape.quantizable_params / 1e6:.0f}M in Linear layers), LoRA {self.shape.lora_params / 1e6:.2f}M",
        ]
        width = max(len(w) for w, _, _ in self.lines)
        for what, mb, how in self.lines:
            lines.append(f"  {what:<{width}}  {mb / 1024:8.2f} GiB  {how}")
        lines.append(f"  {'total per worker':<{width}}  {self.total_mb / 1024:8.2f} GiB  ({self.device} memory)")
        ckpt = "on" if r.training.gradient_checkpointing else "off"
        lines.append(
            f"  activations: {self.activations_without_checkpointing_mb / 1024:.2f} GiB without gradient checkpointing, "
            f"{self.activations_with_checkpointing_mb / 1024:.2f} GiB with it (the recipe has it {ckpt})"
        )
        if self.available_mb is not None:
            verdict = "fits" if self.fits else "DOES NOT FIT"
            lines.append(f"  available per worker: {self.available_mb / 1024:.1f} GiB ({self.available_from}): {verdict}")
        return "\n".join(lines)


def _config(recipe: Recipe):
    from transformers import AutoConfig, Phi3Config

    from modeling.builtin import resolve_model_source

    name = recipe.model.name_or_path
    try:
        return AutoConfig.from_pretrained(resolve_model_source(name), revision=recipe.model.revision,
                                          trust_remote_code=recipe.model.trust_remote_code)
    except OSError:
        if name in KNOWN_SHAPES:  # offline and not cached: the published shape
            return Phi3Config(**KNOWN_SHAPES[name], tie_word_embeddings=False)
        raise RecipeError(
            f"cannot read the config of {name!r} to plan memory (offline and not cached); run once with network "
            "access, or point model.name_or_path at a local folder"
        ) from None


def model_shape(recipe: Recipe) -> ModelShape:
    """Parameter counts of the recipe's base model and LoRA adapter, from its config alone."""
    import torch
    from transformers import AutoModelForCausalLM

    config = _config(recipe)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    targets = set(recipe.lora.target_modules)
    quantizable = lora = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
            quantizable += module.weight.numel()
            if name.rsplit(".", 1)[-1] in targets:
                lora += recipe.lora.r * (module.in_features + module.out_features)
    total = sum(p.numel() for p in model.parameters())  # tied weights counted once
    layers = model.model.layers if hasattr(model, "model") and hasattr(model.model, "layers") else []
    largest = max((sum(p.numel() for p in layer.parameters()) for layer in layers), default=0)
    return ModelShape(
        quantizable_params=quantizable,
        other_params=total - quantizable,
        lora_params=lora,
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
        largest_layer_params=largest,
    )


def activation_mb(recipe: Recipe, shape: ModelShape, checkpointing: bool) -> float:
    """Activations kept for backward for one micro-batch (see the module docstring)."""
    tokens = recipe.training.micro_batch_size * recipe.data.max_seq_len
    width = 2 if recipe.bf16 else 4
    per_token_layer = 14 * shape.hidden + 5 * shape.intermediate
    if recipe.lora.dropout > 0:  # peft's dropout makes a copy of each targeted layer's input
        per_token_layer += 3 * shape.hidden + shape.intermediate
    if checkpointing:  # every layer's input, plus one layer recomputed during backward
        layers_bytes = tokens * width * (shape.layers * shape.hidden + per_token_layer)
    else:
        layers_bytes = tokens * width * shape.layers * per_token_layer
    logits_bytes = tokens * shape.vocab * 4 * 3  # fp32 logits, their softmax and gradient
    return (layers_bytes + logits_bytes) / MB


def available_memory(recipe: Recipe) -> tuple[float | None, str]:
    """MiB each worker may use, and where that number comes from (None: unknown, not checked)."""
    scaling = recipe.scaling
    if scaling.memory_per_worker_gb is not None:
        return scaling.memory_per_worker_gb * 1024, "scaling.memory_per_worker_gb"
    resources = scaling.resources_per_worker or {}
    if scaling.use_gpu:
        for key, gib in GPU_MEMORY_GB.items():
            if key in resources:
                return gib * 1024.0, f"one {key} GPU"
        return None, "GPU type not declared; set scaling.memory_per_worker_gb to check"
    if "memory" in resources:
        return resources["memory"] / MB, "scaling.resources_per_worker.memory"
    if os.environ.get("RAY_ADDRESS"):
        return None, "a cluster's nodes; set scaling.memory_per_worker_gb to check"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB
    return total / scaling.num_workers, f"this machine's {total / 1024:.0f} GiB RAM shared by {scaling.num_workers} worker(s)"


def plan_memory(recipe: Recipe) -> MemoryPlan:
    shape = model_shape(recipe)
    r, ds = recipe, recipe.deepspeed
    world = r.scaling.num_workers
    zero = r.strategy == "deepspeed"
    plan = MemoryPlan(recipe=r, shape=shape, device="GPU" if r.scaling.use_gpu else "CPU")

    quantized = r.model.quantization in ("nf4", "fp4")
    if quantized:
        per_weight = 0.5 + (1 / 64 + 4 / (64 * 256) if r.model.double_quant else 4 / 64)
        weights = shape.quantizable_params * per_weight + shape.other_params * 4  # peft casts the rest to fp32
        how = f"NF4 {per_weight:.3f} B/weight + {shape.other_params / 1e6:.0f}M unquantised in fp32"
    elif r.model.quantization == "int8":
        weights = shape.quantizable_params * 1.0 + shape.other_params * 4
        how = "int8 1 B/weight, the rest fp32"
    else:
        width = BYTES[r.model.precision]
        weights = (shape.quantizable_params + shape.other_params) * width
        how = f"{r.model.precision} {width} B/weight"
    if r.zero3:  # the shard, plus what DeepSpeed keeps gathered (at least the layer running)
        total = shape.quantizable_params + shape.other_params
        limit = ds.stage3_live_parameters if ds.stage3_live_parameters is not None else DEEPSPEED_LIVE_PARAMETERS
        live = min(total, max(limit, shape.largest_layer_params, 1))
        weights = weights / world + weights * live / total
        how += f", 1/{world} per worker + {live / 1e6:.0f}M gathered (stage3_live_parameters)"
    plan.lines.append(("base weights", weights / MB, how))

    lora = shape.lora_params
    plan.lines.append(("LoRA parameters", lora * 4 / MB, f"{lora / 1e6:.2f}M fp32"))
    grads_shard = world if zero else 1
    plan.lines.append(("LoRA gradients", lora * 4 / grads_shard / MB,
                       "fp32" + (f", 1/{world} per worker after reduce-scatter" if zero and world > 1 else "")))
    master = zero and r.bf16  # DeepSpeed trains bf16 copies and keeps fp32 masters; DDP autocasts fp32 weights
    state_bytes = lora * (8 + (4 if master else 0))
    shard = world if zero else 1
    where = "in CPU memory (offload_optimizer)" if zero and ds.offload_optimizer else ""
    optimizer_mb = state_bytes / shard / MB
    if zero and ds.offload_optimizer and r.scaling.use_gpu:
        optimizer_mb = 0.0  # lives in host memory, not on the GPU
    plan.lines.append(("optimizer state", optimizer_mb,
                       f"AdamW moments{' + fp32 master' if master else ''}"
                       + (f", 1/{world} per worker" if zero and world > 1 else "") + (f", {where}" if where else "")))

    plan.activations_without_checkpointing_mb = activation_mb(r, shape, checkpointing=False)
    plan.activations_with_checkpointing_mb = activation_mb(r, shape, checkpointing=True)
    ckpt = r.training.gradient_checkpointing
    plan.lines.append(("activations", plan.activations_with_checkpointing_mb if ckpt else plan.activations_without_checkpointing_mb,
                       f"{r.training.micro_batch_size} x {r.data.max_seq_len} tokens, "
                       f"gradient checkpointing {'on' if ckpt else 'off'}, logits in fp32"))
    if not r.scaling.use_gpu:
        plan.lines.append(("runtime", CPU_RUNTIME_MB, "Python, torch, transformers, DeepSpeed, Ray (measured)"))
    plan.available_mb, plan.available_from = available_memory(r)
    return plan


def check_fits(plan: MemoryPlan) -> None:
    if plan.fits:
        return
    r = plan.recipe
    hints = []
    if not r.training.gradient_checkpointing and plan.activations_with_checkpointing_mb < plan.activations_without_checkpointing_mb:
        hints.append("training.gradient_checkpointing: true")
    if r.model.quantization == "none":
        hints.append("model.quantization: nf4 (QLoRA)")
    if not r.zero3 and r.scaling.num_workers > 1:
        hints.append("strategy: deepspeed with deepspeed.zero_stage: 3")
    hints += ["a smaller training.micro_batch_size or data.max_seq_len", "more memory per worker"]
    raise RecipeError(
        f"recipe needs about {plan.total_mb / 1024:.1f} GiB per worker but has {plan.available_mb / 1024:.1f} GiB "
        f"({plan.available_from}); try {', '.join(hints)}. `python -m train --config ... --plan` shows the breakdown"
    )

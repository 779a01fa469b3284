"""The DeepSpeed config dict, built from a recipe (no separate JSON file to keep in sync).

Batch shape, clipping and precision come from the recipe's ``training``/``optim`` sections;
ZeRO stage and offload from ``deepspeed``. The optimizer is torch's AdamW handed to
DeepSpeed (the same update rule as the DDP path, and no C++ op to build) unless optimizer
state is offloaded to CPU, where DeepSpeed requires its own CPU Adam, so the config names
``AdamW`` and DeepSpeed builds ``DeepSpeedCPUAdam``.
"""

from __future__ import annotations

from train.recipe import Recipe


def deepspeed_config(recipe: Recipe, world_size: int) -> dict:
    ds, training, optim = recipe.deepspeed, recipe.training, recipe.optim
    on_gpu = recipe.scaling.use_gpu
    zero: dict = {
        "stage": ds.zero_stage,
        "contiguous_gradients": True,
        "overlap_comm": on_gpu,
    }
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if ds.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    if ds.zero_stage == 3:
        # LoRA weights are gathered explicitly for saving (train.engines); never gather the base.
        zero["stage3_gather_16bit_weights_on_model_save"] = False
        if ds.stage3_live_parameters is not None:
            zero["stage3_max_live_parameters"] = ds.stage3_live_parameters
            zero["stage3_max_reuse_distance"] = ds.stage3_live_parameters
    config: dict = {
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": training.grad_accum_steps,
        "train_batch_size": training.micro_batch_size * training.grad_accum_steps * world_size,
        "gradient_clipping": optim.max_grad_norm or 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": recipe.bf16},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if ds.offload_optimizer:
        config["optimizer"] = {
            "type": "AdamW",
            "params": {
                "lr": optim.lr,
                "betas": list(optim.betas),
                "eps": optim.eps,
                "weight_decay": optim.weight_decay,
            },
        }
    return config

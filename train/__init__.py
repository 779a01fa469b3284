"""Fine-tuning: LoRA / QLoRA adapters for Phi-3 with Ray Train and DeepSpeed, from YAML recipes.

``python -m train --config train/recipes/cpu-demo.yaml`` on the command line, or in Python::

    from train import load_recipe, run
    result = run(load_recipe("train/recipes/cpu-demo.yaml", ["training.max_steps=20"]))
    print(result.adapter_path, result.metrics["eval_loss_end"])

Names are imported lazily, so ``import train.qa`` (data tools) does not pull in Ray,
DeepSpeed or torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Recipe": "train.recipe",
    "load_recipe": "train.recipe_loading",
    "recipe_from_dict": "train.recipe_loading",
    "run": "train.launcher",
    "TrainResult": "train.launcher",
    "TrainError": "train.errors",
    "RecipeError": "train.errors",
    "DataFormatError": "train.errors",
    "ResumeError": "train.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'train' has no attribute {name!r}")

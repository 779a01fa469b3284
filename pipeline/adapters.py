"""Step 2b: the two LoRA adapters, trained with Ray Train through the CPU recipe (or reused).

An adapter is reused when the registry already holds one of that name trained from the same
recipe on the same data (the data fingerprint and recipe that ``train`` writes into its
metadata), so a second run of the pipeline costs nothing here unless asked to retrain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from modeling import AdapterRegistry, load_tokenizer
from modeling.errors import AdapterNotFoundError
from train import load_recipe, run
from train.dataset import data_fingerprint
from train.recipe import Recipe

from pipeline.progress import say
from pipeline.settings import AdapterPlan, PipelineSettings


@dataclass(frozen=True)
class AdapterOutcome:
    name: str
    reused: bool
    seconds: float
    metrics: dict


def adapter_recipe(settings: PipelineSettings, plan: AdapterPlan, data_file: Path) -> Recipe:
    return load_recipe(settings.recipe, [
        f"data.train_files=[{data_file}]",
        f"output.registry={settings.registry}",
        f"output.adapter_name={plan.name}",
        "output.overwrite=true",
        *plan.overrides,
    ])


def up_to_date(recipe: Recipe) -> dict | None:
    """The registered adapter's metadata if it was trained from exactly this recipe and data."""
    try:
        meta = AdapterRegistry(recipe.output.registry).metadata(recipe.output.adapter_name)
    except AdapterNotFoundError:
        return None
    same_data = meta.get("data", {}).get("fingerprint") == data_fingerprint(recipe, load_tokenizer(recipe.model))
    return meta if same_data and meta.get("recipe") == recipe.model_dump(mode="json") else None


def train_or_reuse(settings: PipelineSettings, plan: AdapterPlan, data_file: Path, *, retrain: bool) -> AdapterOutcome:
    recipe = adapter_recipe(settings, plan, data_file)
    started = time.perf_counter()
    meta = None if retrain else up_to_date(recipe)
    if meta is not None:
        say(f"reusing adapter {plan.name!r} (trained {meta.get('trained_at')} on the same data; --retrain to redo)")
        return AdapterOutcome(plan.name, True, 0.0, meta.get("metrics", {}))
    say(f"training adapter {plan.name!r} on {data_file} with {settings.recipe}")
    result = run(recipe)
    return AdapterOutcome(plan.name, False, round(time.perf_counter() - started, 1), result.metrics)

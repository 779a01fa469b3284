"""Put the trained adapter into the adapter registry, with its metadata and loss curve.

The adapter comes out of the run's final checkpoint and goes through
``modeling.AdapterRegistry`` (safetensors only): a local registry renames it into place
atomically; an ``s3://`` / ``gs://`` registry uploads it with its checksums (manifest last).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from modeling.adapters import AdapterRegistry
from modeling import storage
from train.checkpoints import ADAPTER_DIR, TrainerState
from train.plot import LOSS_CURVE_FILE, plot_loss_curve
from train.recipe import Recipe


def adapter_location(recipe: Recipe) -> str:
    return storage.join(storage.absolute(recipe.output.registry), recipe.output.adapter_name)


def check_output_free(recipe: Recipe) -> None:
    """Refuse to start a run whose adapter would overwrite one already registered (unless asked)."""
    location = adapter_location(recipe)
    if not recipe.output.overwrite and recipe.output.adapter_name in AdapterRegistry(recipe.output.registry).names():
        raise FileExistsError(
            f"adapter {recipe.output.adapter_name!r} already exists at {location}; choose another "
            "output.adapter_name or pass --set output.overwrite=true to replace it"
        )


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "peft", "deepspeed", "ray", "bitsandbytes")}


def build_metadata(
    recipe: Recipe, fingerprint: str, data_stats: dict, metrics: dict, started_at: float, tracking: dict | None = None
) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "base_model": recipe.model.name_or_path,
        "method": recipe.method,
        "quantization": recipe.model.quantization,
        "strategy": recipe.strategy if recipe.strategy == "ddp" else f"deepspeed-zero{recipe.deepspeed.zero_stage}",
        "recipe": recipe.model_dump(mode="json"),
        "data": {"files": list(recipe.data.train_files), "fingerprint": fingerprint, **data_stats},
        "metrics": metrics,
        "tracking": tracking or {},
        "started_at": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
        "trained_at": now.isoformat(timespec="seconds"),
        "duration_s": round(now.timestamp() - started_at, 1),
        "versions": _versions(),
    }


def publish_adapter(checkpoint_dir: Path, recipe: Recipe, state: TrainerState, metadata: dict) -> str:
    """Copy the checkpoint's adapter (plus loss curve and metadata) into the registry; return where."""
    name = recipe.output.adapter_name
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        staging = Path(tmp) / "adapter"
        shutil.copytree(checkpoint_dir / ADAPTER_DIR, staging)
        title = f"{name}: {recipe.method} on {Path(recipe.model.name_or_path).name}"
        plot_loss_curve(state.history, state.evals, staging / LOSS_CURVE_FILE, title)
        registry = AdapterRegistry(recipe.output.registry, refresh_s=0)
        folder = registry.add_folder(staging, name, metadata, overwrite=recipe.output.overwrite)
        return adapter_location(recipe) if registry.mirror else str(folder)

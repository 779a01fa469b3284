"""Experiment tracking from worker 0: TensorBoard event files, and MLflow when a URI is set.

* TensorBoard (on by default): ``torch.utils.tensorboard`` event files in the run folder,
  ``<run_dir>/<adapter>/<run>/tensorboard`` (``tensorboard --logdir runs`` shows every run).
  A run kept in ``s3://``/``gs://`` writes them on worker 0's node, under the cache folder.
* MLflow (``tracking.mlflow_uri``): Ray Train's integration, ``ray.air.integrations.mlflow.
  setup_mlflow``, which starts the MLflow run on worker 0 only and logs the recipe as
  parameters. A ``file:`` URI is a local store that works offline. The run id is kept in the
  trainer state, so a worker group that Ray replaces, or ``--resume``, continues the same
  MLflow run instead of starting another.

Both get the per-step train loss, learning rate, gradient norm and tokens/s, the eval loss,
and the run's summary at the end. The driver adds the loss-curve PNG and the adapter's
metadata to the MLflow run when it publishes (``log_published``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from modeling.paths import cache_dir
from train.recipe import Recipe

TENSORBOARD_DIR = "tensorboard"
FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"  # MLflow 3 refuses file stores unless this is set


def flat_params(tree: dict, prefix: str = "") -> dict[str, str]:
    """Nested recipe -> ``{"training.lr": "0.001", ...}`` (MLflow parameters are flat strings)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if not isinstance(value, str) else value
    return out


def tensorboard_dir(recipe: Recipe, run_path: str | None, run_name: str) -> Path:
    if run_path:
        return Path(run_path) / TENSORBOARD_DIR
    return cache_dir() / TENSORBOARD_DIR / recipe.output.adapter_name / run_name


def allow_file_store(uri: str) -> None:
    """A ``file:`` (or plain path) URI is MLflow's local store, usable offline; MLflow 3 needs an opt-in."""
    if "://" not in uri or uri.startswith("file:"):
        os.environ.setdefault(FILE_STORE_ENV, "true")


def experiment_name(recipe: Recipe) -> str:
    return recipe.tracking.mlflow_experiment or recipe.output.adapter_name


class RunTracker:
    """What worker 0 logs; other workers get one whose methods do nothing."""

    def __init__(self, recipe: Recipe, rank: int, run_path: str | None, run_name: str, mlflow_run_id: str | None) -> None:
        self.writer = None
        self.mlflow = None
        self.mlflow_run_id: str | None = None
        self.tensorboard_path: str | None = None
        if rank != 0:
            return
        if recipe.tracking.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            folder = tensorboard_dir(recipe, run_path, run_name)
            self.writer = SummaryWriter(log_dir=str(folder))
            self.writer.add_text("recipe", f"```\n{json.dumps(recipe.model_dump(mode='json'), indent=1)}\n```")
            self.tensorboard_path = str(folder)
        if recipe.tracking.mlflow_uri:
            from ray.air.integrations.mlflow import setup_mlflow

            allow_file_store(recipe.tracking.mlflow_uri)
            if mlflow_run_id:
                os.environ["MLFLOW_RUN_ID"] = mlflow_run_id  # continue the run (replaced workers, --resume)
            self.mlflow = setup_mlflow(
                flat_params(recipe.model_dump(mode="json")),
                tracking_uri=recipe.tracking.mlflow_uri,
                experiment_name=experiment_name(recipe),
                run_name=run_name,
                create_experiment_if_not_exists=True,
                tags={"adapter": recipe.output.adapter_name, "method": recipe.method, "base_model": recipe.model.name_or_path},
            )
            self.mlflow_run_id = self.mlflow.active_run().info.run_id

    def log(self, step: int, values: dict[str, float | None]) -> None:
        values = {k: float(v) for k, v in values.items() if v is not None}
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        if self.mlflow is not None:
            self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=step)

    def finish(self, summary: dict) -> None:
        numbers = {f"summary/{k}": v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.log(summary.get("total_steps", 0), numbers)
        if self.writer is not None:
            self.writer.close()
        if self.mlflow is not None:
            self.mlflow.end_run()

    def close(self) -> None:
        """Stop without finishing (the run continues in another attempt)."""
        if self.writer is not None:
            self.writer.close()


def log_published(recipe: Recipe, run_id: str | None, adapter_folder: Path) -> None:
    """Attach the published adapter's metadata and loss curve to the run's MLflow record (driver side)."""
    if not (recipe.tracking.mlflow_uri and run_id):
        return
    from mlflow.tracking import MlflowClient

    allow_file_store(recipe.tracking.mlflow_uri)
    client = MlflowClient(tracking_uri=recipe.tracking.mlflow_uri)
    for name in ("metadata.json", "loss_curve.png"):
        if (adapter_folder / name).is_file():
            client.log_artifact(run_id, str(adapter_folder / name), artifact_path="adapter")
    client.set_tag(run_id, "adapter_path", str(adapter_folder))

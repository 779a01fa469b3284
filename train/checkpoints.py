"""What a training checkpoint holds, and reading it back.

A checkpoint folder (reported through ``ray.train.report``, merged from all workers) has:

* ``adapter/``: the LoRA adapter as peft saves it (safetensors), the run's product;
* ``trainer_state.json``: step reached (which with the seed fixes the data position, see
  ``train.batching``), the loss/eval history and counters;
* the engine's optimizer and LR-scheduler state (``optimizer.pt`` for DDP, ``deepspeed/``
  with one optimizer shard per worker for DeepSpeed).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from peft import PeftModel
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file

from modeling.adapters import ADAPTER_WEIGHTS

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    """Everything about the run's progress that is not a tensor."""

    step: int = 0
    rows_consumed: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this worker's steps (rank 0's value is what is saved)
    attempts: int = 1
    first_step_at: float | None = None  # wall-clock time the first step began (startup cost)
    history: list[dict] = field(default_factory=list)  # one entry per step
    evals: list[dict] = field(default_factory=list)  # {"step", "eval_loss"}
    summary: dict = field(default_factory=dict)  # filled at the last step: memory, timings
    tracking: dict = field(default_factory=dict)  # where the run is tracked: tensorboard dir, mlflow run id

    def save(self, folder: Path) -> None:
        (folder / STATE_FILE).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> "TrainerState":
        return cls(**json.loads((folder / STATE_FILE).read_text()))


def save_adapter(peft_model: PeftModel, folder: Path) -> None:
    peft_model.save_pretrained(folder, safe_serialization=True)


def load_adapter_weights(peft_model: PeftModel, folder: Path) -> None:
    """Put saved LoRA weights into ``peft_model`` (exact copies, so resumed runs match)."""
    result = set_peft_model_state_dict(peft_model, load_file(folder / ADAPTER_WEIGHTS))
    if result.unexpected_keys:
        raise RuntimeError(f"checkpoint adapter in {folder} does not fit this model: {result.unexpected_keys[:5]}")

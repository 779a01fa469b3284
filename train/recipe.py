"""The recipe: one YAML file that describes a whole fine-tuning run, validated by pydantic.

Every section is a strict model (unknown keys are errors) and every knob has a default that
runs on a CPU laptop, so a recipe only states what differs. ``model:`` and ``lora:`` are the
model layer's own settings, so training and serving describe a base model the same way.
Combinations that cannot work (int8 under DeepSpeed, parameter offload without ZeRO-3, ...)
are refused here, before any worker starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from modeling.adapters import check_adapter_name
from modeling.errors import InvalidAdapterNameError
from modeling.settings import LoraSettings, ModelSettings, StrictModel

DEMO_DATA = "train/examples/parts-catalogue.jsonl"


class DataSettings(StrictModel):
    """Which JSONL files to train on and how to turn them into token rows."""

    train_files: tuple[str, ...] = Field((DEMO_DATA,), min_length=1, description="JSONL files, relative to the working dir")
    format: Literal["auto", "chat", "instruction"] = Field(
        "auto", description="chat = {'messages': [...]}, instruction = {'instruction','input','output'}; auto = per line"
    )
    packing: bool = Field(True, description="pack several examples into one row (no cross-attention) instead of padding")
    max_seq_len: int = Field(512, ge=16, le=131072, description="tokens per row; longer examples are truncated")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of examples held out for the eval loss")


class ScalingSettings(StrictModel):
    """Ray Train's ScalingConfig: how many workers and what each one reserves."""

    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = Field(
        None, description="e.g. {CPU: 4, GPU: 1, 'accelerator_type:A10G': 0.001} or custom resources"
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    memory_per_worker_gb: float | None = Field(
        None, gt=0, description="memory each worker may use (GPU memory with use_gpu, else RAM), checked by the "
        "memory plan; None = from the GPU type in resources_per_worker, or this machine's RAM shared by the workers",
    )


class DeepSpeedSettings(StrictModel):
    """The DeepSpeed engine inside each worker (read only when ``strategy: deepspeed``)."""

    zero_stage: Literal[2, 3] = 2
    offload_optimizer: bool = Field(False, description="keep optimizer state in CPU memory (DeepSpeedCPUAdam)")
    offload_params: bool = Field(False, description="keep parameters in CPU memory (ZeRO-3 only)")
    bf16: bool | None = Field(None, description="bf16 mixed precision; None = on when training on GPUs, fp32 on CPU")
    stage3_live_parameters: int | None = Field(
        None, ge=0, description="ZeRO-3: parameters kept gathered at once, and the reuse distance under which a "
        "gathered one is kept (stage3_max_live_parameters/max_reuse_distance); None = DeepSpeed's 1e9, which on a "
        "model of up to ~1B parameters keeps most of it gathered; lower it (e.g. 1e8) to trade re-gathering for memory",
    )


class TrainingSettings(StrictModel):
    """Length of the run, batch shape and how often to log and evaluate."""

    epochs: float = Field(1.0, gt=0, description="passes over the training rows (ignored when max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    micro_batch_size: int = Field(1, ge=1, description="rows per worker per forward pass")
    grad_accum_steps: int = Field(4, ge=1, description="micro-batches per optimizer step on each worker")
    gradient_checkpointing: bool = False
    log_every: int = Field(1, ge=1, description="print a progress line every N steps")
    eval_every: int = Field(0, ge=0, description="eval loss every N steps; 0 = only before training and at the end")


class OptimSettings(StrictModel):
    """AdamW over the LoRA parameters."""

    lr: float = Field(2.0e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1.0e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; null = off")


class ScheduleSettings(StrictModel):
    """Learning-rate schedule with linear warm-up."""

    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio")


class CheckpointSettings(StrictModel):
    """Checkpoints through ``ray.train.report`` and recovery from worker failures."""

    every_steps: int = Field(20, ge=1, description="also always at the last step")
    keep: int = Field(2, ge=1, description="newest checkpoints kept in the run folder")
    max_failures: int = Field(1, ge=-1, description="worker-group restarts from the last checkpoint; -1 = unlimited")


class OutputSettings(StrictModel):
    """Where the adapter and the run's checkpoints go."""

    registry: str = Field("data/adapters", description="adapter registry folder, or an s3:// / gs:// URI")
    adapter_name: str = "cpu-demo"
    overwrite: bool = Field(False, description="replace an adapter of the same name in the registry")
    run_dir: str = Field("runs", description="Ray Train storage for checkpoints (folder or s3:// / gs:// URI)")

    @field_validator("adapter_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        try:
            return check_adapter_name(value)
        except InvalidAdapterNameError as exc:
            raise ValueError(str(exc)) from None


class TrackingSettings(StrictModel):
    """Experiment tracking (see ``train.tracking``): TensorBoard by default, MLflow when a URI is given."""

    tensorboard: bool = Field(True, description="TensorBoard event files in the run folder (<run_dir>/<adapter>/<run>/tensorboard)")
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI: file:/abs/path (local store, offline), http://server:5000, databricks, ..."
    )
    mlflow_experiment: str | None = Field(None, description="MLflow experiment; default: the adapter name")


class FaultInjection(StrictModel):
    """Test knob: one worker dies once at a step, so recovery from checkpoints can be checked."""

    at_step: int = Field(ge=1, description="the step (1-based) during which the worker dies")
    rank: int = Field(0, ge=0)
    how: Literal["exit", "exception"] = Field("exit", description="exit = the process dies; exception = it raises")


class Recipe(StrictModel):
    """A complete fine-tuning run."""

    description: str = ""
    seed: int = 0
    model: ModelSettings = ModelSettings()
    lora: LoraSettings = LoraSettings()
    data: DataSettings = DataSettings()
    scaling: ScalingSettings = ScalingSettings()
    strategy: Literal["ddp", "deepspeed"] = Field("ddp", description="ddp = torch DDP; deepspeed = ZeRO engine")
    deepspeed: DeepSpeedSettings = DeepSpeedSettings()
    training: TrainingSettings = TrainingSettings()
    optim: OptimSettings = OptimSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    checkpointing: CheckpointSettings = CheckpointSettings()
    output: OutputSettings = OutputSettings()
    tracking: TrackingSettings = TrackingSettings()
    fault_injection: FaultInjection | None = None

    @property
    def method(self) -> str:
        """``qlora`` for 4-bit bases, ``lora-int8`` for 8-bit ones, else ``lora``."""
        return {"nf4": "qlora", "fp4": "qlora", "int8": "lora-int8"}.get(self.model.quantization, "lora")

    @property
    def bf16(self) -> bool:
        """bf16 mixed precision: on GPUs by default; fp32 on CPU, where bf16 is slower and inexact."""
        if self.strategy == "deepspeed" and self.deepspeed.bf16 is not None:
            return self.deepspeed.bf16
        return self.scaling.use_gpu

    @property
    def zero3(self) -> bool:
        return self.strategy == "deepspeed" and self.deepspeed.zero_stage == 3

    @property
    def quant_storage(self) -> str | None:
        """dtype of the packed 4-bit weights: the compute dtype under ZeRO-3, bitsandbytes' uint8 otherwise.

        ZeRO-3 shards every parameter, the frozen 4-bit base too; stored as compute-dtype
        floats the packed weights go through ZeRO-3's partitioning and all-gathers like any
        other float parameter (PEFT's and LLaMA-Factory's QLoRA + ZeRO-3 setting). The
        quantised values are the same, so the adapter serves on a uint8-stored base.
        """
        return self.model.compute_dtype if self.zero3 and self.model.quantization in ("nf4", "fp4") else None

    @model_validator(mode="after")
    def _combinations_that_work(self) -> "Recipe":
        ds, quant = self.deepspeed, self.model.quantization
        if self.strategy == "deepspeed":
            if quant == "int8":
                raise ValueError("model.quantization=int8 trains with strategy: ddp only; use nf4 for DeepSpeed QLoRA")
            if ds.offload_params and ds.zero_stage != 3:
                raise ValueError("deepspeed.offload_params needs deepspeed.zero_stage: 3 (DeepSpeed only offloads sharded parameters)")
        if self.model.device_map not in (None, "cpu", "cuda"):
            raise ValueError(
                f"model.device_map={self.model.device_map!r}: Ray Train places one model copy per worker; "
                "leave device_map unset (or 'cpu'/'cuda')"
            )
        if self.model.device_map == "cuda" and not self.scaling.use_gpu:
            raise ValueError("model.device_map is 'cuda' but scaling.use_gpu is false")
        if self.fault_injection and self.fault_injection.rank >= self.scaling.num_workers:
            raise ValueError(
                f"fault_injection.rank={self.fault_injection.rank} but there are only {self.scaling.num_workers} workers"
            )
        return self

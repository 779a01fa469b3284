"""Declarative settings for loading models and attaching LoRA, shared by training and serving.

Recipes (``train/recipes/*.yaml``) and the Serve config embed these models, so one
validated description of "which model, how quantised, which adapter shape" exists.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modeling.builtin import BUILTIN_MODEL_ID

# Phi-3 fuses attention into qkv_proj and the MLP into gate_up_proj; these four names are
# every Linear in a Phi-3 decoder layer, which is what QLoRA's paper recommends targeting.
PHI3_LORA_TARGETS: tuple[str, ...] = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")

Precision = Literal["float32", "bfloat16", "float16", "auto"]
Quantization = Literal["none", "nf4", "fp4", "int8"]


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a recipe must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(StrictModel):
    """Which base model to load and how.

    ``name_or_path`` accepts a hub id (``microsoft/Phi-3-mini-4k-instruct``), a local folder,
    or ``builtin:smollm2-135m-phi3`` (the offline default, built locally on first use).
    """

    name_or_path: str = BUILTIN_MODEL_ID
    precision: Precision = Field(
        "float32", description="dtype of the non-quantised weights; bfloat16 on GPUs, float32 on CPU"
    )
    quantization: Quantization = Field("none", description="nf4 = QLoRA 4-bit; int8 = LLM.int8()")
    double_quant: bool = Field(True, description="QLoRA double quantisation of the 4-bit scales")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype the 4-bit matmuls compute in (bfloat16 on GPUs)"
    )
    device_map: str | None = Field(
        None, description="passed to from_pretrained; None keeps the model on CPU (Ray Train moves it)"
    )
    attn_implementation: str | None = Field(None, description="e.g. 'sdpa', 'eager', 'flash_attention_2'")
    trust_remote_code: bool = False
    revision: str | None = None

    @property
    def is_quantized(self) -> bool:
        return self.quantization != "none"


class LoraSettings(StrictModel):
    """The shape of a LoRA adapter (the same for LoRA and QLoRA)."""

    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = PHI3_LORA_TARGETS
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False

    @model_validator(mode="after")
    def _targets_not_empty(self) -> "LoraSettings":
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module, e.g. qkv_proj")
        return self

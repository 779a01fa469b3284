"""Attach trainable LoRA adapters to a loaded base model (LoRA on full/half precision, QLoRA on 4-bit)."""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import PreTrainedModel

from modeling.errors import ModelLayerError
from modeling.quantization import make_4bit_trainable
from modeling.settings import LoraSettings


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Short names of every Linear-like layer (what ``target_modules`` may name)."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in {"Linear4bit", "Linear8bitLt"}
    }
    return sorted(names)


def is_quantized(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def attach_lora(
    model: PreTrainedModel, lora: LoraSettings, *, gradient_checkpointing: bool = False
) -> PeftModel:
    """Wrap ``model`` with a fresh trainable LoRA adapter named ``default``.

    Quantised bases go through peft's k-bit preparation (norms in fp32, input grads on) and
    the 4-bit repacking fix, so QLoRA gradients are right whatever ran on the model before.
    """
    available = linear_module_names(model)
    unknown = [t for t in lora.target_modules if t not in available]
    if unknown:
        raise ModelLayerError(
            f"LoRA target modules {unknown} are not in this model; its linear layers are: {', '.join(available)}"
        )
    if is_quantized(model):
        make_4bit_trainable(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias=lora.bias,
        use_rslora=lora.use_rslora,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)

"""bitsandbytes quantisation: QLoRA's NF4 (with double quant) and LLM.int8().

Also home of the fix for a silent CPU trap (measured on CPUs with AVX512-BF16):
bitsandbytes' ``Linear4bit.forward`` repacks its weights into a CPU-inference layout the
first time it runs in eval()/no_grad mode, and LoRA gradients computed through the repacked
weights are wrong from then on. Any model that will be trained goes through
:func:`make_4bit_trainable`, which undoes a repack that already happened and switches the
repacking off for good, so call order (evaluate first, then train) cannot matter.
"""

from __future__ import annotations

import torch
from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
from bitsandbytes.nn import Linear4bit
from transformers import BitsAndBytesConfig

from modeling.settings import ModelSettings

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def to_torch_dtype(name: str) -> torch.dtype | str:
    """Map a settings dtype name to torch ("auto" passes through to transformers)."""
    return "auto" if name == "auto" else _DTYPES[name]


def bitsandbytes_config(settings: ModelSettings, quant_storage: str | None = None) -> BitsAndBytesConfig | None:
    """The transformers quantisation config for ``settings`` (None when not quantised).

    ``quant_storage`` is the dtype the packed 4-bit values are stored in (bitsandbytes'
    default ``uint8`` when None). Training under DeepSpeed ZeRO-3 or FSDP passes the compute
    dtype, so the packed weights are float tensors like every other parameter and can be
    sharded with them; the quantised values, and so the model's outputs, are the same.
    """
    if settings.quantization == "none":
        return None
    if settings.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=settings.quantization,  # "nf4" (QLoRA) or "fp4"
        bnb_4bit_use_double_quant=settings.double_quant,
        bnb_4bit_compute_dtype=_DTYPES[settings.compute_dtype],
        bnb_4bit_quant_storage=_DTYPES[quant_storage] if quant_storage else torch.uint8,
    )


def make_4bit_trainable(model: torch.nn.Module) -> int:
    """Undo CPU weight repacking on every ``Linear4bit`` and disable it; returns layers fixed."""
    fixed = 0
    for module in model.modules():
        if not isinstance(module, Linear4bit):
            continue
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            data, state = _convert_weight_packed_for_cpu_inverse(module.weight.data, state)
            module.weight.data = data
            module.weight.quant_state = state
            fixed += 1
    return fixed

"""The model layer: the one place models are loaded, quantised, given adapters and prompted.

Training (``train/``) and serving (``serve/``) both import from here and nowhere else for
models, so a Phi-3 checkpoint, its QLoRA quantisation and its adapters behave the same in
both.
"""

import logging

# Before anything imports bitsandbytes: on AVX512-BF16 CPUs it tries, at import, to fetch optional
# kernels from the Hugging Face Hub through the `kernels` package and warns to pip-install it. This
# project never loads code from a hub at run time and bitsandbytes falls back to its own kernels,
# so the warning would only mislead.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from modeling.adapters import AdapterHost, AdapterRegistry, check_adapter_name
from modeling.builtin import BUILTIN_MODEL_ID, ensure_builtin_model
from modeling.chat import ChatMessage, encode_chat, render_chat
from modeling.errors import (
    AdapterMismatchError,
    AdapterNotFoundError,
    InvalidAdapterNameError,
    ModelLayerError,
    ModelNotFoundError,
    PromptTooLongError,
    UnsafeAdapterFormatError,
)
from modeling.export import merge_and_export
from modeling.generation import Completion, GenerationParams, generate_chat, generate_from_ids
from modeling.loading import load_base_model, load_tokenizer
from modeling.lora import attach_lora
from modeling.settings import PHI3_LORA_TARGETS, LoraSettings, ModelSettings

__all__ = [
    "AdapterHost",
    "AdapterMismatchError",
    "AdapterNotFoundError",
    "AdapterRegistry",
    "BUILTIN_MODEL_ID",
    "ChatMessage",
    "Completion",
    "GenerationParams",
    "InvalidAdapterNameError",
    "LoraSettings",
    "ModelLayerError",
    "ModelNotFoundError",
    "ModelSettings",
    "PHI3_LORA_TARGETS",
    "PromptTooLongError",
    "UnsafeAdapterFormatError",
    "attach_lora",
    "check_adapter_name",
    "encode_chat",
    "ensure_builtin_model",
    "generate_chat",
    "generate_from_ids",
    "load_base_model",
    "load_tokenizer",
    "merge_and_export",
    "render_chat",
]

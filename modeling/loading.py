"""The one place base models and tokenizers are loaded (training and serving both call it)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.integrations import is_deepspeed_zero3_enabled

from modeling.builtin import resolve_model_source
from modeling.errors import ModelNotFoundError
from modeling.quantization import bitsandbytes_config, to_torch_dtype
from modeling.settings import ModelSettings

log = logging.getLogger(__name__)


def _source(settings: ModelSettings) -> str:
    source = resolve_model_source(settings.name_or_path)
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise ModelNotFoundError(f"model folder {source!r} does not exist; pass a hub id or an existing folder")
    return str(Path(source).expanduser()) if looks_local else source


def load_tokenizer(settings: ModelSettings) -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token (Phi-3 and SmolLM2 reuse an end token for it)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            _source(settings), revision=settings.revision, trust_remote_code=settings.trust_remote_code
        )
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load a tokenizer for {settings.name_or_path!r}: {exc}. Offline (HF_HUB_OFFLINE=1) "
            "only local folders, already-cached hub models and 'builtin:smollm2-135m-phi3' load."
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(settings: ModelSettings, *, quant_storage: str | None = None) -> PreTrainedModel:
    """Load the base model in full precision, half precision, NF4 or int8 as ``settings`` say.

    ``quant_storage``: dtype of the packed 4-bit weights (see ``bitsandbytes_config``);
    trainers that shard parameters (ZeRO-3) pass the compute dtype.
    """
    kwargs: dict = {
        "dtype": to_torch_dtype(settings.precision),
        "revision": settings.revision,
        "trust_remote_code": settings.trust_remote_code,
    }
    quant = bitsandbytes_config(settings, quant_storage)
    if quant is not None:
        kwargs["quantization_config"] = quant
        # bitsandbytes quantises while placing weights; without a map they stay on CPU. Under
        # DeepSpeed ZeRO-3 transformers refuses any map: its quantizer then places the weights
        # on this process's current device itself, and DeepSpeed shards them from there.
        if not is_deepspeed_zero3_enabled():
            kwargs["device_map"] = settings.device_map or ("cuda" if torch.cuda.is_available() else "cpu")
    elif settings.device_map:
        kwargs["device_map"] = settings.device_map
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(_source(settings), **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load model {settings.name_or_path!r}: {exc}. Offline (HF_HUB_OFFLINE=1) only local "
            "folders, already-cached hub models and 'builtin:smollm2-135m-phi3' load."
        ) from exc
    log.info("loaded %s (%s, quantization=%s)", settings.name_or_path, settings.precision, settings.quantization)
    return model

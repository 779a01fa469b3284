"""Merge a LoRA adapter into its base model and export a standalone Hugging Face folder.

The base is always reloaded *unquantised* for the merge: adding a LoRA delta into NF4 or
int8 weights would round it away, and a merged 4-bit export could not be re-quantised
cleanly. Users quantise the merged model again when they load it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from peft import PeftModel

from modeling.adapters import AdapterRegistry
from modeling.loading import load_base_model, load_tokenizer
from modeling.settings import ModelSettings

log = logging.getLogger(__name__)


def merge_and_export(
    base: ModelSettings, registry: AdapterRegistry, adapter: str, out_dir: str | Path
) -> Path:
    """Write ``base`` + ``adapter`` merged into ``out_dir`` (safetensors, tokenizer, provenance)."""
    if base.is_quantized:
        log.warning("merging into an unquantised copy of %s (was %s)", base.name_or_path, base.quantization)
        base = base.model_copy(update={"quantization": "none"})
    folder = registry.path(adapter)
    model = PeftModel.from_pretrained(load_base_model(base), str(folder), is_trainable=False)
    merged = model.merge_and_unload()
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(base).save_pretrained(out)
    (out / "EXPORT_INFO.json").write_text(
        json.dumps(
            {"base_model": base.name_or_path, "adapter": adapter, "adapter_metadata": registry.metadata(adapter)},
            indent=2,
            default=str,
        )
    )
    return out

"""Run one forward pass whose rows use different LoRA adapters (or none).

peft supports mixed-adapter batches: ``adapter_names`` gives each batch row its adapter
(``"__base__"`` for the bare model) and every LoRA layer applies each adapter to its own
rows. ``PeftModel.forward`` turns that keyword into forward hooks through
``_enable_peft_forward_hooks``; the engine calls the decoder and the LM head separately (so
the head only runs on the rows whose logits it needs), so it enters that same context
itself. When every row wants the same thing, the cheaper single-adapter path is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from peft import PeftModel
from transformers import PreTrainedModel

BASE_ROW = "__base__"


@contextmanager
def rows_use_adapters(model: PreTrainedModel | PeftModel, names: list[str | None]) -> Iterator[None]:
    """Within the block, row ``i`` of a forward pass of ``model`` uses adapter ``names[i]`` (None = base)."""
    if not isinstance(model, PeftModel):
        if any(names):
            raise RuntimeError(f"rows ask for adapters {sorted(set(filter(None, names)))} but none is loaded")
        yield
        return
    wanted = set(names)
    if wanted == {None}:
        with model.disable_adapter():
            yield
        return
    if len(wanted) == 1:
        (only,) = wanted
        if model.active_adapter != only:
            model.set_adapter(only)
        with nullcontext():
            yield
        return
    with model._enable_peft_forward_hooks(adapter_names=[n or BASE_ROW for n in names]):
        yield

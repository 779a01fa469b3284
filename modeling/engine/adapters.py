"""One forward pass whose rows use different LoRA adapters (or none).

peft's own mixed-adapter batches (``adapter_names`` in ``forward``) work, but cost a lot per
step on a ragged batch of a few hundred rows: forward hooks are registered on every LoRA layer
for every call, and every layer rebuilds each adapter's row list in Python. This module does the
same arithmetic with the work done once per step:

* peft's adapter layers are switched off (``disable_adapter_layers``): every LoRA layer computes
  the base layer only;
* a forward hook, registered once per LoRA layer, adds ``lora_B(lora_A(x[rows])) * scaling``
  to the rows of each adapter, with the row indices built once per step for all layers.

The result equals peft's (the same base output plus the same low-rank product, added to the
same rows). Adapters with a peft *variant* (DoRA, aLoRA ...) are not plain low-rank products;
when one is loaded, the engine uses peft's ``adapter_names`` path instead (slower, same result).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import PreTrainedModel

BASE_ROW = "__base__"


class LoraRows:
    def __init__(self) -> None:
        self.plan: list[tuple[str, torch.Tensor | None]] = []  # (adapter, rows or None = every row)
        self._hooked: dict[int, torch.utils.hooks.RemovableHandle] = {}
        self._prepared_for: PeftModel | None = None
        self._prepared_adapters: frozenset[str] = frozenset()
        self._probe: LoraLayer | None = None

    def prepare(self, model: PeftModel) -> bool:
        """Hook every LoRA layer and switch peft's own adapter layers off; False if a variant forbids it."""
        adapters = frozenset(model.peft_config)
        if model is self._prepared_for and adapters == self._prepared_adapters and self._probe.disable_adapters:
            return True  # (the probe: someone may have switched peft's layers back on, e.g. AdapterHost.using)
        layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        if any(getattr(m, "lora_variant", None) for m in layers):
            return False
        for handle in self._hooked.values():
            handle.remove()
        self._hooked = {id(m): m.register_forward_hook(self._add_deltas) for m in layers}
        model.base_model.disable_adapter_layers()  # from now on the layers compute the base output only
        self._prepared_for, self._prepared_adapters, self._probe = model, adapters, layers[0]
        return True

    def forget(self) -> None:
        """The model changed (an adapter unloaded): hooks are placed again at the next prepare()."""
        self._prepared_for = None

    def _add_deltas(self, module: LoraLayer, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if not self.plan:
            return output
        x = args[0]
        for name, rows in self.plan:
            if name not in module.lora_A:
                continue
            lora_a, lora_b = module.lora_A[name], module.lora_B[name]
            inputs = (x if rows is None else x[rows]).to(lora_a.weight.dtype)
            delta = (lora_b(lora_a(inputs)) * module.scaling[name]).to(output.dtype)
            if rows is None:
                output += delta
            else:
                output.index_add_(0, rows, delta)
        return output


@contextmanager
def rows_use_adapters(
    model: PreTrainedModel | PeftModel, names: list[str | None], lora_rows: LoraRows
) -> Iterator[None]:
    """Within the block, row ``i`` of a forward pass of ``model`` uses adapter ``names[i]`` (None = base)."""
    if not isinstance(model, PeftModel):
        if any(names):
            raise RuntimeError(f"rows ask for adapters {sorted(set(filter(None, names)))} but none is loaded")
        yield
        return
    if not lora_rows.prepare(model):  # an adapter with a peft variant: peft's own mixed batches
        model.base_model.enable_adapter_layers()
        with model._enable_peft_forward_hooks(adapter_names=[n or BASE_ROW for n in names]):
            yield
        return
    device = next(model.parameters()).device
    wanted = {n for n in names if n is not None}
    if len(wanted) == 1 and None not in names:
        lora_rows.plan = [(next(iter(wanted)), None)]
    else:
        lora_rows.plan = [
            (name, torch.tensor([i for i, n in enumerate(names) if n == name], dtype=torch.long, device=device))
            for name in sorted(wanted)
        ]
    try:
        yield
    finally:
        lora_rows.plan = []

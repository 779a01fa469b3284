"""Per-sequence KV caches: every sequence owns its keys and values, sized once for its whole life.

A sequence reserves ``prompt + max_new_tokens`` positions when it is admitted, so a running
sequence never grows, never moves and never runs out of room mid-answer; the engine admits a
waiting request only when its reservation fits ``kv_cache_mb``. Tensors are allocated
lazily on the first write of each layer, in the dtype and on the device of the model's keys.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


def kv_bytes_per_token(model: PreTrainedModel) -> int:
    """Bytes one token's keys and values take over all layers (what a reservation costs)."""
    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    dtype = model.get_input_embeddings().weight.dtype  # the hidden states' dtype, also under 4-bit weights
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element


class SequenceKV:
    """Keys and values of one sequence for every layer: ``(capacity, kv_heads, head_dim)`` each.

    Position-major, the layout the projections produce them in, so writing a step's keys is one
    contiguous copy; attention reads them through a transposed view.
    """

    def __init__(self, num_layers: int, capacity: int) -> None:
        self.capacity = capacity
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0  # positions holding valid K/V in every layer (advanced after each step)

    def write(
        self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``keys``/``values`` of shape ``(n, kv_heads, head_dim)`` at ``start``; return all K/V so far."""
        end = start + keys.shape[0]
        if end > self.capacity:
            raise RuntimeError(f"KV cache overflow: position {end} > reserved {self.capacity}")  # an engine bug
        if self.keys[layer] is None:
            shape = (self.capacity, *keys.shape[1:])
            self.keys[layer] = keys.new_empty(shape)
            self.values[layer] = values.new_empty(shape)
        k, v = self.keys[layer], self.values[layer]
        k[start:end] = keys
        v[start:end] = values
        return k[:end], v[:end]

    def read(self, layer: int, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of positions ``[start, end)`` of one layer (for the prefix cache)."""
        return self.keys[layer][start:end].clone(), self.values[layer][start:end].clone()

    def release(self) -> None:
        self.keys = [None] * len(self.keys)
        self.values = [None] * len(self.values)

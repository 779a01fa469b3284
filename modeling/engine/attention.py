"""Attention over ragged batches: one forward pass for many sequences of different lengths.

The engine lays a step out as a flat list of tokens, one batch row each (shape ``(T, 1)``):
each running sequence contributes its next token, a prompt contributes a chunk of its
tokens. Everything in a decoder layer except attention works per token, so only attention
needs to know which rows belong together; it finds that in the ``expert_step`` keyword the
engine passes through the model's forward (transformers hands extra keywords down to the
attention function). Each sequence appends its new keys/values to its own cache and attends
over exactly its own positions, with no padding, so a row's result does not depend on what
else is in the batch.

Rows of one token per sequence are also what peft's mixed-adapter batches index by, so one
pass can serve several LoRA adapters and the bare base model at once.

The function is registered with transformers' ``AttentionInterface`` under
``ATTENTION_NAME``; called without ``expert_step`` (e.g. by ``model.generate``) it is plain
SDPA, so the model stays usable outside the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from modeling.engine.kv import SequenceKV

ATTENTION_NAME = "expert_ragged"


@dataclass(frozen=True)
class Segment:
    """Rows ``[start, end)`` of the step belong to one sequence whose cache already holds ``past`` positions."""

    kv: SequenceKV
    start: int
    end: int
    past: int


@dataclass(frozen=True)
class StepLayout:
    segments: tuple[Segment, ...]


def _causal_mask(new: int, past: int, window: int | None, device: torch.device) -> torch.Tensor | None:
    """Boolean mask for ``new`` queries at positions ``past..past+new-1`` over keys ``0..past+new-1``."""
    total = past + new
    if new == 1 and (window is None or total <= window):
        return None  # one query attends to everything before it
    query_pos = torch.arange(past, total, device=device).unsqueeze(1)
    key_pos = torch.arange(total, device=device).unsqueeze(0)
    mask = key_pos <= query_pos
    if window is not None:
        mask &= key_pos > query_pos - window  # transformers' sliding window: the last `window` positions
    return mask


def ragged_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    expert_step: StepLayout | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    if expert_step is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
            sliding_window=sliding_window, **kwargs,
        )
    # query: (T, heads, 1, head_dim); key/value: (T, kv_heads, 1, head_dim); rows of a segment are contiguous.
    layer = module.layer_idx
    rows, heads, _, head_dim = query.shape
    gqa = heads != key.shape[1]
    queries, keys, values = query[:, :, 0], key[:, :, 0], value[:, :, 0]  # (T, heads, head_dim)
    out = query.new_empty(rows, 1, heads, head_dim)
    for seg in expert_step.segments:
        k_all, v_all = seg.kv.write(layer, seg.past, keys[seg.start : seg.end], values[seg.start : seg.end])
        new = seg.end - seg.start
        attended = F.scaled_dot_product_attention(
            queries[seg.start : seg.end].transpose(0, 1).unsqueeze(0),  # (1, heads, new, head_dim)
            k_all.transpose(0, 1).unsqueeze(0),
            v_all.transpose(0, 1).unsqueeze(0),
            attn_mask=_causal_mask(new, seg.past, sliding_window, query.device),
            scale=scaling,
            enable_gqa=gqa,
        )
        out[seg.start : seg.end, 0] = attended[0].transpose(0, 1)
    return out, None


def use_ragged_attention(model: PreTrainedModel) -> None:
    """Register the ragged attention (once per process) and switch ``model`` to it."""
    if ATTENTION_NAME not in ALL_ATTENTION_FUNCTIONS.valid_keys():
        AttentionInterface.register(ATTENTION_NAME, ragged_attention)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # masks are only built for the fallback path
    if model.config._attn_implementation != ATTENTION_NAME:
        model.set_attn_implementation(ATTENTION_NAME)

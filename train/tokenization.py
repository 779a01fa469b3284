"""Chats -> token ids and next-token targets, with loss on assistant tokens only.

The text comes from the tokenizer's own chat template (``modeling.render_chat``), so a
model is trained on exactly the format it is prompted with at serving time. Which characters
belong to assistant turns is found by rendering growing prefixes of the chat: the assistant
turn ``i`` spans from the end of "messages before i + generation prompt" to the end of
"messages through i" (the end marker, e.g. ``<|end|>``, included so the model learns to
stop). The full text is tokenized once, and a token is an assistant token when it overlaps
such a span (the tokenizer's offset mapping tells where each token lies); with templates
whose markers are special tokens (Phi-3, ChatML) no token straddles a span's edge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from modeling.chat import render_chat
from train.errors import DataFormatError

IGNORE_INDEX = -100  # the target of a position that carries no loss


@dataclass(frozen=True)
class Example:
    """One tokenized conversation.

    ``targets[t]`` is the token the model must predict after reading ``input_ids[: t + 1]``,
    or ``IGNORE_INDEX`` when that next token is not an assistant token. Targets are shifted
    here, per example, so no target ever crosses into a neighbour once examples are packed.
    """

    input_ids: np.ndarray  # int32
    targets: np.ndarray  # int32
    cut_tokens: int = 0  # tokens truncation removed from the end

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def truncated(self) -> bool:
        return self.cut_tokens > 0

    @property
    def full_length(self) -> int:
        """Tokens before truncation: the ``max_seq_len`` that would keep this example whole."""
        return len(self.input_ids) + self.cut_tokens

    @property
    def num_targets(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the ``[start, end)`` character spans of its assistant turns."""
    text = render_chat(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], add_generation_prompt=True)
        if not text.startswith(before):
            raise DataFormatError(
                f"the chat template of {tokenizer.name_or_path!r} renders a conversation differently from its own "
                "prefix, so assistant tokens cannot be located; use a template that appends turns"
            )
        through = render_chat(tokenizer, messages[: i + 1], add_generation_prompt=False)
        spans.append((len(before), _common_prefix(through, text)))
    return text, spans


def tokenize_chat(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict], max_seq_len: int) -> Example:
    """Token ids and assistant-only targets of one chat, truncated to ``max_seq_len`` tokens."""
    if not tokenizer.is_fast:
        raise DataFormatError(f"tokenizer {tokenizer.name_or_path!r} is not a fast tokenizer; offsets are needed for loss masking")
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = np.asarray(encoded["input_ids"], dtype=np.int32)
    offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    is_assistant = np.zeros(len(ids), dtype=bool)
    for lo, hi in spans:
        is_assistant |= (offsets[:, 1] > lo) & (offsets[:, 0] < hi)
    targets = np.full(len(ids), IGNORE_INDEX, dtype=np.int32)
    targets[:-1] = np.where(is_assistant[1:], ids[1:], IGNORE_INDEX)
    cut_tokens = max(0, len(ids) - max_seq_len)
    if cut_tokens:
        ids, targets = ids[:max_seq_len], targets[:max_seq_len].copy()
        targets[-1] = IGNORE_INDEX  # its next token was cut off
    return Example(ids, targets, cut_tokens)

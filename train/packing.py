"""Rows of tokens: several examples packed into one row, or one example per row.

Packing puts short examples side by side in a ``max_seq_len`` row instead of padding each
to the longest, so compute goes to real tokens. Examples in a row must not attend to each
other: every example's ``position_ids`` restart at 0, and the model is called with
``position_ids`` and no attention mask. transformers (5.x) then derives a block-diagonal
causal mask from the position restarts for eager/SDPA attention, and variable-length
kernels for flash attention (``tests/train/test_packing.py`` checks an example's logits
inside a pack equal its logits alone). Padding at the end of a batch also restarts at 0,
so it is a segment of its own that nothing real attends to.

Rows are built by best-fit decreasing bin packing: longest first, each into the fullest row
it still fits, which wastes only a few percent of each row.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from train.tokenization import IGNORE_INDEX, Example


@dataclass(frozen=True)
class Row:
    """One row of a batch: concatenated examples with per-example positions."""

    input_ids: np.ndarray
    targets: np.ndarray
    position_ids: np.ndarray
    num_examples: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())


def _row(examples: Sequence[Example]) -> Row:
    return Row(
        input_ids=np.concatenate([e.input_ids for e in examples]),
        targets=np.concatenate([e.targets for e in examples]),
        position_ids=np.concatenate([np.arange(len(e), dtype=np.int32) for e in examples]),
        num_examples=len(examples),
    )


def one_per_row(examples: Sequence[Example]) -> list[Row]:
    """No packing: each example is its own row (padded when batched)."""
    return [_row([e]) for e in examples]


def pack(examples: Sequence[Example], max_seq_len: int) -> list[Row]:
    """Best-fit decreasing: every example goes into the row with the least room that still fits it."""
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin id), kept sorted
    for i in order:
        size = len(examples[i])
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            room, b = free.pop(slot)
        else:
            room, b = max_seq_len, len(bins)
            bins.append([])
        bins[b].append(i)
        bisect.insort(free, (room - size, b))
    return [_row([examples[i] for i in sorted(members)]) for members in bins]


def collate(rows: Sequence[Row], pad_token_id: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Right-pad ``rows`` to the longest into ``input_ids``, ``position_ids`` and ``targets`` tensors."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.arange(width, dtype=torch.long).repeat(len(rows), 1)
    for b, row in enumerate(rows):
        n = len(row)
        input_ids[b, :n] = torch.from_numpy(row.input_ids.astype(np.int64))
        targets[b, :n] = torch.from_numpy(row.targets.astype(np.int64))
        position_ids[b, :n] = torch.from_numpy(row.position_ids.astype(np.int64))
        position_ids[b, n:] = torch.arange(width - n)  # padding is a segment of its own
    return {"input_ids": input_ids.to(device), "position_ids": position_ids.to(device), "targets": targets.to(device)}

"""Which rows every worker reads at every step, as a pure function of (seed, step).

All workers compute the same plan, so nothing about data order has to be communicated or
saved: a checkpoint only records the step, and a resumed run reads exactly the rows the
uninterrupted run would have read. Rows form an endless stream of epochs, each a seeded
permutation; step ``s`` takes the next ``micro_batch_size * grad_accum_steps * world_size``
rows, dealt out so each worker gets ``grad_accum_steps`` micro-batches.

Because every worker knows every row of a step, each also knows how many target tokens the
whole step has across all workers, which makes the loss an exact per-token mean over the
global batch (see ``train.loop``), whatever the micro-batch or world size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from train.packing import Row


@dataclass(frozen=True)
class BatchPlan:
    row_targets: tuple[int, ...]  # target tokens of each row
    row_tokens: tuple[int, ...]  # real (non-padding) tokens of each row
    micro_batch_size: int
    grad_accum_steps: int
    world_size: int
    seed: int
    total_steps: int
    _perms: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        rows: list[Row],
        *,
        micro_batch_size: int,
        grad_accum_steps: int,
        world_size: int,
        seed: int,
        epochs: float,
        max_steps: int | None,
    ) -> "BatchPlan":
        per_step = micro_batch_size * grad_accum_steps * world_size
        total = max_steps or max(1, math.ceil(epochs * len(rows) / per_step))
        return cls(
            tuple(r.num_targets for r in rows),
            tuple(len(r) for r in rows),
            micro_batch_size,
            grad_accum_steps,
            world_size,
            seed,
            total,
        )

    @cached_property
    def rows_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps * self.world_size

    def _row_at(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.row_targets))
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.row_targets))
        return int(self._perms[epoch][offset])

    def step_rows(self, step: int) -> list[int]:
        """Every row of ``step`` (0-based), all workers and micro-batches."""
        start = step * self.rows_per_step
        return [self._row_at(start + i) for i in range(self.rows_per_step)]

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """The ``grad_accum_steps`` micro-batches (row indices) that worker ``rank`` runs at ``step``."""
        rows = self.step_rows(step)
        width = self.micro_batch_size
        out = []
        for micro in range(self.grad_accum_steps):
            first = (micro * self.world_size + rank) * width
            out.append(rows[first : first + width])
        return out

    def step_targets(self, step: int) -> int:
        return sum(self.row_targets[i] for i in self.step_rows(step))

    def step_tokens(self, step: int) -> int:
        return sum(self.row_tokens[i] for i in self.step_rows(step))

    def epoch_at(self, step: int) -> float:
        return step * self.rows_per_step / len(self.row_targets)


def eval_batches(num_rows: int, micro_batch_size: int, world_size: int, rank: int) -> list[tuple[list[int], bool]]:
    """Worker ``rank``'s evaluation micro-batches as (row indices, counts).

    Every worker gets the same number of batches (ZeRO-3 gathers parameters collectively in
    each forward pass, so all workers must run as many); a worker with no rows left re-runs
    row 0 and does not count it.
    """
    mine = list(range(rank, num_rows, world_size))
    per_worker = math.ceil(math.ceil(num_rows / world_size) / micro_batch_size)
    batches = []
    for b in range(per_worker):
        rows = mine[b * micro_batch_size : (b + 1) * micro_batch_size]
        batches.append((rows, True) if rows else ([0], False))
    return batches

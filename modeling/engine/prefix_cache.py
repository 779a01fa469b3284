"""Reuse the keys and values of prompt prefixes that many requests share.

RAG requests all start with the same system prompt and instructions, and every chat starts
with the template's header. A prompt is cut into blocks of ``block_tokens``; block ``i`` is
keyed by its adapter and every token up to its end (a chain, so a block is only reused
after the identical prefix). After a sequence's prompt is computed its full blocks are
stored; a new sequence copies the longest stored chain into its cache and computes only the
rest. The last prompt token is always computed, since its logits pick the first new token.

Entries are evicted least-recently-used when the cache is over its byte budget.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from modeling.engine.kv import SequenceKV

Key = tuple[str | None, tuple[int, ...]]


@dataclass
class _Block:
    keys: list[torch.Tensor]  # per layer: (block_tokens, kv_heads, head_dim)
    values: list[torch.Tensor]
    nbytes: int


class PrefixCache:
    def __init__(self, budget_bytes: int, block_tokens: int) -> None:
        self.budget = budget_bytes
        self.block = block_tokens
        self._blocks: OrderedDict[Key, _Block] = OrderedDict()
        self.bytes = 0
        self.hit_tokens = 0  # prompt tokens served from the cache (for stats)
        self.lookups = 0

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def _keys(self, adapter: str | None, prompt: list[int], limit: int, first: int = 0) -> list[tuple[int, Key]]:
        """(block index, key) of the full blocks ``first``.. that end at or before token ``limit``."""
        return [(end // self.block - 1, (adapter, tuple(prompt[:end])))
                for end in range((first + 1) * self.block, limit + 1, self.block)]

    def restore(self, adapter: str | None, prompt: list[int], kv: SequenceKV) -> int:
        """Copy the longest cached prefix of ``prompt`` into ``kv``; return how many tokens it covers."""
        if not self.enabled:
            return 0
        self.lookups += 1
        found: list[_Block] = []
        for _, key in self._keys(adapter, prompt, len(prompt) - 1):  # keep >= 1 token to compute
            block = self._blocks.get(key)
            if block is None:
                break
            self._blocks.move_to_end(key)
            found.append(block)
        for i, block in enumerate(found):
            start = i * self.block
            for layer, (k, v) in enumerate(zip(block.keys, block.values)):
                kv.write(layer, start, k, v)
        covered = len(found) * self.block
        kv.length = covered
        self.hit_tokens += covered
        return covered

    def store(self, adapter: str | None, prompt: list[int], kv: SequenceKV, since: int = 0) -> None:
        """Remember the full blocks of a (partly) computed prompt that were not cached yet.

        ``since``: how many prompt tokens were computed before this chunk; blocks that ended
        by then were offered already (a chain key costs its whole prefix to build)."""
        if not self.enabled:
            return
        for i, key in self._keys(adapter, prompt, min(len(prompt), kv.length), first=since // self.block):
            if key in self._blocks:
                self._blocks.move_to_end(key)
                continue
            start, end = i * self.block, (i + 1) * self.block
            pairs = [kv.read(layer, start, end) for layer in range(len(kv.keys))]
            keys, values = [k for k, _ in pairs], [v for _, v in pairs]
            nbytes = sum(t.numel() * t.element_size() for t in (*keys, *values))
            if nbytes > self.budget:
                return
            self._blocks[key] = _Block(keys, values, nbytes)
            self.bytes += nbytes
            while self.bytes > self.budget:
                _, evicted = self._blocks.popitem(last=False)
                self.bytes -= evicted.nbytes

    def drop_adapter(self, adapter: str) -> None:
        """Forget every block computed with ``adapter`` (its weights are being unloaded or replaced)."""
        for key in [k for k in self._blocks if k[0] == adapter]:
            self.bytes -= self._blocks.pop(key).nbytes

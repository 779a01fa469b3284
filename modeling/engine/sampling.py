"""Per-row sampling: each request keeps its own temperature, top_p and random generator.

A request's random numbers come from its own ``torch.Generator`` (seeded by its ``seed``, or
randomly), so a seeded request gives the same answer whatever else shares its batch. Greedy
rows (temperature 0) take the argmax. top_p keeps the smallest set of most likely tokens
whose probability reaches ``top_p`` (what transformers' ``TopPLogitsWarper`` keeps).
"""

from __future__ import annotations

import secrets

import torch

from modeling.generation import GenerationParams


# Below this temperature the distribution is the argmax up to float precision (and dividing by
# a denormal overflows to inf): such rows are decoded greedily.
GREEDY_BELOW = 1e-4


class RowSampler:
    def __init__(self, params: GenerationParams, device: torch.device) -> None:
        self.temperature = params.temperature
        self.top_p = params.top_p
        self.generator: torch.Generator | None = None
        if self.temperature >= GREEDY_BELOW:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))

    @property
    def greedy(self) -> bool:
        return self.generator is None

    def sample(self, logits: torch.Tensor) -> int:
        """One token from a row of logits (float32, shape ``(vocab,)``)."""
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs >= self.top_p  # mass before this token already enough
            sorted_probs[outside] = 0.0
            return int(order[torch.multinomial(sorted_probs, 1, generator=self.generator)])
        return int(torch.multinomial(probs, 1, generator=self.generator))


def next_tokens(logits: torch.Tensor, samplers: list[RowSampler]) -> list[int]:
    """The next token of every row: one argmax for the batch, sampling only for rows that ask for it."""
    chosen = logits.argmax(dim=-1).tolist()
    for row, sampler in enumerate(samplers):
        if not sampler.greedy:
            chosen[row] = sampler.sample(logits[row])
    return chosen

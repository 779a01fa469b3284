"""Per-row sampling: each request keeps its own temperature, top_p and random generator.

A request's random numbers come from its own ``torch.Generator`` (seeded by its ``seed``, or
randomly), so a seeded request gives the same answer whatever else shares its batch. Greedy
rows (temperature 0, or below ``GREEDY_BELOW``) take the argmax. top_p keeps the smallest set of
most likely tokens whose probability reaches ``top_p`` (what transformers' ``TopPLogitsWarper``
keeps).

Sampling is vectorised over the rows that sample: one softmax, one cumulative sum and one
``searchsorted`` against each row's uniform draw (inverse-CDF sampling). ``torch.multinomial``
on a 50k-token vocabulary cost ~1.4 ms per row on this CPU; this costs a fraction of that.
For top_p only the ``TOP_P_CANDIDATES`` most likely tokens are sorted, unless they hold less
than ``top_p`` of the mass (then the whole vocabulary is).
"""

from __future__ import annotations

import secrets

import torch

from modeling.generation import GenerationParams

# Below this temperature the distribution is the argmax up to float precision (and dividing by
# a denormal overflows to inf): such rows are decoded greedily.
GREEDY_BELOW = 1e-4
TOP_P_CANDIDATES = 1024


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

    def uniform(self, device: torch.device) -> torch.Tensor:
        return torch.rand(1, generator=self.generator, device=device)


def _top_p_probs(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept probabilities, their token ids) for one row, most likely first."""
    k = min(TOP_P_CANDIDATES, probs.numel())
    values, ids = probs.topk(k)
    if k < probs.numel() and float(values.sum()) < top_p:
        values, ids = probs.sort(descending=True)
    outside = values.cumsum(-1) - values >= top_p  # the mass before this token already reaches top_p
    return values.masked_fill(outside, 0.0), ids


def next_tokens(logits: torch.Tensor, samplers: list[RowSampler]) -> list[int]:
    """The next token of every row: one argmax for the batch, sampling only for rows that ask for it."""
    chosen = logits.argmax(dim=-1).tolist()
    rows = [i for i, s in enumerate(samplers) if not s.greedy]
    if not rows:
        return chosen
    device = logits.device
    temperatures = torch.tensor([samplers[i].temperature for i in rows], dtype=logits.dtype, device=device)
    probs = torch.softmax(logits[rows] / temperatures.unsqueeze(1), dim=-1)
    draws = torch.cat([samplers[i].uniform(device) for i in rows])
    plain = [j for j, i in enumerate(rows) if samplers[i].top_p >= 1.0]
    if plain:
        cdf = probs[plain].cumsum(-1)
        picks = torch.searchsorted(cdf, (draws[plain] * cdf[:, -1]).unsqueeze(1)).clamp_(max=cdf.shape[1] - 1)
        for j, pick in zip(plain, picks.view(-1).tolist()):
            chosen[rows[j]] = pick
    for j, i in enumerate(rows):
        if samplers[i].top_p < 1.0:
            kept, ids = _top_p_probs(probs[j], samplers[i].top_p)
            cdf = kept.cumsum(-1)
            pick = int(torch.searchsorted(cdf, draws[j : j + 1] * cdf[-1]).clamp_(max=kept.numel() - 1))
            chosen[i] = int(ids[pick])
    return chosen

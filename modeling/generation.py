"""Batched text generation with validated, bounded parameters.

Serving batches concurrent requests into one call here (left-padded, one forward pass per
step for the whole batch); the demo and the evaluation call it with a single prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from modeling.chat import ChatMessage, encode_chat
from modeling.errors import PromptTooLongError
from modeling.settings import StrictModel


class GenerationParams(StrictModel):
    """Sampling knobs, bounded so a request cannot ask for an unbounded amount of work."""

    max_new_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = Field((), max_length=8)
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    queue_s: float = 0.0  # seconds the request waited for a batch row (the engine's; 0 elsewhere)


def context_window(model: PreTrainedModel) -> int:
    return int(getattr(model.config, "max_position_embeddings", 4096))


def end_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token that ends an assistant turn (Phi-3 lists several in its generation config)."""
    ids: set[int] = set()
    for source in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return sorted(ids)


def check_fits(model: PreTrainedModel, prompt_tokens: int, max_new_tokens: int) -> None:
    if prompt_tokens + max_new_tokens > context_window(model):
        raise PromptTooLongError(prompt_tokens, max_new_tokens, context_window(model))


def _truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.inference_mode()
def generate_from_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    params: GenerationParams,
    streamer: BaseStreamer | None = None,
) -> list[Completion]:
    """Generate for a batch of tokenised prompts (left-padded into one tensor)."""
    for p in prompts:
        check_fits(model, len(p), params.max_new_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        if p:
            input_ids[row, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            attention[row, width - len(p) :] = 1
    device = next(model.parameters()).device
    if params.seed is not None:
        torch.manual_seed(params.seed)
    eos = end_token_ids(model, tokenizer)
    sampling = params.temperature > 0
    config = GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        do_sample=sampling,
        temperature=params.temperature if sampling else None,
        top_p=params.top_p if sampling else None,
        top_k=None,
        eos_token_id=eos,
        pad_token_id=pad,
        stop_strings=list(params.stop) or None,
    )
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        generation_config=config,
        tokenizer=tokenizer if params.stop else None,
        streamer=streamer,
    )
    completions = []
    for row, p in enumerate(prompts):
        new = out[row, width:].tolist()
        ended = False
        while new and new[-1] == pad and pad in eos:  # finished rows are padded with pad == eos
            new.pop()
            ended = True
        if new and new[-1] in eos:
            new.pop()
            ended = True
        text, stopped = _truncate_at_stop(tokenizer.decode(new, skip_special_tokens=True), params.stop)
        finish = "stop" if (ended or stopped or len(new) < params.max_new_tokens) else "length"
        completions.append(Completion(text.strip(), len(p), len(new), finish))
    return completions


def generate_chat(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chats: Sequence[Sequence[ChatMessage | dict]],
    params: GenerationParams | None = None,
) -> list[Completion]:
    """Answer a batch of chats, each formatted with the tokenizer's chat template."""
    params = params or GenerationParams()
    return generate_from_ids(model, tokenizer, [encode_chat(tokenizer, c) for c in chats], params)

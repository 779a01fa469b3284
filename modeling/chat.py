"""Chat formatting through the tokenizer's own chat template.

Never hand-build prompts: Phi-3 expects ``<|user|>...<|end|><|assistant|>``, SmolLM2 (the
offline default) ChatML, and the template that ships with each tokenizer is the format the
model was trained on. Training (loss masking) and serving both format through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict
from transformers import PreTrainedTokenizerBase

from modeling.errors import ModelLayerError

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    content: str


def _as_dicts(messages: Sequence[ChatMessage | dict]) -> list[dict[str, str]]:
    out = []
    for m in messages:
        msg = m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m)
        out.append({"role": msg.role, "content": msg.content})
    if not out:
        raise ModelLayerError("a chat needs at least one message")
    return out


def render_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[ChatMessage | dict], *, add_generation_prompt: bool = True
) -> str:
    """The prompt text for ``messages`` in the model's own chat format."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLayerError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template; use an instruct/chat model "
            "(e.g. microsoft/Phi-3-mini-4k-instruct) or set tokenizer.chat_template"
        )
    return tokenizer.apply_chat_template(
        _as_dicts(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def encode_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[ChatMessage | dict], *, add_generation_prompt: bool = True
) -> list[int]:
    """Token ids of the rendered chat (special tokens come from the template, not added twice)."""
    text = render_chat(tokenizer, messages, add_generation_prompt=add_generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]

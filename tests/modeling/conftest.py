"""Models the model-layer tests share: the real offline Phi-3 (built once) and a tiny Phi-3."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Phi3Config, Phi3ForCausalLM

from modeling import BUILTIN_MODEL_ID, ModelSettings, ensure_builtin_model, load_tokenizer


@pytest.fixture(scope="session")
def builtin_dir() -> Path:
    return ensure_builtin_model()


@pytest.fixture(scope="session")
def builtin_tokenizer(builtin_dir):
    return load_tokenizer(ModelSettings(name_or_path=BUILTIN_MODEL_ID))


@pytest.fixture(scope="session")
def tiny_phi3_dir(tmp_path_factory, builtin_dir, builtin_tokenizer) -> Path:
    """A randomly initialised 2-layer Phi-3 with the real tokenizer (fast, still the Phi-3 class).

    Sizes are multiples of 64 so bitsandbytes can quantise every projection.
    """
    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=len(builtin_tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        original_max_position_embeddings=512,
        pad_token_id=builtin_tokenizer.pad_token_id,
        eos_token_id=builtin_tokenizer.eos_token_id,
        bos_token_id=builtin_tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    model = Phi3ForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-phi3")
    model.save_pretrained(folder)
    builtin_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_settings(tiny_phi3_dir) -> ModelSettings:
    return ModelSettings(name_or_path=str(tiny_phi3_dir))


@pytest.fixture()
def batch() -> torch.Tensor:
    return torch.tensor([[1, 17, 250, 900, 3000, 42, 7, 11], [5, 600, 12, 8, 99, 1000, 2, 4]])

"""The offline default: SmolLM2's GGUF rebuilt as a real Phi-3 must be the same network."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import Phi3ForCausalLM

from modeling import BUILTIN_MODEL_ID, ModelNotFoundError, ModelSettings, load_base_model
from modeling.builtin import load_gguf_llama, resolve_model_source

pytestmark = pytest.mark.slow


def test_converted_phi3_matches_gguf_llama_exactly(builtin_dir, builtin_tokenizer):
    llama, _ = load_gguf_llama()
    phi3 = load_base_model(ModelSettings(name_or_path=BUILTIN_MODEL_ID)).eval()
    assert isinstance(phi3, Phi3ForCausalLM)
    prompt = builtin_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name the largest planet in the solar system."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = builtin_tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        diff = (llama(ids).logits - phi3(ids).logits).abs().max().item()
    assert diff == 0.0
    greedy = dict(max_new_tokens=12, do_sample=False)
    assert torch.equal(llama.generate(ids, **greedy), phi3.generate(ids, **greedy))


def test_built_folder_is_a_plain_safetensors_phi3_checkpoint(builtin_dir):
    names = {p.name for p in builtin_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "BUILD_INFO.json"} <= names
    assert not any(n.endswith(".bin") for n in names)
    config = json.loads((builtin_dir / "config.json").read_text())
    assert config["model_type"] == "phi3" and config["architectures"] == ["Phi3ForCausalLM"]
    assert config["sliding_window"] is None and config["tie_word_embeddings"] is True
    assert config["rope_parameters"]["rope_theta"] == 100000.0
    assert resolve_model_source(BUILTIN_MODEL_ID) == str(builtin_dir)


def test_unknown_builtin_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="only built-in model is 'builtin:smollm2-135m-phi3'"):
        resolve_model_source("builtin:llama-70b")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_base_model(ModelSettings(name_or_path=str(tmp_path / "nope")))

"""Fixtures of the training tests: a tiny Phi-3, a learnable toy data set, one local Ray.

The tiny Phi-3 has 2 layers and the offline model's real tokenizer. Its (tied) embeddings
are initialised 5x larger than Phi-3's default, so LoRA on the decoder layers alone can move
the logits far enough to learn the toy task in a few steps. The toy task maps a handful of
questions to fixed answers of mixed lengths, in both JSONL formats, so the loss visibly
falls and packing has rows to fill.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from transformers import Phi3Config, Phi3ForCausalLM

from modeling import BUILTIN_MODEL_ID, ModelSettings, load_tokenizer
from tests.conftest import REPO
from train import Recipe, recipe_from_dict

CODEWORDS = {"red": "ALPHA-7", "blue": "BRAVO-3", "green": "CHARLIE-9", "amber": "DELTA-4"}


def toy_lines() -> list[dict]:
    """24 examples: short chats, long chats with a system prompt, and instruction records."""
    lines = []
    for team, word in CODEWORDS.items():
        lines.append({"messages": [{"role": "user", "content": f"Codeword for team {team}?"},
                                   {"role": "assistant", "content": word}]})
        lines.append({"messages": [
            {"role": "system", "content": "You are the radio operator. Answer with the codeword and its team."},
            {"role": "user", "content": f"Team {team} is calling in and asks which codeword they must use today."},
            {"role": "assistant", "content": f"Team {team} uses the codeword {word} today. Repeat: {word}."}]})
        lines.append({"instruction": f"Give the codeword of team {team}.", "output": word})
        lines.append({"instruction": "Answer from the roster.", "input": f"Roster lookup: team {team}.",
                      "output": f"The roster lists {word} for team {team}."})
        lines.append({"messages": [{"role": "user", "content": f"Which team is {word}?"},
                                   {"role": "assistant", "content": f"{word} belongs to team {team}."},
                                   {"role": "user", "content": "Sure?"},
                                   {"role": "assistant", "content": f"Yes, {word} is team {team}."}]})
        lines.append({"messages": [{"role": "user", "content": f"{team} codeword"},
                                   {"role": "assistant", "content": f"{word}"}]})
    return lines


@pytest.fixture(scope="session")
def builtin_tokenizer():
    return load_tokenizer(ModelSettings(name_or_path=BUILTIN_MODEL_ID))


@pytest.fixture(scope="session")
def tiny_phi3_dir(tmp_path_factory, builtin_tokenizer) -> Path:
    """A random 2-layer Phi-3 (sizes multiples of 64, so bitsandbytes can quantise it)."""
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
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0, 0.1)
    folder = tmp_path_factory.mktemp("tiny-phi3")
    model.save_pretrained(folder)
    builtin_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("toy-data") / "codewords.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in toy_lines()))
    return path


def _tiny_recipe(model_dir: Path, data_file: Path, out_dir: Path, /, **sections) -> Recipe:
    tree = {
        "model": {"name_or_path": str(model_dir)},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.1},
        "data": {"train_files": [str(data_file)], "max_seq_len": 128, "val_fraction": 0.2},
        "scaling": {"num_workers": 2, "resources_per_worker": {"CPU": 1}},
        "training": {"max_steps": 8, "micro_batch_size": 1, "grad_accum_steps": 2, "eval_every": 4},
        "optim": {"lr": 1.0e-2},
        "schedule": {"kind": "cosine", "warmup_steps": 1},
        "checkpointing": {"every_steps": 4, "max_failures": 1},
        "output": {"registry": str(out_dir / "adapters"), "run_dir": str(out_dir / "runs"), "adapter_name": "toy"},
    }
    for name, values in sections.items():
        tree[name] = {**tree.get(name, {}), **values} if isinstance(values, dict) else values
    return recipe_from_dict(tree)


@pytest.fixture(scope="session")
def make_tiny_recipe(tiny_phi3_dir, toy_data) -> Callable[..., Recipe]:
    """``make_tiny_recipe(out_dir, **sections)``: the tiny model on the toy data, writing under ``out_dir``.

    Keyword sections override the defaults (dicts are merged into the section).
    """
    return lambda out_dir, /, **sections: _tiny_recipe(tiny_phi3_dir, toy_data, out_dir, **sections)


@pytest.fixture()
def tiny_recipe(make_tiny_recipe, tmp_path) -> Callable[..., Recipe]:
    """``make_tiny_recipe`` writing under this test's tmp_path."""
    return lambda **sections: make_tiny_recipe(tmp_path, **sections)


@pytest.fixture(scope="package")
def local_ray() -> Iterator[None]:
    """One local Ray for the package's training runs (``train.run`` reuses it, and leaves it up)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local",
            num_cpus=2,
            _temp_dir=str(REPO / ".cache" / "ray"),
            include_dashboard=False,
            logging_level="WARNING",
        )
    yield
    if started:
        ray.shutdown()

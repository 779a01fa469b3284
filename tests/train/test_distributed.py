"""Real Ray Train runs (2 CPU workers) of LoRA and QLoRA under DDP, ZeRO-2 and ZeRO-3.

Matrix: LoRA under DDP, ZeRO-2 (the shipped cpu-demo recipe on the offline Phi-3) and ZeRO-3;
QLoRA (NF4) under DDP and ZeRO-2 (QLoRA + ZeRO-3 is refused by the recipe, see
test_recipes). Each run trains on the toy codeword task and must lower the train and eval
loss, publish a safetensors adapter with metadata and a loss curve into the registry, and
that adapter must load through the model layer and change the model's outputs. Failures
are real: a worker process exits mid-run (Ray replaces the group under FailureConfig), or
a run stops for good and is continued with ``--resume``; both must end with exactly the
adapter of the uninterrupted run (dropout on, so replayed randomness is checked too).
"""

from __future__ import annotations

import json
import time

import pytest
import torch
import yaml
from bitsandbytes.nn import Linear4bit
from safetensors.torch import load_file

from modeling import (
    AdapterHost,
    AdapterRegistry,
    GenerationParams,
    ModelSettings,
    encode_chat,
    generate_chat,
    load_base_model,
    load_tokenizer,
)
from modeling.builtin import BUILTIN_MODEL_ID
from modeling.settings import PHI3_LORA_TARGETS
from train import TrainResult, run
from train.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]
QUESTION = [{"role": "user", "content": "Codeword for team red?"}]


def worker_output(capfd, expected: str, timeout_s: float = 30.0) -> str:
    """Captured stdout until ``expected`` shows up: Ray forwards worker lines to the driver asynchronously."""
    out = ""
    deadline = time.monotonic() + timeout_s
    while expected not in out and time.monotonic() < deadline:
        time.sleep(0.5)
        out += capfd.readouterr().out
    return out


def adapter_tensors(result: TrainResult) -> dict[str, torch.Tensor]:
    return load_file(f"{result.adapter_path}/adapter_model.safetensors")


def assert_learned_and_published(result: TrainResult, method: str, strategy: str) -> None:
    m = result.metrics
    assert m["steps"] == 8 and m["attempts"] == 1
    assert m["train_loss_last"] < 0.8 * m["train_loss_first"], m
    assert m["eval_loss_end"] < m["eval_loss_start"] - 0.5, m
    assert m["train_tokens_per_s"] > 0 and m["peak_memory_mb_per_worker"] > 0
    meta = json.loads(open(f"{result.adapter_path}/metadata.json").read())
    assert meta["method"] == method and meta["strategy"] == strategy
    assert "tiny-phi3" in meta["base_model"]
    assert meta["data"]["fingerprint"].startswith("sha256:") and meta["recipe"]["output"]["adapter_name"] == "toy"
    assert meta["metrics"]["eval_loss_end"] == m["eval_loss_end"] and meta["trained_at"]
    with open(f"{result.adapter_path}/loss_curve.png", "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    tensors = adapter_tensors(result)
    assert all(any(f".{t}.lora_A" in k for k in tensors) for t in PHI3_LORA_TARGETS)


def answers_with_and_without(result: TrainResult, settings: ModelSettings) -> tuple[str, str]:
    """Greedy answers to the toy question from the base model and with the adapter loaded."""
    host = AdapterHost(load_base_model(settings), AdapterRegistry(result.registry))
    tokenizer = load_tokenizer(settings)
    params = GenerationParams(max_new_tokens=12)
    with host.using(None) as model:
        (plain,) = generate_chat(model, tokenizer, [QUESTION], params)
    with host.using(result.adapter_name) as model:
        (tuned,) = generate_chat(model, tokenizer, [QUESTION], params)
    return plain.text, tuned.text


def assert_adapter_changes_outputs(result: TrainResult, settings: ModelSettings) -> None:
    """The tiny random model's answers are noise, so compare what it predicts for the toy question."""
    host = AdapterHost(load_base_model(settings), AdapterRegistry(result.registry))
    ids = torch.tensor([encode_chat(load_tokenizer(settings), QUESTION)])
    with torch.no_grad(), host.using(None) as model:
        plain = model(ids).logits[0, -1]
    with torch.no_grad(), host.using(result.adapter_name) as model:
        tuned = model(ids).logits[0, -1]
    assert (tuned - plain).abs().max() > 0.1


@pytest.fixture(scope="module")
def reference_runs() -> dict:
    """Uninterrupted runs, by strategy, that the recovery tests must reproduce exactly."""
    return {}


def test_qlora_ddp_learns_and_the_adapter_changes_answers(tiny_recipe, reference_runs):
    recipe = tiny_recipe(model={"quantization": "nf4"})
    result = run(recipe)
    assert_learned_and_published(result, "qlora", "ddp")
    reference_runs["qlora-ddp"] = adapter_tensors(result)
    assert_adapter_changes_outputs(result, recipe.model)  # loads onto the same NF4 base via the model layer


@pytest.mark.parametrize(
    ("model", "deepspeed", "method", "strategy"),
    [
        ({}, None, "lora", "ddp"),
        ({}, {"zero_stage": 3}, "lora", "deepspeed-zero3"),
        ({"quantization": "nf4"}, {"zero_stage": 2}, "qlora", "deepspeed-zero2"),
    ],
    ids=["lora-ddp", "lora-zero3", "qlora-zero2"],
)
def test_strategies_learn(tiny_recipe, reference_runs, model, deepspeed, method, strategy):
    extra = {"strategy": "deepspeed", "deepspeed": deepspeed} if deepspeed else {}
    recipe = tiny_recipe(model=model, **extra)
    result = run(recipe)
    assert_learned_and_published(result, method, strategy)
    reference_runs[f"{method}-{strategy.removeprefix('deepspeed-')}"] = adapter_tensors(result)
    if method == "qlora":
        base = load_base_model(recipe.model)
        assert any(isinstance(m, Linear4bit) for m in base.modules())
    assert_adapter_changes_outputs(result, recipe.model)


def test_worker_death_is_recovered_and_ends_with_the_same_adapter(tiny_recipe, reference_runs):
    """Under ZeRO-3 a worker process exits during step 6; Ray replaces the group, which resumes from step 4."""
    if "lora-zero3" not in reference_runs:
        pytest.skip("needs the uninterrupted ZeRO-3 run of test_strategies_learn")
    expected = reference_runs["lora-zero3"]
    faulty = tiny_recipe(
        strategy="deepspeed", deepspeed={"zero_stage": 3}, fault_injection={"at_step": 6, "rank": 1, "how": "exit"}
    )
    result = run(faulty)
    assert result.metrics["attempts"] == 2
    got = adapter_tensors(result)
    assert got.keys() == expected.keys()
    for name in expected:  # dropout is on: the replayed steps draw the same masks
        assert torch.equal(got[name], expected[name]), name


def test_stopped_run_continues_with_resume(tiny_recipe, reference_runs, tmp_path, capfd):
    """A run that fails for good (no retries left) is continued by ``python -m train --resume``."""
    if "qlora-ddp" not in reference_runs:
        pytest.skip("needs the uninterrupted run of the first test")
    expected = reference_runs["qlora-ddp"]
    stopping = tiny_recipe(
        model={"quantization": "nf4"},
        fault_injection={"at_step": 7, "rank": 0, "how": "exception"},
        checkpointing={"max_failures": 0},
    )
    config = tmp_path / "stopping.yaml"
    config.write_text(yaml.safe_dump(stopping.model_dump(mode="json")))
    assert main(["--config", str(config)]) == 1  # worker 0 raises in step 7: the run stops
    assert "continue with --resume" in capfd.readouterr().err
    assert stopping.output.adapter_name not in AdapterRegistry(stopping.output.registry).names()
    assert main(["--config", str(config), "--resume"]) == 0
    assert "resumed from the checkpoint at step 4" in worker_output(capfd, "resumed from the checkpoint")
    folder = AdapterRegistry(stopping.output.registry).path(stopping.output.adapter_name)
    got = load_file(folder / "adapter_model.safetensors")
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert json.loads((folder / "metadata.json").read_text())["metrics"]["attempts"] == 2


def test_cpu_demo_recipe_on_the_offline_phi3(tmp_path, toy_data, capfd):
    """The shipped cpu-demo recipe on its real model (offline Phi-3, LoRA, ZeRO-2), shortened to 3 steps."""
    registry = tmp_path / "adapters"
    assert main([
        "--config", "train/recipes/cpu-demo.yaml",
        "--set", f"data.train_files=[{toy_data}]", "--set", "data.max_seq_len=128",
        "--set", "training.max_steps=3", "--set", "optim.lr=5e-3",
        "--set", f"output.registry={registry}", "--set", f"output.run_dir={tmp_path / 'runs'}",
    ]) == 0
    out = worker_output(capfd, "[train] step 3/3")
    assert "[train] step 3/3" in out and "tok/s" in out and "ETA" in out and "| eval " in out
    meta = json.loads((registry / "cpu-demo" / "metadata.json").read_text())
    assert meta["base_model"] == BUILTIN_MODEL_ID and meta["method"] == "lora"
    assert meta["strategy"] == "deepspeed-zero2"
    assert meta["metrics"]["eval_loss_end"] < meta["metrics"]["eval_loss_start"]
    result = TrainResult("cpu-demo", str(registry / "cpu-demo"), str(registry), meta["metrics"], "", "")
    plain, tuned = answers_with_and_without(result, ModelSettings())
    assert plain != tuned, plain

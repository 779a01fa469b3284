"""Real Ray Train runs (2 CPU workers) of LoRA and QLoRA under DDP, ZeRO-2 and ZeRO-3.

Matrix: LoRA under DDP, ZeRO-2 with optimizer offload to DeepSpeedCPUAdam plus gradient
checkpointing, and ZeRO-3 (sharded loading); QLoRA (NF4) under DDP, ZeRO-2 and ZeRO-3 (4-bit
weights stored as fp32 and sharded). Plain LoRA ZeRO-2 is the shipped cpu-demo recipe, which
tests/pipeline/test_pipeline.py trains on the offline Phi-3 through the same `train.run`. Each run trains on the toy codeword task and must lower the train and eval loss,
publish a safetensors adapter with metadata and a loss curve into the registry, and that
adapter must load through the model layer and change the model's outputs. Runs that do the
same math differently (QLoRA ZeRO-3 vs ZeRO-2; offload + checkpointing vs plain) must follow
the same loss curve. Failures are real: a worker process exits mid-run (Ray replaces the
group under FailureConfig; ZeRO-3 and ZeRO-2 + offload), or a run stops for good and is
continued with ``--resume`` (DDP); each must end with exactly the adapter of the
uninterrupted run (dropout on, so replayed randomness is checked too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import torch
import yaml
from bitsandbytes.nn import Linear4bit
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from modeling import (
    AdapterHost,
    AdapterRegistry,
    ModelSettings,
    encode_chat,
    load_base_model,
    load_tokenizer,
)
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


def assert_adapter_changes_outputs(result: TrainResult, settings: ModelSettings) -> None:
    """The tiny random model's answers are noise, so compare what it predicts for the toy question."""
    host = AdapterHost(load_base_model(settings), AdapterRegistry(result.registry))
    ids = torch.tensor([encode_chat(load_tokenizer(settings), QUESTION)])
    with torch.no_grad(), host.using(None) as model:
        plain = model(ids).logits[0, -1]
    with torch.no_grad(), host.using(result.adapter_name) as model:
        tuned = model(ids).logits[0, -1]
    assert (tuned - plain).abs().max() > 0.1


# Every run the tests train, by name: (recipe sections, expected method, expected strategy).
RUNS: dict[str, tuple[dict, str, str]] = {
    "qlora-ddp": ({"model": {"quantization": "nf4"}}, "qlora", "ddp"),
    "lora-ddp": ({}, "lora", "ddp"),
    "lora-zero3": ({"strategy": "deepspeed", "deepspeed": {"zero_stage": 3}}, "lora", "deepspeed-zero3"),
    "qlora-zero2": ({"model": {"quantization": "nf4"}, "strategy": "deepspeed", "deepspeed": {"zero_stage": 2}},
                    "qlora", "deepspeed-zero2"),
    "qlora-zero3": ({"model": {"quantization": "nf4"}, "strategy": "deepspeed", "deepspeed": {"zero_stage": 3}},
                    "qlora", "deepspeed-zero3"),
    # The multinode recipe's combination: ZeRO-2, optimizer state offloaded (DeepSpeedCPUAdam), checkpointing.
    "lora-zero2-offload-ckpt": ({"strategy": "deepspeed", "deepspeed": {"zero_stage": 2, "offload_optimizer": True},
                                 "training": {"gradient_checkpointing": True}}, "lora", "deepspeed-zero2"),
}
# Same math, different sharding or kernels: every step's loss agrees to this relative tolerance
# (measured differences are below 1e-5: summation order of the reductions, CPU Adam's SIMD).
LOSS_CURVE_RTOL = 1e-3


@pytest.fixture(scope="module")
def trained(make_tiny_recipe, tmp_path_factory) -> Callable[[str], TrainResult]:
    """``trained(name)``: the uninterrupted run ``RUNS[name]``, trained on first use and then reused.

    Any test may ask for any run, in any order (``-k``, random order, xdist): a test that
    needs a reference run trains it itself when no earlier test did.
    """
    results: dict[str, TrainResult] = {}

    def get(name: str) -> TrainResult:
        if name not in results:
            sections, _, _ = RUNS[name]
            results[name] = run(make_tiny_recipe(tmp_path_factory.mktemp(name), **sections))
        return results[name]

    return get


def assert_same_loss_curve(got: TrainResult, expected: TrainResult) -> None:
    a, b = [h["loss"] for h in got.history], [h["loss"] for h in expected.history]
    assert len(a) == len(b) == 8
    assert a == pytest.approx(b, rel=LOSS_CURVE_RTOL), (a, b)
    evals_a, evals_b = [e["eval_loss"] for e in got.evals], [e["eval_loss"] for e in expected.evals]
    assert len(evals_a) == 3 and evals_a == pytest.approx(evals_b, rel=LOSS_CURVE_RTOL), (evals_a, evals_b)


def model_settings(result: TrainResult) -> ModelSettings:
    return ModelSettings(**json.loads(open(f"{result.adapter_path}/metadata.json").read())["recipe"]["model"])


@pytest.mark.parametrize("name", ["qlora-ddp", "lora-ddp", "lora-zero3", "qlora-zero2", "qlora-zero3"])
def test_strategies_learn(trained, name):
    _, method, strategy = RUNS[name]
    result = trained(name)
    assert_learned_and_published(result, method, strategy)
    settings = model_settings(result)
    if method == "qlora":
        base = load_base_model(settings)
        assert any(isinstance(m, Linear4bit) for m in base.modules())
    assert_adapter_changes_outputs(result, settings)  # QLoRA: onto the same NF4 base via the model layer


def test_qlora_under_zero3_matches_zero2(trained):
    """QLoRA's 4-bit base sharded by ZeRO-3 (packed into fp32 storage) trains like the whole base under ZeRO-2."""
    assert_same_loss_curve(trained("qlora-zero3"), trained("qlora-zero2"))


def test_offload_and_gradient_checkpointing_train_the_same_model(trained):
    """ZeRO-2 with DeepSpeedCPUAdam and gradient checkpointing follows plain ZeRO-3's loss curve."""
    result = trained("lora-zero2-offload-ckpt")
    assert_learned_and_published(result, "lora", "deepspeed-zero2")
    assert result.metrics["optimizer"] == "DeepSpeedCPUAdam"
    assert result.metrics["gradient_checkpointing"] is True
    plain = trained("lora-zero3")
    assert plain.metrics["optimizer"] == "AdamW" and plain.metrics["gradient_checkpointing"] is False
    assert_same_loss_curve(result, plain)


def assert_same_adapter(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name in expected:  # dropout is on: the replayed steps draw the same masks
        assert torch.equal(got[name], expected[name]), name


@pytest.mark.parametrize("name", ["lora-zero3", "lora-zero2-offload-ckpt"])
def test_worker_death_is_recovered_and_ends_with_the_same_adapter(trained, tiny_recipe, name):
    """A worker process exits during step 6; Ray replaces the group, which resumes from the step-4 checkpoint."""
    sections, _, _ = RUNS[name]
    faulty = tiny_recipe(**sections, fault_injection={"at_step": 6, "rank": 1, "how": "exit"})
    result = run(faulty)
    assert result.metrics["attempts"] == 2
    assert_same_adapter(adapter_tensors(result), adapter_tensors(trained(name)))


def test_stopped_run_continues_with_resume(trained, tiny_recipe, tmp_path, capfd):
    """A run that fails for good (no retries left) is continued by ``python -m train --resume``."""
    sections, _, _ = RUNS["qlora-ddp"]
    stopping = tiny_recipe(
        **sections,
        fault_injection={"at_step": 7, "rank": 0, "how": "exception"},
        checkpointing={"max_failures": 0},
        tracking={"mlflow_uri": f"file:{tmp_path / 'mlruns'}"},
    )
    config = tmp_path / "stopping.yaml"
    config.write_text(yaml.safe_dump(stopping.model_dump(mode="json")))
    assert main(["--config", str(config)]) == 1  # worker 0 raises in step 7: the run stops
    assert "continue with --resume" in capfd.readouterr().err
    assert stopping.output.adapter_name not in AdapterRegistry(stopping.output.registry).names()
    assert main(["--config", str(config), "--resume"]) == 0
    assert "resumed from the checkpoint at step 4" in worker_output(capfd, "resumed from the checkpoint")
    folder = AdapterRegistry(stopping.output.registry).path(stopping.output.adapter_name)
    assert_same_adapter(load_file(folder / "adapter_model.safetensors"), adapter_tensors(trained("qlora-ddp")))
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["metrics"]["attempts"] == 2
    # Both sessions logged into one MLflow run (a local file store), finished, with the adapter attached.
    client = MlflowClient(tracking_uri=stopping.tracking.mlflow_uri)
    record = client.get_run(meta["tracking"]["mlflow_run_id"])
    assert record.info.status == "FINISHED" and record.data.params["training.max_steps"] == "8"
    losses = {m.step: m.value for m in client.get_metric_history(record.info.run_id, "train_loss")}
    assert sorted(losses) == list(range(1, 9))  # steps 5-6 were logged again after the resume; the last value wins
    expected = [h["loss"] for h in trained("qlora-ddp").history]
    assert [losses[s] for s in range(1, 9)] == pytest.approx(expected, rel=1e-6)
    assert {a.path for a in client.list_artifacts(record.info.run_id, "adapter")} == {
        "adapter/metadata.json", "adapter/loss_curve.png"}
    experiments = [e.name for e in client.search_experiments()]
    assert "toy" in experiments  # named after the adapter


def test_runs_write_tensorboard_event_files(trained):
    """Every run logs per-step scalars to TensorBoard event files in its run folder (on by default)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = trained("lora-ddp")
    meta = json.loads(open(f"{result.adapter_path}/metadata.json").read())
    folder = meta["tracking"]["tensorboard"]
    assert folder.startswith(result.run_path) and meta["tracking"]["mlflow_run_id"] is None
    events = EventAccumulator(folder)
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert loss == [(h["step"], pytest.approx(h["loss"], rel=1e-6)) for h in result.history]
    assert [e.step for e in events.Scalars("eval/loss")] == [0, 4, 8]
    assert {"train/lr", "train/grad_norm", "train/tokens_per_s"} <= set(events.Tags()["scalars"])

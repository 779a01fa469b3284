"""The main job end to end, reduced (few questions, few steps), through the same code as `make demo`.

Real everything: Milvus Lite, the embedder, Ray Train with DeepSpeed on the offline Phi-3,
the Ray Serve app over HTTP, and the evaluation report.
"""

from __future__ import annotations

import json

import pytest

from modeling import AdapterRegistry
from modeling.builtin import BUILTIN_MODEL_ID
from pipeline import load_settings
from retrieval import Retriever
from tests.conftest import REPO

pytestmark = pytest.mark.slow
COMPANY = REPO / "examples" / "quillfen-windworks"
# Few steps: enough for the adapters to change answers; the learning itself is tests/train's business.
TRAIN_STEPS = ["training.max_steps=4", "training.eval_every=0", "checkpointing.every_steps=4", "data.val_fraction=0"]
HYBRID_STEPS = ["training.max_steps=2", "training.eval_every=0", "checkpointing.every_steps=2", "data.val_fraction=0"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    train_qa = work / "train-small.jsonl"
    lines = (COMPANY / "qa" / "train.jsonl").read_text().splitlines()
    train_qa.write_text("\n".join(lines[:16]) + "\n")
    runs = f"output.run_dir={work / 'runs'}"  # checkpoints in the test's folder, not the checkout's runs/
    steps = json.dumps(TRAIN_STEPS + ["checkpointing.max_failures=0", runs])
    return load_settings(overrides=[
        f"work_dir={work}", f"registry={work / 'adapters'}", f"qa_train={train_qa}", "collection=ci_pipeline",
        f"finetuned.overrides={steps}", "raft.pool_size=6",
        # The hybrid's 1024-token RAFT rows make its steps the slow ones: 2 are enough to train and publish it.
        f"hybrid.overrides={json.dumps(HYBRID_STEPS + ['checkpointing.max_failures=0', 'data.max_seq_len=1024', runs])}",
        "demo_questions=0", "demo_max_tokens=16", "eval.limit=3", "eval.max_tokens=16", "eval.resamples=100",
        "port=0",
    ])


@pytest.fixture(scope="module")
def result(settings):
    from pipeline.run import run_pipeline

    return run_pipeline(settings)


def test_collection_holds_every_sample_document(settings, result):
    shipped = {str(p.relative_to(COMPANY)) for folder in ("docs", "structured") for p in (COMPANY / folder).rglob("*")
               if p.is_file()}
    assert result.ingest_counts == {"added": len(shipped)}
    with Retriever(collection=settings.collection, uri=settings.uri) as kb:
        stats = kb.stats()
        hits = kb.search("Storm Lock Brake pad wear limit", top_k=20)
    assert stats.documents == len(shipped) and stats.incomplete_documents == 0
    assert {h.source for h in hits} <= shipped


def test_both_adapters_are_registered_with_their_data(settings, result):
    registry = AdapterRegistry(settings.registry)
    assert set(registry.names()) == {settings.finetuned.name, settings.hybrid.name}
    ft_meta, raft_meta = registry.metadata(settings.finetuned.name), registry.metadata(settings.hybrid.name)
    # The shipped cpu-demo recipe on its real model: LoRA under DeepSpeed ZeRO-2 on the offline Phi-3.
    for meta in (ft_meta, raft_meta):
        assert (meta["base_model"], meta["method"], meta["strategy"]) == (BUILTIN_MODEL_ID, "lora", "deepspeed-zero2")
    assert ft_meta["metrics"]["train_loss_last"] < ft_meta["metrics"]["train_loss_first"]
    assert raft_meta["data"]["files"] == [str(settings.work / "train-raft.jsonl")]
    assert raft_meta["metrics"]["steps"] == 2
    assert result.adapters == {settings.finetuned.name: False, settings.hybrid.name: False}


def test_report_compares_all_four_routes_and_adapters_change_answers(settings, result):
    metrics = json.loads((settings.work / "eval" / "metrics.json").read_text())
    assert set(metrics["routes"]) == {"base", "rag", "finetuned", "hybrid"}
    assert {name: r["errors"] for name, r in metrics["routes"].items()} == dict.fromkeys(metrics["routes"], 0)
    assert result.report.is_file() and (settings.work / "eval" / "routes.png").stat().st_size > 1000
    report = result.report.read_text()
    for route in ("base", "rag", "finetuned", "hybrid"):
        assert route in report
    records = [json.loads(line) for line in (settings.work / "eval" / "answers.jsonl").read_text().splitlines()]
    answers = {}
    for record in records:
        answers.setdefault(record["route"], []).append(record["answer"])
    assert answers["finetuned"] != answers["base"], "the trained adapter did not change any answer"
    for record in records:
        if record["route"] in ("rag", "hybrid"):
            assert record["sources"], f"{record['route']} answered without sources"


def test_second_run_reuses_data_and_adapters(settings, result):
    from pipeline.adapters import train_or_reuse
    from pipeline.datasets import build_training_files
    from pipeline.knowledge import ingest_documents

    assert ingest_documents(settings).counts == {"unchanged": result.ingest_counts["added"]}
    files = build_training_files(settings)
    assert files.reused
    outcome = train_or_reuse(settings, settings.hybrid, files.raft, retrain=False)
    assert outcome.reused and outcome.seconds == 0.0


def test_unchanged_evaluation_is_rescored_not_asked_again(settings, result):
    from pipeline.evaluate import evaluate_routes
    from evaluation.client import EvalError

    nobody = "http://127.0.0.1:9"  # nothing listens here: answering would fail
    before = json.loads((settings.work / "eval" / "metrics.json").read_text())
    evaluation, _ = evaluate_routes(nobody, settings)
    after = json.loads((settings.work / "eval" / "metrics.json").read_text())
    assert after["routes"] == before["routes"] and evaluation.recommendation.route == result.recommendation
    changed = settings.model_copy(update={"eval": settings.eval.model_copy(update={"max_tokens": 17})})
    with pytest.raises(EvalError, match="cannot reach http://127.0.0.1:9"):  # other settings: the questions are asked again
        evaluate_routes(nobody, changed)
    with pytest.raises(EvalError, match="cannot reach http://127.0.0.1:9"):
        evaluate_routes(nobody, settings, reevaluate=True)

"""The shipped configs of the third-party datasets (pipeline/configs/tatqa.yaml, covidqa.yaml), reduced.

They read ``../shared/datasets/...`` in place (CI has the same folder next to the clone). TAT-QA
ingests a few of its contexts (tables + text) and builds RAFT data from a handful of questions;
COVID-QA runs the documents-only path (``qa_train: null``): training questions
built from the articles, RAFT data from them, and the hybrid adapter trained on it.
"""

from __future__ import annotations

import json

import pytest

from modeling import AdapterRegistry
from pipeline import load_settings
from pipeline.settings import REPO_ROOT
from qa import load_qa, normalize_text

pytestmark = pytest.mark.slow
CONFIGS = REPO_ROOT / "pipeline" / "configs"
STEPS = ["training.max_steps=2", "training.eval_every=0", "checkpointing.every_steps=2", "data.val_fraction=0",
         "checkpointing.max_failures=0"]


def reduced(config: str, work, documents: list[str], extra: list[str]):
    steps = STEPS + [f"output.run_dir={work / 'runs'}"]  # checkpoints in the test's folder, not the checkout's runs/
    return load_settings(CONFIGS / config, [
        f"work_dir={work}", f"registry={work / 'adapters'}", f"collection=ci_{config.split('.')[0]}",
        f"documents={json.dumps(documents)}", f"finetuned.overrides={json.dumps(steps)}",
        f"hybrid.overrides={json.dumps(steps + ['data.max_seq_len=1024'])}",
        "raft.pool_size=4", "demo_questions=0", "eval.max_tokens=24", "eval.resamples=100",
        "port=0", *extra,
    ])


def test_configs_read_the_shared_datasets_in_place():
    for name, folder in (("tatqa.yaml", "tatqa"), ("covidqa.yaml", "covidqa")):
        settings = load_settings(CONFIGS / name)
        assert settings.company_path("qa/test.jsonl") == REPO_ROOT.parent / "shared" / "datasets" / folder / "qa" / "test.jsonl"
        assert settings.raft_questions is None and settings.raft.quote and settings.eval.limit is None
        assert not str(settings.company_dir).startswith(str(REPO_ROOT))  # used in place, not copied in


def test_tatqa_config_ingests_tables_and_text_and_builds_quoting_raft_data(tmp_path):
    """The TAT-QA config's data path on three of its contexts: tables (CSV) and text ingested
    side by side, RAFT examples that quote the gold passage. The serving and evaluation half of
    the pipeline is the same code for every config and runs in tests/pipeline/test_pipeline.py;
    the full TAT-QA comparison is benchmarks/eval/RESULTS.md."""
    from pipeline.datasets import build_training_files
    from pipeline.knowledge import ingest_documents

    base = load_settings(CONFIGS / "tatqa.yaml")
    test_items = load_qa(base.company_path(base.qa_test))
    table = next(i for i in test_items if i.source.endswith(".csv"))
    context = lambda source: source.rsplit("/", 1)[1].rsplit(".", 1)[0]  # noqa: E731 - docs/<id>.md, structured/<id>.csv
    text = next(i for i in test_items if i.source.endswith(".md") and context(i.source) != context(table.source))
    train_all = load_qa(base.company_path(base.qa_train))
    train_items = [i for i in train_all if context(i.source) == context(train_all[0].source)][:6]
    contexts = sorted({context(table.source), context(text.source), context(train_items[0].source)})
    documents = [f"{folder}/{ctx}.{ext}" for ctx in contexts for folder, ext in (("docs", "md"), ("structured", "csv"))]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(i.model_dump_json(exclude_none=True) + "\n" for i in train_items))
    settings = reduced("tatqa.yaml", tmp_path, documents, [f"qa_train={train}"])
    assert ingest_documents(settings).counts == {"added": 2 * len(contexts)}
    files = build_training_files(settings)
    raft = [json.loads(line) for line in files.raft.read_text().splitlines()]
    assert len(raft) == len(train_items)
    assert any("##begin_quote##" in row["messages"][-1]["content"] for row in raft)


def test_covidqa_documents_only_builds_questions_and_trains_the_raft_adapter(tmp_path):
    from pipeline.adapters import train_or_reuse
    from pipeline.app import start_ray
    from pipeline.datasets import build_training_files
    from pipeline.knowledge import ingest_documents

    base = load_settings(CONFIGS / "covidqa.yaml")
    held_out = load_qa(base.company_path(base.qa_test))
    documents = sorted({i.source for i in held_out})[:2]
    settings = reduced("covidqa.yaml", tmp_path, documents, ["qa_train=null", "synthetic.max_questions=10"])
    assert ingest_documents(settings).counts == {"added": 2}
    files = build_training_files(settings)
    synthetic = load_qa(settings.work / "synthetic-qa.jsonl")
    assert 5 <= len(synthetic) <= 10 and {i.source for i in synthetic} <= set(documents)
    asked = {normalize_text(i.question) for i in held_out}
    answers = {(i.source, normalize_text(i.gold_fact)) for i in held_out}
    assert not any(normalize_text(i.question) in asked or (i.source, normalize_text(i.answer)) in answers for i in synthetic)
    raft = [json.loads(line) for line in files.raft.read_text().splitlines()]
    assert len(raft) == len(synthetic)
    start_ray()
    try:
        outcome = train_or_reuse(settings, settings.hybrid, files.raft, retrain=False)
    finally:
        import ray

        ray.shutdown()
    meta = AdapterRegistry(settings.registry).metadata(settings.hybrid.name)
    assert not outcome.reused and meta["metrics"]["steps"] == 2
    assert meta["data"]["files"] == [str(files.raft)]

"""Which adapters the pipeline trains: those the evaluated routes serve (fast, no Ray)."""

from __future__ import annotations

from pathlib import Path

from pipeline import load_settings
from pipeline.datasets import TrainingFiles
from pipeline.run import adapters_to_train

FILES = TrainingFiles(raft=Path("train-raft.jsonl"), instruct=Path("train-instruct.jsonl"), reused=False)


def test_all_four_routes_train_both_adapters():
    settings = load_settings()
    assert [(plan.name, data) for plan, data in adapters_to_train(settings, FILES)] == [
        (settings.finetuned.name, FILES.instruct), (settings.hybrid.name, FILES.raft)]


def test_evaluating_rag_and_hybrid_trains_only_the_raft_adapter():
    settings = load_settings(overrides=["eval.routes=[rag, hybrid]"])
    assert [(plan.name, data) for plan, data in adapters_to_train(settings, FILES)] == [
        (settings.hybrid.name, FILES.raft)]


def test_evaluating_base_and_rag_trains_nothing():
    assert adapters_to_train(load_settings(overrides=["eval.routes=[base, rag]"]), FILES) == []

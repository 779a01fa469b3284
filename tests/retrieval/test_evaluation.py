"""``python -m retrieval eval`` on a company folder (documents + qa/*.jsonl naming gold sources)."""

from __future__ import annotations

import json

import pytest

from retrieval.cli import main
from retrieval.evaluation import answer_at, load_dataset, ndcg_at, recall_at

QA = [
    {"id": "t1", "question": "What torque do the HX-220 flange bolts need?", "answer": "45 Nm",
     "source": "docs/hx220.md", "fact": "45 Nm"},
    {"id": "t2", "question": "Which floor is visitor parking on?", "answer": "level two",
     "source": "docs/parking.md", "fact": "level two"},
    {"id": "t3", "question": "What does the descaler DS-4 cost?", "answer": "61.00 EUR",
     "source": "structured/parts.csv", "fact": "61.00"},
]


@pytest.fixture
def company(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "structured").mkdir()
    (tmp_path / "qa").mkdir()
    (tmp_path / "docs" / "hx220.md").write_text("# HX-220 manual\n\nTighten the HX-220 flange bolts to 45 Nm.\n")
    (tmp_path / "docs" / "parking.md").write_text("# Parking\n\nVisitor parking is on level two of the garage.\n")
    (tmp_path / "structured" / "parts.csv").write_text("part,name,price\nDS-4,descaler,61.00\nGK-9,gasket kit,12.50\n")
    (tmp_path / "qa" / "test.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QA))
    return tmp_path


def test_company_folder_is_ingested_and_scored_per_mode(company, tmp_path, capsys):
    code = main(["eval", str(company), "--uri", str(tmp_path / "m.db"), "--collection", "ev", "--json", "--k", "1",
                 "--k", "2"])
    assert code == 0
    results = {r["mode"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(results) == {"dense", "bm25", "hybrid"}  # no reranker configured: no +rerank mode
    for result in results.values():
        assert result["queries"] == 3
        assert result["recall"]["2"] >= result["recall"]["1"] > 0.5
        assert result["hit"]["1"] == result["recall"]["1"] and 0 < result["answer"]["2"] <= result["hit"]["2"]


def test_layouts_and_errors(company, tmp_path):
    dataset = load_dataset(company)
    assert [p.name for p in dataset.ingest_paths] == ["docs", "structured"] and dataset.source_root == company
    assert set(dataset.facts) == {"t1", "t2", "t3"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="neither a BEIR folder"):
        load_dataset(tmp_path / "empty")


def test_metric_definitions():
    assert recall_at(["a", "b"], {"b": 1}, 1) == 0.0 and recall_at(["a", "b"], {"b": 1}, 2) == 1.0
    assert ndcg_at(["b"], {"b": 1}) == 1.0
    assert answer_at([], {"b": 1}, "x", 4) == 0.0

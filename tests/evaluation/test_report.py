"""report.md / routes.png / metrics.json from hand-made answers with known scores (no server)."""

from __future__ import annotations

import json

import matplotlib.image

from evaluation.client import ROUTES, ReturnedSource, RouteAnswer, route_specs
from evaluation.report import write_report
from evaluation.runner import EvalSettings, aggregate, make_record
from qa import QAItem

ITEMS = [QAItem(id=f"q{i}", question=f"What is the code of unit {i}?", answer=f"Code K{i}7.", source="manuals/unit.md",
                fact=f"K{i}7") for i in range(20)]


def answers_for(route: str, item: QAItem, index: int, hybrid_wins: bool) -> RouteAnswer:
    """base never knows; rag knows 10/20, finetuned 5/20, hybrid 20/20 (or rag's 10 when it does not win)."""
    gold = ReturnedSource(1, "docs/manuals/unit.md", f"c{index}", f"Unit {index} has code K{index}7.")
    other = ReturnedSource(2, "docs/policies/other.md", "x", "Nothing relevant.")
    knows = {"base": False, "rag": index % 2 == 0, "finetuned": index % 4 == 0,
             "hybrid": hybrid_wins or index % 2 == 0}[route]
    text = f"The code is K{index}7 [1]." if knows else "I do not know."
    sources = [gold, other] if route in ("rag", "hybrid") else []
    return RouteAnswer(text, sources, latency_s=0.5 + 0.01 * index, completion_tokens=10)


def make_result(hybrid_wins: bool):
    settings = EvalSettings(finetuned_adapter="ft-v1", hybrid_adapter="raft-v1")
    specs = route_specs(ROUTES, "ft-v1", "raft-v1")
    by_route = {s.name: [make_record(item, s, answers_for(s.name, item, i, hybrid_wins)) for i, item in enumerate(ITEMS)]
                for s in specs}
    return aggregate(specs, by_route, settings, endpoint="http://test", dataset="hand-made")


def test_report_chart_and_metrics_from_known_scores(tmp_path):
    result = make_result(hybrid_wins=True)
    rag = result.summaries["rag"]
    assert rag.metrics["contains_fact"].mean == 0.5 and rag.metrics["retrieval_hit"].mean == 1.0
    assert rag.metrics["citation_correct"].mean == 0.5 and rag.metrics["abstained"].mean == 0.5
    assert result.summaries["base"].metrics["retrieval_hit"] is None
    assert result.summaries["hybrid"].tokens_per_s == 10 / (sum(0.5 + 0.01 * i for i in range(20)) / 20)
    assert result.recommendation.route == "hybrid"

    paths = write_report(result, tmp_path / "out")
    report = paths["report"].read_text()
    assert "## Recommendation: **HYBRID**" in report and "![routes side by side](routes.png)" in report
    assert "**Yes**: the hybrid route beats both" in report
    for route in ROUTES:
        assert f"| {route} | " in report
    assert "| hybrid − rag | " in report and "**+0.500 [" in report  # hybrid - rag on contains fact: +0.5, significant
    image = matplotlib.image.imread(paths["chart"])
    assert image.shape[0] > 300 and image.shape[1] > 800
    metrics = json.loads(paths["metrics"].read_text())
    assert set(metrics["routes"]) == set(ROUTES) and metrics["recommendation"]["route"] == "hybrid"
    assert metrics["routes"]["finetuned"]["metrics"]["contains_fact"]["mean"] == 0.25
    assert len(paths["answers"].read_text().splitlines()) == 80


def test_report_says_so_when_hybrid_does_not_win(tmp_path):
    result = make_result(hybrid_wins=False)
    assert result.recommendation.route == "rag"
    report = write_report(result, tmp_path)["report"].read_text()
    assert "**No**: the hybrid route does not measurably beat both" in report
    assert "hybrid vs rag: +0.000 [+0.000, +0.000] contains_fact -> no measurable difference" in report

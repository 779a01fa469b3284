"""The ``evaluation`` package on a small real run: the Serve app (Ray, the offline Phi-3, two trained
adapters, Milvus Lite), four routes over HTTP, and the report, chart and metrics it writes.

It lives here rather than in tests/evaluation/ (the unit tests of evaluation) because it uses
tests/serve's app fixture, which must start after test_cli.py (file order)."""

from __future__ import annotations

import json

import matplotlib.image
import pytest

from evaluation import EvalError, EvalSettings, run_eval
from evaluation.__main__ import main
from tests.serve.conftest import API_KEY, free_port
from qa import QAItem

pytestmark = pytest.mark.slow
# Questions on tests/serve/corpus.py's documents (sources as the QA format names them).
QA = [
    {"id": "torque", "question": "What torque do the HX-220 flange bolts need?", "answer": "45 Nm",
     "source": "hx220-manual.md", "fact": "45 Nm"},
    {"id": "gasket", "question": "Which gasket kit must be used on the HX-220?", "answer": "Gasket kit GK-9",
     "source": "hx220-manual.md", "fact": "GK-9"},
    {"id": "badges", "question": "Who replaces lost badges?", "answer": "The security desk in building C",
     "source": "badges.md", "fact": "security desk"},
    {"id": "descaler", "question": "What does the descaler DS-4 cost?", "answer": "61.00 EUR", "source": "parts.csv",
     "fact": "61"},
]


def test_cli_writes_report_chart_and_metrics_for_all_four_routes(app, tmp_path, capsys):
    qa = tmp_path / "heldout.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QA))
    out = tmp_path / "eval"
    code = main(["--qa", str(qa), "--endpoint", app.base_url, "--api-key", API_KEY, "--finetuned-adapter", "alpha",
                 "--hybrid-adapter", "bravo", "--max-tokens", "24", "--resamples", "200", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "recommendation: " in printed

    metrics = json.loads((out / "metrics.json").read_text())
    routes = metrics["routes"]
    assert list(routes) == ["base", "rag", "finetuned", "hybrid"]
    assert [routes[r]["model"] for r in routes] == ["base", "base", "alpha", "bravo"]
    for name, route in routes.items():
        assert route["questions"] == 4 and route["errors"] == 0
        assert 0 < route["latency_p50_s"] <= route["latency_p99_s"] and route["tokens_per_s"] > 0
        has_retrieval = name in ("rag", "hybrid")
        assert (route["metrics"]["retrieval_hit"] is not None) == has_retrieval
        assert (route["metrics"]["citation_correct"] is not None) == has_retrieval
    # the retriever really finds each gold document (hybrid search, top_k 4, three documents)
    assert routes["rag"]["metrics"]["retrieval_hit"]["mean"] == 1.0 == routes["hybrid"]["metrics"]["retrieval_hit"]["mean"]
    assert {(c["a"], c["b"]) for c in metrics["comparisons"]} >= {("hybrid", "rag"), ("hybrid", "finetuned"), ("rag", "base")}
    assert metrics["recommendation"]["route"] in ("base", "rag", "finetuned", "hybrid")

    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 16 and all(a["answer"] for a in answers)
    assert all(a["sources"] for a in answers if a["route"] in ("rag", "hybrid"))
    assert not any(a["sources"] for a in answers if a["route"] in ("base", "finetuned"))
    report = (out / "report.md").read_text()
    assert "## Recommendation: **" in report and "| hybrid − rag |" in report and "`bravo`" in report
    assert matplotlib.image.imread(out / "routes.png").shape[1] > 800


def test_bad_setups_fail_before_the_first_question(app):
    items = [QAItem(**QA[0])]
    with pytest.raises(EvalError, match="adapter 'nope' for route 'hybrid' is not served.*alpha, base, bravo"):
        run_eval(app.base_url, items, EvalSettings(finetuned_adapter="alpha", hybrid_adapter="nope"), api_key=API_KEY)
    with pytest.raises(EvalError, match="rejected the API key"):
        run_eval(app.base_url, items, EvalSettings(routes=("base",)), api_key="wrong")
    with pytest.raises(EvalError, match="route 'finetuned' needs an adapter: pass --finetuned-adapter"):
        run_eval(app.base_url, items, EvalSettings(routes=("base", "finetuned")))
    with pytest.raises(EvalError, match="cannot reach"):
        run_eval(f"http://127.0.0.1:{free_port()}", items, EvalSettings(routes=("base",)))


def test_a_subset_of_routes_runs_concurrently_without_a_recommendation(app):
    items = [QAItem(**q) for q in QA[:2]]
    settings = EvalSettings(routes=("rag",), max_tokens=8, warmup=0, resamples=100, concurrency=2)
    result = run_eval(app.base_url, items, settings, api_key=API_KEY)
    assert list(result.summaries) == ["rag"] and result.comparisons == []
    assert [r.qa_id for r in result.records] == ["torque", "gasket"]  # question order kept with 2 in flight
    assert result.summaries["rag"].errors == 0 and all(r.sources for r in result.records)
    assert result.recommendation.route is None and "base, finetuned, hybrid" in result.recommendation.reasons[0]

"""The reranking stage (retrieval/rerank.py) on hand-made cases, with the offline model as a
query-likelihood reranker: the passage that answers the question comes first."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.api import Retriever
from retrieval.config import RerankConfig, RetrievalConfig
from retrieval.errors import RetrievalError
from retrieval.rerank import QueryLikelihoodReranker

pytestmark = pytest.mark.slow

CASES = [
    ("What torque do the HX-220 flange bolts need?",
     ["Visitor parking is on level two of the garage next to the elevators.",
      "The HX-220 pump flange bolts are tightened to 45 Nm in a cross pattern.",
      "The printer on floor three needs new toner every month."], 1),
    ("How long is the incubation period of the virus?",
     ["The dishwasher runs every evening; please load cups on the top rack.",
      "The VPN client must be updated before connecting from abroad.",
      "The median incubation period of the virus was 5.2 days after exposure."], 2),
    ("Who replaces lost badges?",
     ["Lost badges are replaced by the security desk in building C.",
      "Badges of the new design were introduced in 2021 for all staff.",
      "The canteen opens at noon."], 0),
]


@pytest.fixture(scope="module")
def model_dir() -> str:
    from modeling.builtin import ensure_builtin_model

    return str(ensure_builtin_model())


@pytest.fixture(scope="module")
def reranker(model_dir):
    return QueryLikelihoodReranker(RerankConfig(model=model_dir, kind="query-likelihood", batch_size=2))


@pytest.mark.parametrize("question,passages,answer", CASES)
def test_the_answering_passage_scores_highest(reranker, question, passages, answer):
    scores = reranker.score(question, passages)
    assert len(scores) == len(passages)
    assert max(range(len(scores)), key=scores.__getitem__) == answer, scores


def test_scores_do_not_depend_on_batching_or_padding(model_dir, reranker):
    question, passages, _ = CASES[0]
    one_by_one = QueryLikelihoodReranker(RerankConfig(model=model_dir, kind="query-likelihood", batch_size=1))
    assert one_by_one.score(question, passages) == pytest.approx(reranker.score(question, passages), abs=1e-4)
    short = QueryLikelihoodReranker(RerankConfig(model=model_dir, kind="query-likelihood", max_length=24))
    assert len(short.score(question, ["word " * 500])) == 1  # long passages are cut to fit


def test_search_reorders_first_stage_hits(tmp_path: Path, embedder, model_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    # BM25 ranks the page that repeats the question's words first; only one page answers it.
    (docs / "faq.md").write_text("# Ordering\n\nHX-220 flange bolts are sold in packs of twelve. Order HX-220 flange "
                                 "bolts from the parts desk; spare HX-220 flange bolts ship in two days.\n")
    (docs / "manual.md").write_text("# Assembly\n\nTighten the HX-220 flange bolts to 45 Nm in a cross pattern.\n")
    (docs / "other.md").write_text("# Kitchen\n\nThe dishwasher runs every evening.\n")
    config = RetrievalConfig().with_overrides(rerank__model=model_dir, rerank__kind="query-likelihood",
                                              rerank__candidates=3)
    with Retriever(config, collection="rr", uri=str(tmp_path / "m.db"), embedder=embedder) as kb:
        kb.ingest([docs])
        question = "What torque do the HX-220 flange bolts need?"
        first_stage = kb.search(question, mode="bm25", top_k=3)
        reranked = kb.search(question, mode="bm25", top_k=2, rerank=True)
    assert Path(first_stage[0].source).name == "faq.md"
    assert Path(reranked[0].source).name == "manual.md" and len(reranked) == 2
    assert reranked[0].score >= reranked[1].score


def test_reranking_without_a_model_is_a_clear_error(tmp_path: Path, embedder):
    with pytest.raises(ValueError, match="rerank.model is empty"):
        RerankConfig(enabled=True)
    with Retriever(collection="none", uri=str(tmp_path / "m.db"), embedder=embedder) as kb:
        with pytest.raises(RetrievalError, match="rerank.model is not set"):
            _ = kb.reranker

"""Search modes, filters against real Milvus (including injection attempts), hybrid ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import FilterError, RetrievalError
from retrieval.filters import Filter
from tests.retrieval.corpus import write_corpus

FACTS = {
    "firmware.md": "# Firmware log\n\nThe table lists controller codes. Entry ZX-4411 is recorded by the firmware watchdog.\n",
    "power.md": "# Startup problems\n\nIf your notebook computer fails to power up, hold the power button for thirty seconds "
    "to drain residual charge, then reconnect the charger.\n",
    "kitchen.md": "# Kitchen\n\nThe dishwasher runs every evening; please load cups on the top rack.\n",
    "parking.md": "# Parking\n\nVisitor parking is on level two of the garage next to the elevators.\n",
    "printer.md": "# Printers\n\nThe printer on floor three needs new toner every month.\n",
    "vpn.md": "# VPN\n\nThe VPN client must be updated before connecting from abroad.\n",
}


def _ingested(uri: str, root: Path, embedder):  # noqa: ANN001, ANN202
    from retrieval.api import Retriever

    corpus = write_corpus(root / "docs")
    for name, text in FACTS.items():
        (corpus / name).write_text(text)
    retriever = Retriever(collection="kb", uri=uri, embedder=embedder)
    retriever.ingest([corpus], source_root=root)
    return retriever


@pytest.fixture(scope="module")
def kb_embedded(tmp_path_factory: pytest.TempPathFactory, embedder):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("search")
    retriever = _ingested(str(root / "m.db"), root, embedder)
    yield retriever
    retriever.close()


@pytest.fixture(scope="module")
def kb_server(tmp_path_factory: pytest.TempPathFactory, embedder, milvus_server):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("search-server")
    retriever = _ingested(milvus_server.uri, root, embedder)
    yield retriever
    retriever.store.drop()  # the server is shared by the session: both of its collections go
    retriever.close()


@pytest.fixture(scope="module", params=["embedded", "server"])
def kb(request):  # noqa: ANN001, ANN201
    """Every search test runs on Milvus Lite in-process and on the Milvus server over gRPC."""
    return request.getfixturevalue(f"kb_{request.param}")


def _names(hits) -> list[str]:  # noqa: ANN001
    return [Path(h.source).name for h in hits]


def test_hybrid_puts_keyword_match_and_paraphrase_in_top_results(kb) -> None:  # noqa: ANN001
    query = "my laptop shows code ZX-4411 and won't switch on"
    bm25 = _names(kb.search(query, mode="bm25", top_k=3))
    dense = _names(kb.search(query, mode="dense", top_k=3))
    hybrid = _names(kb.search(query, mode="hybrid", top_k=3))
    assert bm25[0] == "firmware.md"  # the exact code is a lexical match
    assert "power.md" not in bm25  # the paraphrase shares no word with the query...
    assert "power.md" in dense  # ...but its meaning, which the dense route finds
    assert {"firmware.md", "power.md"} <= set(hybrid)


def test_weighted_ranker_is_a_config_change(kb) -> None:  # noqa: ANN001
    original = kb.config
    kb.config = original.with_overrides(search__ranker="weighted", search__dense_weight=0.0, search__bm25_weight=1.0)
    try:
        assert _names(kb.search("code ZX-4411", mode="hybrid", top_k=1)) == ["firmware.md"]
    finally:
        kb.config = original


def test_scores_are_sorted_best_first_in_every_mode(kb) -> None:  # noqa: ANN001
    for mode in ("dense", "bm25", "hybrid"):
        scores = [h.score for h in kb.search("printer toner floor", mode=mode, top_k=5)]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_filters_on_fields_and_row_metadata(kb) -> None:  # noqa: ANN001
    hits = kb.search("customer revenue", mode="hybrid", top_k=10, filters=["meta.region=EMEA"])
    assert sorted(h.meta["name"] for h in hits) == ["Globex", "Umbrella"]
    hits = kb.search("customer revenue", top_k=10, filters=[Filter("meta.revenue", ">=", 800)])
    assert sorted(h.meta["name"] for h in hits) == ["Globex", "Initech"]
    hits = kb.search("pump", top_k=10, filters={"file_type": "pdf", "page": 1})
    assert [(Path(h.source).name, h.page) for h in hits] == [("manual.pdf", 1)]


def test_membership_filters_on_row_metadata_run_in_milvus(kb) -> None:  # noqa: ANN001
    """Milvus refuses `in` on a JSON path; the compiled expression must still select the right rows."""
    hits = kb.search("customer revenue", top_k=10, filters=[Filter("meta.name", "in", ["Globex", "Initech"])])
    assert sorted(h.meta["name"] for h in hits) == ["Globex", "Initech"]
    hits = kb.search("customer revenue", top_k=10, filters=[Filter("meta.name", "not in", ["Globex"]), "meta.region=EMEA"])
    assert sorted(h.meta["name"] for h in hits) == ["Umbrella"]


@pytest.mark.parametrize(
    "value",
    ['x" or doc_id != "', '" || chunk_index >= 0 || source == "', 'a\\" or true or \\"', "') or ('1'=='1"],
)
def test_filter_injection_matches_nothing_instead_of_everything(kb, value: str) -> None:  # noqa: ANN001
    assert kb.search("parking", mode="dense", top_k=5)  # there are results without the filter
    for mode in ("dense", "bm25", "hybrid"):
        assert kb.search("parking", mode=mode, top_k=5, filters={"source": value}) == []


def test_source_with_quotes_is_matched_exactly(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    folder = tmp_path / 'we"ird\\dir'
    folder.mkdir()
    (folder / "q.md").write_text("# Q\n\nQuoted folder names still filter exactly.\n")
    kb = make_retriever()
    kb.ingest([folder])
    source = (folder / "q.md").resolve().as_posix()
    assert _names(kb.search("quoted folder", filters={"source": source})) == ["q.md"]
    assert kb.delete(sources=[source]).deleted == 1


def test_unknown_field_and_mode_errors(kb) -> None:  # noqa: ANN001
    with pytest.raises(FilterError, match="unknown filter field 'author'; known fields"):
        kb.search("x", filters=["author=bob"])
    with pytest.raises(RetrievalError, match="unknown search mode 'fuzzy'"):
        kb.search("x", mode="fuzzy")


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize("filters", [None, ["meta.region=EMEA"], {"file_type": "markdown"}])
def test_the_milvus_server_answers_exactly_as_embedded_milvus(kb_embedded, kb_server, mode: str, filters) -> None:  # noqa: ANN001
    """Same chunks, same BM25 function, same hybrid_search and JSON filters: same hits and scores."""
    query = "customer revenue in EMEA and the laptop code ZX-4411"
    embedded = kb_embedded.search(query, mode=mode, top_k=6, filters=filters)
    served = kb_server.search(query, mode=mode, top_k=6, filters=filters)
    assert embedded, "the query must find something for the comparison to mean anything"
    assert [h.chunk_id for h in served] == [h.chunk_id for h in embedded]
    assert [h.score for h in served] == pytest.approx([h.score for h in embedded], rel=1e-5)

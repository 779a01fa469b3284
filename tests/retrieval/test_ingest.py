"""Ingest into a real Milvus Lite file with the real embedder: reports, incremental updates,
delete and sync."""

from __future__ import annotations

from pathlib import Path

from retrieval.errors import CollectionNotFoundError
from tests.retrieval.corpus import HANDBOOK, snapshot, write_corpus

import pytest


def _by_name(report) -> dict[str, object]:  # noqa: ANN001
    return {Path(f.source).name: f for f in report.files}


def test_every_format_ingests_and_bad_files_are_reported(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    corpus = write_corpus(tmp_path / "docs")
    (corpus / "slides.pptx").write_bytes(b"binary")
    kb = make_retriever()
    report = kb.ingest([corpus])
    files = _by_name(report)
    assert {n for n, f in files.items() if f.status == "added"} == {
        "handbook.md", "notes.txt", "travel.html", "manual.pdf", "customers.csv", "products.json", "tickets.jsonl"
    }
    assert files["broken.pdf"].status == "error" and "broken or unreadable PDF" in files["broken.pdf"].error
    assert files["slides.pptx"].status == "error" and "unsupported file type" in files["slides.pptx"].error
    assert files["empty.txt"].status == "empty" and files["empty.txt"].chunks == 0
    stats = kb.stats()
    assert stats.documents == 8 and stats.incomplete_documents == 0
    assert stats.chunks == report.chunks_written == sum(f.chunks for f in report.files)
    hit = kb.search("which part replaces the filter cartridge", mode="hybrid", top_k=1)[0]
    assert hit.source.endswith("manual.pdf") and hit.page == 2 and "FX-200" in hit.text
    assert hit.citation().endswith(f"(page 2, chars {hit.start}-{hit.end})")


def test_reingest_unchanged_changes_nothing(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    corpus = write_corpus(tmp_path / "docs")
    kb = make_retriever()
    kb.ingest([corpus])
    before = snapshot(kb)
    again = kb.ingest([corpus])
    assert again.chunks_written == 0
    assert again.counts == {"unchanged": 8, "error": 1}
    assert snapshot(kb) == before


def test_changed_document_replaces_exactly_its_chunks(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    corpus = write_corpus(tmp_path / "docs")
    kb = make_retriever()
    kb.ingest([corpus])
    before = snapshot(kb)
    handbook = corpus / "handbook.md"
    handbook.write_text(HANDBOOK.replace("25th", "28th"))
    report = kb.ingest([corpus])
    assert _by_name(report)["handbook.md"].status == "updated"
    after = snapshot(kb)
    source = handbook.resolve().as_posix()
    others_before = [c for c in before["chunks"] if c[2] != source]
    others_after = [c for c in after["chunks"] if c[2] != source]
    assert others_after == others_before  # no other document touched
    new_rows = [c for c in after["chunks"] if c[2] == source]
    assert new_rows and all("25th" not in c[1] for c in new_rows) and any("28th" in c[1] for c in new_rows)
    assert not {c[0] for c in new_rows} & {c[0] for c in before["chunks"]}  # old version ids are gone
    assert kb.search("when are salaries paid", mode="bm25", top_k=1, filters={"source": source})[0].text.count("28th") == 1


def test_broken_new_version_keeps_the_old_one(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    folder = tmp_path / "docs"
    folder.mkdir()
    data = folder / "data.json"
    data.write_text('[{"fact": "the vault code is 4711"}]')
    kb = make_retriever()
    kb.ingest([folder])
    data.write_text('[{"fact": ')  # corrupt edit
    report = kb.ingest([folder])
    assert report.files[0].status == "error" and "invalid JSON" in report.files[0].error
    assert "4711" in kb.search("vault code", top_k=1)[0].text  # nothing lost


def test_delete_by_doc_id_and_by_source(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    corpus = write_corpus(tmp_path / "docs")
    kb = make_retriever()
    kb.ingest([corpus])
    docs = {Path(e.source).name: e for e in kb.documents()}
    result = kb.delete(doc_ids=[docs["notes.txt"].doc_id])
    assert result.sources == [docs["notes.txt"].source]
    result = kb.delete(sources=[str(corpus / "travel.html")])
    assert result.deleted == 1
    remaining = {Path(e.source).name for e in kb.documents()}
    assert "notes.txt" not in remaining and "travel.html" not in remaining and "handbook.md" in remaining
    assert kb.store.count_chunks(f'source == "{docs["notes.txt"].source}"') == 0
    assert kb.delete(sources=[str(corpus)]).deleted == len(remaining)  # a folder deletes everything under it
    assert kb.stats().chunks == 0


def test_sync_mirrors_a_folder(tmp_path: Path, make_retriever) -> None:  # noqa: ANN001
    corpus = write_corpus(tmp_path / "docs")
    outside = tmp_path / "other.md"
    outside.write_text("# Other\n\nOutside the synced folder.\n")
    kb = make_retriever()
    kb.ingest([corpus, outside])
    (corpus / "notes.txt").unlink()
    (corpus / "handbook.md").write_text(HANDBOOK + "\n## Holidays\n\nThe office closes on December 24th.\n")
    (corpus / "new.md").write_text("# New\n\nA brand new page about the gym.\n")
    report = kb.ingest([corpus], sync=True)
    files = _by_name(report)
    assert files["notes.txt"].status == "deleted"
    assert files["handbook.md"].status == "updated"
    assert files["new.md"].status == "added"
    names = {Path(e.source).name for e in kb.documents()}
    assert "notes.txt" not in names and "other.md" in names  # sync only touches the given folder
    clean = make_retriever(name="clean", db="clean.db")
    clean.ingest([corpus, outside])
    assert snapshot(kb)["chunks"] == snapshot(clean)["chunks"]


def test_search_on_missing_collection_is_a_clear_error(make_retriever) -> None:  # noqa: ANN001
    with pytest.raises(CollectionNotFoundError, match="ingest documents into it first"):
        make_retriever(name="nothing_here").search("anything")

"""Chunks are exact spans, fit the token budget, overlap, and never cross sections or rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.chunking import chunk_document
from retrieval.config import ChunkingConfig, EmbedderConfig
from retrieval.loaders import load_document
from retrieval.tokenization import token_counter_for

COUNT = token_counter_for(EmbedderConfig())


def _long_markdown(tmp_path: Path) -> Path:
    sentences = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120))
    path = tmp_path / "long.md"
    path.write_text(f"# Guide\n\n## Part A\n\n{sentences}\n\n## Part B\n\nShort closing remark.\n")
    return path


def test_chunks_are_exact_spans_within_budget(tmp_path: Path) -> None:
    doc = load_document(_long_markdown(tmp_path))
    config = ChunkingConfig(max_tokens=64, overlap_tokens=16)
    chunks = chunk_document(doc, "v1", config, COUNT)
    assert len(chunks) > 10
    for chunk in chunks:
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert COUNT(chunk.text) <= config.max_tokens + 2  # heading/sentence joins add at most a token or two
        assert chunk.chunk_count == len(chunks)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))


def test_consecutive_chunks_overlap(tmp_path: Path) -> None:
    doc = load_document(_long_markdown(tmp_path))
    chunks = [c for c in chunk_document(doc, "v1", ChunkingConfig(max_tokens=64, overlap_tokens=16), COUNT) if c.section.endswith("Part A")]
    overlapping = [a for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
    assert len(overlapping) >= len(chunks) - 2
    assert all(b.start > a.start for a, b in zip(chunks, chunks[1:]))  # always progress


def test_no_overlap_when_disabled(tmp_path: Path) -> None:
    doc = load_document(_long_markdown(tmp_path))
    chunks = chunk_document(doc, "v1", ChunkingConfig(max_tokens=64, overlap_tokens=0), COUNT)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_sections_are_never_mixed(tmp_path: Path) -> None:
    doc = load_document(_long_markdown(tmp_path))
    chunks = chunk_document(doc, "v1", ChunkingConfig(max_tokens=64, overlap_tokens=16), COUNT)
    closing = [c for c in chunks if "closing remark" in c.text]
    assert len(closing) == 1 and closing[0].section == "Guide > Part B"
    assert "Sentence number" not in closing[0].text


def test_each_row_is_its_own_chunk(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n2,y\n3,z\n")
    chunks = chunk_document(load_document(path), "v1", ChunkingConfig(), COUNT)
    assert [(c.row, c.text, c.meta["a"]) for c in chunks] == [(1, "a: 1\nb: x", 1), (2, "a: 2\nb: y", 2), (3, "a: 3\nb: z", 3)]


def test_a_sentence_longer_than_the_budget_is_split_by_words(tmp_path: Path) -> None:
    path = tmp_path / "run_on.txt"
    path.write_text(" ".join(["word"] * 500))
    chunks = chunk_document(load_document(path), "v1", ChunkingConfig(max_tokens=50, overlap_tokens=0), COUNT)
    assert len(chunks) == 10 and all(COUNT(c.text) <= 50 for c in chunks)


def test_overlap_must_be_smaller_than_chunk() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingConfig(max_tokens=32, overlap_tokens=32)

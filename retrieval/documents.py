"""The data shapes that flow through ingestion: a parsed Document, its Blocks, and Chunks.

A Document keeps the *extracted text* of the file as one string; Blocks and Chunks point into it
with character offsets. Why: a chunk's text is then always an exact substring of the document,
so a citation (source, page/row, start-end) can be checked against the original extraction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

BlockKind = Literal["heading", "paragraph", "row"]


@dataclass(frozen=True)
class Block:
    """A structural unit found by a loader: a heading, a paragraph or a table row."""

    start: int
    end: int
    kind: BlockKind
    section: str = ""
    page: int = -1
    row: int = -1
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """One source file, parsed."""

    doc_id: str
    source: str
    file_type: str
    title: str
    text: str
    blocks: list[Block]


@dataclass
class Chunk:
    """A piece of a document sized for the embedder, with everything needed to cite it."""

    doc_id: str
    version: str
    chunk_index: int
    chunk_count: int
    source: str
    file_type: str
    title: str
    section: str
    page: int
    row: int
    start: int
    end: int
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chunk_id(self) -> str:
        """Deterministic id: re-running an ingest rewrites the same rows instead of duplicating."""
        return chunk_id(self.doc_id, self.version, self.chunk_index)

    def embedding_text(self) -> str:
        """The text given to the dense embedder: title and section add context a bare chunk lacks."""
        return contextual_text(self.title, self.section, self.text)


def contextual_text(title: str, section: str, text: str) -> str:
    """A chunk as a model should read it: ``title / section`` on a first line, then the text.

    A bare chunk ("2019: 24.5", "it rose by 12%") often lacks what it is about; the document's
    title and the section (heading path, or a table's caption) carry that. The dense embedder
    and the reranker both read chunks this way (BM25 indexes the bare text).
    """
    header = " / ".join(part for part in (title, section) if part)
    return f"{header}\n{text}" if header else text


def chunk_id(doc_id: str, version: str, index: int) -> str:
    return f"{doc_id}:{version}:{index:05d}"


def doc_id_for(source: str) -> str:
    """Stable document id from the source path: the same file always maps to the same id."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:24]

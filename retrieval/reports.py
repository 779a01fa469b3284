"""Result objects returned by the API (and printed by the CLI): plain dataclasses, JSON-ready."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FileStatus = Literal["added", "updated", "unchanged", "empty", "deleted", "error"]


@dataclass
class FileResult:
    source: str
    status: FileStatus
    chunks: int = 0
    doc_id: str = ""
    error: str = ""


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)
    chunks_written: int = 0
    seconds: float = 0.0
    embed_nodes: list[str] = field(default_factory=list)  # Ray nodes whose embedder actors produced chunks

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(result.status for result in self.files))

    @property
    def errors(self) -> list[FileResult]:
        return [result for result in self.files if result.status == "error"]

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items())) or "nothing to do"
        rate = self.chunks_written / self.seconds if self.seconds else 0.0
        return f"{counts}; {self.chunks_written} chunks written in {self.seconds:.1f}s ({rate:.1f} chunks/s)"

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "chunks_written": self.chunks_written, "seconds": self.seconds,
                "embed_nodes": self.embed_nodes, "files": [asdict(f) for f in self.files]}


@dataclass
class Hit:
    """One search result: the chunk text, where it comes from, and its score (higher is better)."""

    chunk_id: str
    doc_id: str
    score: float
    text: str
    source: str
    title: str
    section: str
    page: int
    row: int
    chunk_index: int
    start: int
    end: int
    file_type: str
    meta: dict[str, Any]

    def citation(self) -> str:
        """Human-readable pointer: ``source (page 3, chars 120-480)``."""
        where = [f"page {self.page}"] if self.page >= 0 else []
        where += [f"row {self.row}"] if self.row >= 0 else []
        where += [f"chars {self.start}-{self.end}"]
        return f"{self.source} ({', '.join(where)})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeleteReport:
    doc_ids: list[str]
    sources: list[str]

    @property
    def deleted(self) -> int:
        return len(self.doc_ids)


@dataclass
class CollectionStats:
    collection: str
    uri: str
    documents: int
    chunks: int
    incomplete_documents: int
    embedder: str
    dimension: int
    by_file_type: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

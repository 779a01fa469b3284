"""The ingest pipeline's stages as plain functions over *records* (flat dicts).

Both executors, local (retrieval/executors.py) and Ray Data (retrieval/ray_ingest.py), call
exactly these functions; only who runs them differs. A record is either a chunk (chunk_index >=
0) or the one *document marker* every file emits (chunk_index == -1) that carries the chunk
count or the parse error, so the writer knows when a document is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from fingerprint import Fingerprint
from retrieval.chunking import chunk_document
from retrieval.config import ChunkingConfig, EmbedderConfig, RetrievalConfig
from retrieval.documents import Chunk, chunk_id, doc_id_for
from retrieval.embedding import Embedder
from retrieval.errors import LoaderError
from retrieval.loaders import is_supported, load_document, unsupported_reason
from retrieval.tokenization import token_counter_for

PIPELINE_REVISION = "1"  # bump when loaders/chunking change output, so unchanged files re-ingest
MARKER_INDEX = -1


@dataclass(frozen=True)
class FileTask:
    """One file to (re)ingest: where to read it and under which identity/version to store it."""

    path: str
    source: str
    doc_id: str
    version: str


def pipeline_fingerprint(config: RetrievalConfig) -> str:
    """Everything besides the file bytes that changes the stored chunks."""
    parts = {
        "revision": PIPELINE_REVISION,
        "chunking": config.chunking.model_dump(),
        "embedder": [config.embedder.provider, config.embedder.model, config.embedder.dimensions, config.embedder.normalize]
        + ([config.embedder.quantize] if config.embedder.quantize != "none" else []),
    }
    return Fingerprint().value(parts).hexdigest()


def file_version(path: Path, fingerprint: str) -> str:
    """The stored version of a file: its bytes under this pipeline fingerprint (its path is not part of it)."""
    return Fingerprint().text(fingerprint).content(path).hexdigest()[:16]


def source_of(path: Path, source_root: Path | None) -> str:
    """Canonical source string: relative to ``source_root`` when given (portable), else absolute."""
    absolute = path.expanduser().resolve()
    if source_root is not None:
        try:
            return absolute.relative_to(source_root.expanduser().resolve()).as_posix()
        except ValueError:
            pass
    return absolute.as_posix()


def discover(paths: Sequence[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders (recursively, hidden entries skipped) into supported files.

    Returns (files, problems): a missing path or an unsupported file is a per-file problem.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        _add(Path(root) / name, files, problems)
        elif path.is_file():
            _add(path, files, problems)
        else:
            problems.append((path, f"{path}: no such file or folder"))
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique, problems


def _add(path: Path, files: list[Path], problems: list[tuple[Path, str]]) -> None:
    if is_supported(path):
        files.append(path)
    else:
        problems.append((path, unsupported_reason(path)))


def make_task(path: Path, source_root: Path | None, fingerprint: str) -> FileTask:
    source = source_of(path, source_root)
    relative = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    return FileTask(path=relative, source=source, doc_id=doc_id_for(source), version=file_version(path, fingerprint))


def _marker(task: FileTask, chunk_count: int, error: str = "", file_type: str = "", title: str = "") -> dict[str, Any]:
    return {
        "id": chunk_id(task.doc_id, task.version, MARKER_INDEX), "doc_id": task.doc_id, "version": task.version,
        "source": task.source, "file_type": file_type, "title": title, "section": "", "page": -1, "row": -1,
        "chunk_index": MARKER_INDEX, "chunk_count": chunk_count, "start": 0, "end": 0, "text": "",
        "meta_json": "{}", "error": error,
    }


def _chunk_record(chunk: Chunk) -> dict[str, Any]:
    record = asdict(chunk)
    record["id"] = chunk.chunk_id
    record["meta_json"] = json.dumps(record.pop("meta"), ensure_ascii=False, sort_keys=True)
    record["error"] = ""
    return record


def parse_records(task: FileTask | dict[str, Any], chunking: ChunkingConfig, embedder: EmbedderConfig) -> list[dict[str, Any]]:
    """Stage 1: load + chunk one file; never raises for a bad file (the marker carries the error)."""
    task = task if isinstance(task, FileTask) else FileTask(**{k: task[k] for k in ("path", "source", "doc_id", "version")})
    try:
        document = load_document(Path(task.path))
    except LoaderError as exc:
        return [_marker(task, 0, error=str(exc))]
    document.source, document.doc_id = task.source, task.doc_id
    chunks = chunk_document(document, task.version, chunking, token_counter_for(embedder))
    return [_marker(task, len(chunks), file_type=document.file_type, title=document.title)] + [_chunk_record(c) for c in chunks]


def record_to_chunk(record: dict[str, Any]) -> Chunk:
    fields = Chunk.__dataclass_fields__
    values = {k: record[k] for k in fields if k != "meta"}
    return Chunk(**values, meta=json.loads(record["meta_json"]))


def embed_records(records: list[dict[str, Any]], embedder: Embedder) -> list[dict[str, Any]]:
    """Stage 2: add the dense vector to every chunk record (markers get an empty list)."""
    chunk_positions = [i for i, r in enumerate(records) if r["chunk_index"] != MARKER_INDEX]
    vectors = embedder.embed([record_to_chunk(records[i]).embedding_text() for i in chunk_positions])
    out = [dict(r, dense=[]) for r in records]
    for position, vector in zip(chunk_positions, vectors):
        out[position]["dense"] = vector.tolist()
    return out


def batched(records: Iterable[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch

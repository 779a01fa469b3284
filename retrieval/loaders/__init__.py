"""File loaders: one module per family of formats, one registry mapping extensions to them.

Every loader turns a file into a :class:`~retrieval.documents.Document` or raises
:class:`~retrieval.errors.LoaderError`; the pipeline reports that per file and goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from retrieval.documents import Document, doc_id_for
from retrieval.errors import LoaderError, UnsupportedFileError
from retrieval.loaders.html import load_html
from retrieval.loaders.pdf import load_pdf
from retrieval.loaders.tabular import load_csv, load_json, load_jsonl
from retrieval.loaders.text import load_markdown, load_plain_text

Loader = Callable[[Path, str, str], Document]

LOADERS: dict[str, tuple[str, Loader]] = {
    ".md": ("markdown", load_markdown),
    ".markdown": ("markdown", load_markdown),
    ".txt": ("text", load_plain_text),
    ".text": ("text", load_plain_text),
    ".html": ("html", load_html),
    ".htm": ("html", load_html),
    ".pdf": ("pdf", load_pdf),
    ".csv": ("csv", load_csv),
    ".json": ("json", load_json),
    ".jsonl": ("jsonl", load_jsonl),
    ".ndjson": ("jsonl", load_jsonl),
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def source_for(path: Path) -> str:
    """The canonical source string of a file: its absolute POSIX path (stable across cwd)."""
    return Path(path).expanduser().resolve().as_posix()


def unsupported_reason(path: Path) -> str:
    known = ", ".join(sorted(LOADERS))
    return f"{path.name}: unsupported file type '{path.suffix.lower() or '(none)'}'; supported: {known}"


def load_document(path: Path) -> Document:
    """Parse one file with the loader its extension selects.

    Raises UnsupportedFileError for unknown extensions and LoaderError for unreadable files,
    always with the file name and a hint, because the message ends up in the ingest report.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LOADERS:
        raise UnsupportedFileError(unsupported_reason(path))
    file_type, loader = LOADERS[suffix]
    source = source_for(path)
    try:
        return loader(path, source, doc_id_for(source))
    except LoaderError:
        raise
    except Exception as exc:  # a parser bug or corrupt file must not abort the batch
        raise LoaderError(f"{path.name}: could not parse as {file_type}: {type(exc).__name__}: {exc}") from exc

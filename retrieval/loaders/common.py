"""Helpers shared by the loaders: decoding bytes and cutting text into paragraph blocks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from retrieval.documents import Block
from retrieval.errors import LoaderError

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")


def read_text(path: Path) -> str:
    """Read a text file as UTF-8 (BOM tolerated), rejecting binary files with a clear message."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise LoaderError(f"{path.name}: looks like a binary file (NUL bytes), not text; remove it or convert it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoaderError(
            f"{path.name}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8"
        ) from exc


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of non-blank paragraphs (separated by blank lines), stripped of whitespace."""
    end = len(text) if end is None else end
    cursor = start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        yield from _stripped(text, cursor, match.start())
        cursor = match.end()
    yield from _stripped(text, cursor, end)


def _stripped(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


def paragraph_blocks(text: str, start: int, end: int, section: str = "", page: int = -1) -> list[Block]:
    return [Block(s, e, "paragraph", section=section, page=page) for s, e in paragraph_spans(text, start, end)]

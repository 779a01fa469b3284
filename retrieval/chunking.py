"""Structure-aware, token-aware chunking with overlap.

Chunks never cross a section, a page or a table row, because a citation names exactly one of
each; inside that, paragraphs are packed up to ``max_tokens`` and consecutive chunks share up to
``overlap_tokens`` of trailing text so a fact cut at a boundary is still found whole. Every chunk
is an exact span ``document.text[start:end]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from retrieval.config import ChunkingConfig
from retrieval.documents import Block, Chunk, Document
from retrieval.tokenization import TokenCounter

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def _groups(blocks: list[Block]) -> Iterator[list[Block]]:
    """Consecutive blocks that may share a chunk: same section and page; every row alone."""
    group: list[Block] = []
    for block in blocks:
        boundary = group and (
            block.kind == "row"
            or group[-1].kind == "row"
            or block.kind == "heading"
            or (block.section, block.page) != (group[-1].section, group[-1].page)
        )
        if boundary and not all(b.kind == "heading" for b in group):
            yield group
            group = []
        group.append(block)
    if group:
        yield group


def _split_long(text: str, start: int, end: int, limit: int, count: TokenCounter) -> list[_Unit]:
    """Split a span by sentences, and sentences longer than ``limit`` tokens by words."""
    units: list[_Unit] = []
    cursor = start
    pieces: list[tuple[int, int]] = []
    for match in _SENTENCE_END.finditer(text, start, end):
        pieces.append((cursor, match.start()))
        cursor = match.end()
    pieces.append((cursor, end))
    for piece_start, piece_end in pieces:
        if piece_end <= piece_start:
            continue
        tokens = count(text[piece_start:piece_end])
        if tokens <= limit:
            units.append(_Unit(piece_start, piece_end, tokens))
            continue
        # WordPiece/BPE pre-tokenise on whitespace, so per-word counts add up to the span's count.
        window_start, window_end, window_tokens = -1, -1, 0
        for word in _WORD.finditer(text, piece_start, piece_end):
            word_tokens = count(word.group())
            if window_start >= 0 and window_tokens + word_tokens > limit:
                units.append(_Unit(window_start, window_end, window_tokens))
                window_start, window_tokens = -1, 0
            if window_start < 0:
                window_start = word.start()
            window_end = word.end()
            window_tokens += word_tokens
        if window_start >= 0:
            units.append(_Unit(window_start, window_end, window_tokens))
    return units


def _units(text: str, group: list[Block], limit: int, count: TokenCounter) -> list[_Unit]:
    """Rows and headings stay whole when they fit; prose is cut into sentences so overlap can be fine-grained."""
    units: list[_Unit] = []
    for block in group:
        if block.kind != "paragraph":
            tokens = count(text[block.start:block.end])
            if tokens <= limit:
                units.append(_Unit(block.start, block.end, tokens))
                continue
        units.extend(_split_long(text, block.start, block.end, limit, count))
    return units


def _pack(units: list[_Unit], limit: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Greedy packing; each new chunk starts with the previous chunk's tail (<= overlap tokens)."""
    current: list[_Unit] = []
    fresh = 0  # units in ``current`` not yet emitted in a previous chunk
    for unit in units:
        if current and sum(u.tokens for u in current) + unit.tokens > limit:
            yield current[0].start, current[-1].end
            tail: list[_Unit] = []
            tail_tokens = 0
            for previous in reversed(current[1:]):  # never the whole chunk: every chunk adds new text
                grown = tail_tokens + previous.tokens
                if grown > overlap or grown + unit.tokens > limit:
                    break
                tail.insert(0, previous)
                tail_tokens = grown
            current, fresh = tail, 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        yield current[0].start, current[-1].end


def chunk_document(document: Document, version: str, config: ChunkingConfig, count: TokenCounter) -> list[Chunk]:
    """Cut a parsed document into chunks carrying ids, offsets and citation fields."""
    spans: list[tuple[int, int, Block]] = []
    for group in _groups(document.blocks):
        first = next((b for b in group if b.kind != "heading"), group[0])
        for start, end in _pack(_units(document.text, group, config.max_tokens, count), config.max_tokens, config.overlap_tokens):
            spans.append((start, end, first))
    return [
        Chunk(
            doc_id=document.doc_id,
            version=version,
            chunk_index=index,
            chunk_count=len(spans),
            source=document.source,
            file_type=document.file_type,
            title=document.title,
            section=block.section,
            page=block.page,
            row=block.row,
            start=start,
            end=end,
            text=document.text[start:end],
            meta=dict(block.meta),
        )
        for index, (start, end, block) in enumerate(spans)
    ]

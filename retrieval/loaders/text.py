"""Markdown and plain-text loaders. Markdown headings become section titles for the chunks."""

from __future__ import annotations

import re
from pathlib import Path

from retrieval.documents import Block, Document
from retrieval.loaders.common import paragraph_blocks, read_text

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^(```|~~~)")


def load_plain_text(path: Path, source: str, doc_id: str) -> Document:
    text = read_text(path)
    return Document(doc_id, source, "text", path.stem, text, paragraph_blocks(text, 0, len(text)))


def load_markdown(path: Path, source: str, doc_id: str) -> Document:
    """Split on ATX headings (outside code fences); each heading opens a section "H1 > H2 > ..."."""
    text = read_text(path)
    blocks: list[Block] = []
    trail: list[str] = []  # heading path, one entry per level
    section = ""
    body_start = 0
    in_fence = False
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped.lstrip()):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(stripped)
        if heading:
            blocks.extend(paragraph_blocks(text, body_start, offset, section))
            level, title = len(heading.group(1)), heading.group(2).strip()
            trail = trail[: level - 1] + [""] * max(0, level - 1 - len(trail)) + [title]
            section = " > ".join(part for part in trail if part)
            blocks.append(Block(offset, offset + len(stripped), "heading", section=section))
            body_start = offset + len(line)
        offset += len(line)
    blocks.extend(paragraph_blocks(text, body_start, len(text), section))
    first_heading = next((b.section.split(" > ")[0] for b in blocks if b.kind == "heading"), "")
    return Document(doc_id, source, "markdown", first_heading or path.stem, text, blocks)

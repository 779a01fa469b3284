"""HTML loader (stdlib parser): visible text by block element, h1-h6 as sections.

Why no third-party parser: the stdlib one is lenient with broken markup, and we only need the
text of block elements plus the heading hierarchy.
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path

from retrieval.documents import Block, Document
from retrieval.loaders.common import read_text

_BLOCK_TAGS = {
    "p", "div", "li", "ul", "ol", "table", "tr", "td", "th", "pre", "blockquote", "section",
    "article", "header", "footer", "main", "aside", "nav", "br", "dd", "dt", "dl", "figcaption",
    "h1", "h2", "h3", "h4", "h5", "h6", "title", "body", "html",
}
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "svg"}
_SPACES = re.compile(r"\s+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str]] = []  # (kind, text): kind "hN", "title" or "p"
        self._buffer: list[str] = []
        self._skip_depth = 0
        self._current = "p"

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001 - HTMLParser signature
        if tag in _SKIP_TAGS and tag != "head":
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self._flush()
            self._current = tag if re.fullmatch(r"h[1-6]|title", tag) else "p"

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and tag != "head":
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._flush()
            self._current = "p"

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._buffer.append(data)

    def _flush(self) -> None:
        text = _SPACES.sub(" ", "".join(self._buffer)).strip()
        self._buffer = []
        if text:
            self.pieces.append((self._current, text))

    def close(self) -> None:
        super().close()
        self._flush()


def load_html(path: Path, source: str, doc_id: str) -> Document:
    collector = _TextCollector()
    collector.feed(read_text(path))
    collector.close()
    parts: list[str] = []
    blocks: list[Block] = []
    trail: list[str] = []
    title = ""
    offset = 0
    for kind, piece in collector.pieces:
        piece = html_lib.unescape(piece)
        if kind == "title":
            title = title or piece
            continue
        if kind.startswith("h"):
            level = int(kind[1])
            trail = trail[: level - 1] + [""] * max(0, level - 1 - len(trail)) + [piece]
            title = title or (piece if level == 1 else "")
        section = " > ".join(part for part in trail if part)
        block_kind = "heading" if kind.startswith("h") else "paragraph"
        blocks.append(Block(offset, offset + len(piece), block_kind, section=section))
        parts.append(piece)
        offset += len(piece) + 2
    return Document(doc_id, source, "html", title or path.stem, "\n\n".join(parts), blocks)

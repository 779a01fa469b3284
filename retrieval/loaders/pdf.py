"""PDF loader (pypdf): text per page, paragraphs inside a page, the page number on every block."""

from __future__ import annotations

import logging
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from retrieval.documents import Block, Document
from retrieval.errors import LoaderError
from retrieval.loaders.common import paragraph_spans

# pypdf logs recoverable damage as warnings on every page; the report already says what failed.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def load_pdf(path: Path, source: str, doc_id: str) -> Document:
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise LoaderError(f"{path.name}: the PDF is encrypted; decrypt it (e.g. qpdf --decrypt) and ingest again")
        page_texts = [(page.extract_text() or "").strip() for page in reader.pages]
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoaderError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoaderError(f"{path.name}: broken or unreadable PDF ({type(exc).__name__}: {exc}); re-export it") from exc
    text_parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    for number, page_text in enumerate(page_texts, start=1):
        if not page_text:
            continue
        text_parts.append(page_text)
        blocks.extend(
            Block(offset + start, offset + end, "paragraph", page=number) for start, end in paragraph_spans(page_text)
        )
        offset += len(page_text) + 2
    return Document(doc_id, source, "pdf", str(metadata_title).strip() or path.stem, "\n\n".join(text_parts), blocks)

"""The question/answer file format shared by training, evaluation, retrieval quality and the pipeline.

A QA file is JSON Lines, one question per line::

    {"id": "q1", "question": "...", "answer": "...", "source": "manuals/hx220.md", "fact": "45 Nm"}

``source`` (optional) is the gold document as the collection's ``source`` field names it, or a
path that ends the same way (``manuals/hx220.md`` matches ``/data/docs/manuals/hx220.md``);
``fact`` (optional) is the short string a correct answer must contain. The RAFT and instruction
builders (``train``), the route evaluation (``evaluation``), retrieval quality
(``python -m retrieval eval``) and the pipeline all read questions through this package, so they
agree on what "gold" means. It depends on nothing but pydantic, so every layer may import it.
"""

from qa.format import QAFormatError, QAItem, load_qa, write_jsonl
from qa.matching import SourceNotFoundError, mentions, normalize_text, resolve_source, source_matches

__all__ = [
    "QAFormatError", "QAItem", "SourceNotFoundError", "load_qa", "mentions", "normalize_text", "resolve_source",
    "source_matches", "write_jsonl",
]

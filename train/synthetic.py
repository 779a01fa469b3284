"""Training questions from the documents alone, for companies that have documents and no QA pairs.

Every question is built by rules from one chunk of the collection, and its answer is a span of
that chunk, so the RAFT builder finds the same chunk as the gold passage and the adapter learns
the reading skill the hybrid route needs (find the passage, quote it, answer, cite):

* **table rows** (CSV / JSON records): the row's first cell names it (``Item: Revenue``,
  ``part_number: QF-1102``); every other non-empty cell becomes "What is the <column> of
  <key>?" (or "What is <key> for <column>?" when the column is a period such as "2019 £m"),
  answered by the cell's value;
* **text**: sentences stating something with a copula ("The incubation period was 5.2 days")
  become "What was the incubation period?" answered by the predicate's first phrase; a number
  with its unit in any other sentence becomes a cloze question (the span replaced by "what"),
  answered by that span.

Nothing here reads a held-out question. ``exclude`` only filters: an item whose question or whose
answer in the same document equals a held-out one is dropped, so an evaluation of a
documents-only adapter is never inflated by the exact held-out fact having been trained on.

``python -m train.synthetic --collection NAME --out synthetic.jsonl [--exclude qa/test.jsonl]``
writes a QA file (the ``qa`` format) that ``python -m train.raft --qa`` reads.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Iterable, Sequence

from pydantic import Field

from modeling.settings import StrictModel
from qa import QAFormatError, QAItem, load_qa, mentions, normalize_text, source_matches, write_jsonl
from retrieval.api import Retriever
from retrieval.errors import RetrievalError
from retrieval.reports import Hit

TABLE_TYPES = {"csv", "json", "jsonl"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|\n+")
_COPULA = re.compile(
    r"^(?P<subject>(?:The|the|A|An|Its|Their|This|These|Our)\s[^,;:()]{3,90}?)\s+"
    r"(?P<verb>is|was|are|were|has been|have been|will be|remained|ranged from|reached|totalled|totaled|amounted to)\s+"
    r"(?P<value>[^,;()]{1,70})"
)
_QUANTITY = re.compile(
    r"(?<![\w.])(?:[$£€]\s?)?\d[\d,]*(?:\.\d+)?\s?(?:%|percent|per cent|million|billion|thousand|m\b|bn\b|k\b|"
    r"days?|weeks?|months?|years?|hours?|minutes?|kb|nm|Nm|mm|cm|km|kg|g\b|mg|ml|kW|kWh|MW|V\b|A\b|bar|°C|patients|"
    r"cases|deaths|participants|samples)"
)
_CLAUSE_END = re.compile(r"\s+(?:and|which|that|but|while|whereas|because|although|when)\s+")
_PERIOD_COLUMN = re.compile(r"\b(19|20)\d{2}\b")
_MAX_WORDS = 40


class SyntheticSettings(StrictModel):
    max_questions: int | None = Field(300, ge=1, description="questions kept in all (a seeded sample; None = all)")
    per_chunk: int = Field(2, ge=1, le=20, description="questions at most from one chunk")
    per_document: int = Field(12, ge=1, description="questions at most from one document (spreads them out)")
    seed: int = 0


def _clean(text: str) -> str:
    return " ".join(text.split())


def row_questions(hit: Hit) -> list[tuple[str, str]]:
    """(question, answer) pairs from a table row rendered as ``column: value`` lines."""
    cells = []
    for line in hit.text.splitlines():
        column, sep, value = line.partition(": ")
        if sep and column.strip() and value.strip():
            cells.append((column.strip(), value.strip()))
    if len(cells) < 2:
        return []
    key = cells[0][1]
    pairs = []
    for column, value in cells[1:]:
        if normalize_text(value) in ("", normalize_text(key)) or len(value) > 60:
            continue
        column = column.replace("_", " ")
        if _PERIOD_COLUMN.search(column):
            question = f"What is {key} for {column}?"
        else:
            question = f"What is the {column} of {key}?"
        pairs.append((question, value))
    return pairs


def _copula_question(sentence: str) -> tuple[str, str] | None:
    match = _COPULA.match(sentence)
    if not match:
        return None
    value = _CLAUSE_END.split(match.group("value"))[0].strip().rstrip(".")
    words = value.split()
    if not words or len(words) > 8:
        value = " ".join(words[:8])
    if not value or not re.search(r"[\dA-Z]", value):  # a number or a name, not a vague phrase
        return None
    subject = match.group("subject")
    subject = subject[0].lower() + subject[1:]
    verb = match.group("verb")
    if verb not in ("is", "was", "are", "were"):  # "reached", "ranged from", ...: ask what it was
        verb = "were" if subject.split()[-1].endswith("s") else "was"
    return f"What {verb} {subject}?", value


def text_questions(hit: Hit) -> list[tuple[str, str]]:
    """(question, answer) pairs from prose: copula statements, then quantities as cloze questions."""
    pairs = []
    for sentence in (_clean(s) for s in _SENTENCE.split(hit.text)):
        if len(sentence.split()) < 5:
            continue
        found = _copula_question(sentence)
        if found:
            pairs.append(found)
            continue
        quantity = _QUANTITY.search(sentence)
        if quantity and len(sentence.split()) <= _MAX_WORDS:
            span = quantity.group().strip()
            question = (sentence[: quantity.start()] + "what" + sentence[quantity.end():]).rstrip(" .") + "?"
            pairs.append((question[0].upper() + question[1:], span))
    return pairs


def chunk_questions(hit: Hit) -> list[tuple[str, str]]:
    """Every rule-made (question, answer) of one chunk whose answer the chunk states."""
    pairs = row_questions(hit) if hit.file_type in TABLE_TYPES and hit.row >= 0 else text_questions(hit)
    return [(q, a) for q, a in pairs if mentions(hit.text, a) and not mentions(q, a)]


def _excluded(question: str, answer: str, source: str, exclude: Sequence[QAItem]) -> bool:
    """The question is a held-out one, or the answer is a held-out answer/fact of the same document."""
    asked, answered = normalize_text(question), normalize_text(answer)
    for item in exclude:
        if normalize_text(item.question) == asked:
            return True
        same_document = not item.source or source_matches(source, item.source)
        if same_document and answered in (normalize_text(item.gold_fact), normalize_text(item.answer)):
            return True
    return False


def build_synthetic_qa(chunks: Iterable[Hit], settings: SyntheticSettings | None = None,
                       exclude: Sequence[QAItem] = ()) -> list[QAItem]:
    """Rule-made QA items over ``chunks`` (deterministic per seed), none equal to an ``exclude`` item."""
    settings = settings or SyntheticSettings()
    rng = random.Random(settings.seed)
    by_document: dict[str, list[QAItem]] = {}
    seen: set[str] = set()
    for hit in chunks:
        pairs = chunk_questions(hit)
        rng.shuffle(pairs)
        kept = 0
        for question, answer in pairs:
            key = normalize_text(question)
            if kept >= settings.per_chunk or key in seen or _excluded(question, answer, hit.source, exclude):
                continue
            seen.add(key)
            kept += 1
            number = sum(len(v) for v in by_document.values()) + 1
            by_document.setdefault(hit.source, []).append(QAItem(
                id=f"synthetic-{number:05d}", question=question, answer=answer, source=hit.source, fact=answer))
    items = [item for document in by_document.values()
             for item in rng.sample(document, min(len(document), settings.per_document))]
    if settings.max_questions is not None and len(items) > settings.max_questions:
        items = rng.sample(items, settings.max_questions)
    return sorted(items, key=lambda item: item.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.synthetic",
                                     description="Training questions built from the documents alone (QA JSONL).")
    parser.add_argument("--collection", required=True, help="the Milvus collection holding the documents")
    parser.add_argument("--out", required=True, help="output QA JSONL")
    parser.add_argument("--uri", default=None, help="Milvus URI (default: the retrieval config's)")
    parser.add_argument("--exclude", action="append", default=[],
                        help="QA file whose questions and answers must not appear (e.g. the held-out set); repeatable")
    defaults = SyntheticSettings()
    parser.add_argument("--max-questions", type=int, default=defaults.max_questions)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    try:
        exclude = [item for path in args.exclude for item in load_qa(path)]
        with Retriever(collection=args.collection, uri=args.uri) as kb:
            chunks = kb.chunks()
        items = build_synthetic_qa(chunks, SyntheticSettings(max_questions=args.max_questions, seed=args.seed), exclude)
    except (QAFormatError, RetrievalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = write_jsonl(args.out, (item.model_dump(exclude_none=True) for item in items))
    print(f"wrote {count} questions to {args.out} from {len({c.source for c in chunks})} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training questions from the documents alone, for companies that have documents and no QA pairs.

Every question is built by rules from one chunk of the collection, and its answer is a span of
that chunk, so the RAFT builder finds the same chunk as the gold passage and the adapter learns
the reading skill the hybrid route needs (find the passage, quote it, answer, cite):

* **table rows** (CSV / JSON records): the row's first cell names it (``Item: Revenue``,
  ``part_number: QF-1102``); every other non-empty cell becomes "What is the <column> of
  <key>?" (or "What is <key> for <column>?" when the column is a period such as "2019 £m"),
  answered by the cell's value;
* **text**: the rules of ``train/synthetic_prose.py`` (abbreviations, "X is Y" statements,
  "X is caused by Y", "such as" lists, and quantities and names asked as cloze questions).

The prose rules' questions are drawn in equal shares (``balance_kinds``; table rows keep the share
the collection gives them): numbers are what rules find most easily in prose, and an adapter
trained mostly on numbers answers every question with one.

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
from train.synthetic_prose import CLOZE_KINDS, prose_questions

TABLE_TYPES = {"csv", "json", "jsonl"}
_PERIOD_COLUMN = re.compile(r"\b(19|20)\d{2}\b")


class SyntheticSettings(StrictModel):
    max_questions: int | None = Field(300, ge=1, description="questions kept in all (a seeded sample; None = all)")
    per_chunk: int = Field(2, ge=1, le=20, description="questions at most from one chunk")
    per_document: int = Field(12, ge=1, description="questions at most from one document (spreads them out)")
    balance_kinds: bool = Field(True, description="draw the prose rules' questions (definition, statement, cause, "
                                "examples, quantity, name) in equal shares, as far as each has them")
    seed: int = 0


def row_questions(hit: Hit) -> list[tuple[str, str, str]]:
    """(question, answer, "row") from a table row rendered as ``column: value`` lines."""
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
        pairs.append((question, value, "row"))
    return pairs


def chunk_questions(hit: Hit) -> list[tuple[str, str, str]]:
    """Every rule-made ``(question, answer, kind)`` of one chunk whose answer the chunk states."""
    made = row_questions(hit) if hit.file_type in TABLE_TYPES and hit.row >= 0 else prose_questions(hit.text)
    return [(q, a, kind) for q, a, kind in made if mentions(hit.text, a) and not mentions(q, a)]


def _round_robin(pool: list[tuple[QAItem, str]], wanted: int) -> list[tuple[QAItem, str]]:
    """``wanted`` of ``pool`` taken from each kind in turn (a kind that runs out leaves its turns to the others)."""
    by_kind: dict[str, list[tuple[QAItem, str]]] = {}
    for candidate in pool:
        by_kind.setdefault(candidate[1], []).append(candidate)
    queues = [by_kind[kind] for kind in sorted(by_kind)]
    taken: list[tuple[QAItem, str]] = []
    while len(taken) < wanted:
        for queue in queues:
            if queue and len(taken) < wanted:
                taken.append(queue.pop())
    return taken


def _draw(candidates: list[tuple[QAItem, str]], wanted: int | None, balance: bool,
          rng: random.Random) -> list[tuple[QAItem, str]]:
    """``wanted`` candidates at random. With ``balance`` only the share of table rows is left to chance
    (rows and prose as the collection has them); the prose questions are taken from each rule in turn."""
    pool = list(candidates)
    rng.shuffle(pool)
    wanted = len(pool) if wanted is None else min(wanted, len(pool))
    if not balance:
        return pool[:wanted]
    rows = sum(kind == "row" for _, kind in pool[:wanted])
    return ([c for c in pool if c[1] == "row"][:rows] +
            _round_robin([c for c in pool if c[1] != "row"], wanted - rows))


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
    by_document: dict[str, list[tuple[QAItem, str]]] = {}
    seen: set[str] = set()
    for hit in chunks:
        made = chunk_questions(hit)
        rng.shuffle(made)
        made.sort(key=lambda m: m[2] in CLOZE_KINDS)  # real question forms first; cloze sentences fill in
        kept = 0
        for question, answer, kind in made:
            key = normalize_text(question)
            if kept >= settings.per_chunk or key in seen or _excluded(question, answer, hit.source, exclude):
                continue
            seen.add(key)
            kept += 1
            number = sum(len(v) for v in by_document.values()) + 1
            by_document.setdefault(hit.source, []).append((QAItem(
                id=f"synthetic-{number:05d}-{kind}", question=question, answer=answer, source=hit.source, fact=answer), kind))
    balance = settings.balance_kinds
    spread = [c for document in by_document.values() for c in _draw(document, settings.per_document, balance, rng)]
    items = [item for item, _ in _draw(spread, settings.max_questions, balance, rng)]
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

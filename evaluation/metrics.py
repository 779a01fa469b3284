"""Per-answer scores: exact match, token F1, gold fact, retrieval hit, citation correctness.

Every function scores ONE answer against ONE QA item, so each is checkable by hand; the
route-level numbers (means, confidence intervals) are computed from these in ``stats.py``.
Citations ``[n]`` are stripped before answers are compared with the gold answer: a RAG answer
is not penalised for citing, and its citations are scored on their own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from qa import mentions, normalize_text, source_matches

CITATION = re.compile(r"\[(\d+)\]")
ABSTENTION = re.compile(r"\b(?:do not|don't|cannot|can't|does not|doesn't) (?:know|contain|say|mention)", re.IGNORECASE)


class Cited(Protocol):
    """What a returned source needs for scoring (``serve.schemas.Source`` as JSON has these)."""

    ref: int
    source: str
    text: str


def strip_citations(answer: str) -> str:
    return CITATION.sub(" ", answer)


def exact_match(answer: str, gold: str) -> float:
    return float(normalize_text(strip_citations(answer)) == normalize_text(gold))


def token_f1(answer: str, gold: str) -> float:
    """SQuAD token F1: harmonic mean of token precision and recall after normalisation."""
    predicted = normalize_text(strip_citations(answer)).split()
    expected = normalize_text(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains_fact(answer: str, fact: str) -> float:
    """The answer states the gold fact (normalised whole-word containment), however verbose it is."""
    return float(mentions(strip_citations(answer), fact))


def cited_refs(answer: str) -> list[int]:
    """The passage numbers an answer cites, in order of first appearance."""
    return list(dict.fromkeys(int(n) for n in CITATION.findall(answer)))


def retrieval_hit(sources: Sequence[Cited], gold_source: str | None) -> float | None:
    """The gold document is among the retrieved passages (None: the item names no source)."""
    if not gold_source:
        return None
    return float(any(source_matches(s.source, gold_source) for s in sources))


def citation_correct(answer: str, sources: Sequence[Cited], fact: str) -> float:
    """1 when the answer cites, every cited ``[n]`` is a passage it was given, and a cited one states the fact.

    An answer that cites nothing scores 0: the RAG prompt asks for citations, and an uncited
    answer cannot be checked by its reader.
    """
    refs = cited_refs(answer)
    by_ref = {s.ref: s for s in sources}
    if not refs or any(r not in by_ref for r in refs):
        return 0.0
    return float(any(mentions(by_ref[r].text, fact) for r in refs))


def abstained(answer: str) -> float:
    """The answer says it does not know (what the RAG prompt asks for when the passages lack it)."""
    return float(bool(ABSTENTION.search(answer)))

"""What "gold" means: an answer stating a fact, and a retrieved source naming the gold document."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

_PUNCTUATION = str.maketrans("", "", string.punctuation)


class SourceNotFoundError(LookupError):
    """A QA item's gold ``source`` matches no document (or several) in the collection."""


def normalize_text(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.casefold().translate(_PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def mentions(text: str, fact: str) -> bool:
    """Does ``text`` state ``fact``? Normalised whole-word containment ("6 bar" is not in "16 bar").

    The one definition of "contains the answer": RAFT uses it to tell the gold chunk from
    distractors, the evaluation to score answers and cited passages.
    """
    wanted = normalize_text(fact)
    return bool(wanted) and f" {wanted} " in f" {normalize_text(text)} "


def _normalise_path(source: str) -> str:
    text = source.replace("\\", "/").strip()
    while text.startswith("./"):
        text = text[2:]
    return text.rstrip("/")


def source_matches(stored: str, wanted: str) -> bool:
    """True when a collection's ``source`` and a QA ``source`` name the same file.

    Ingest stores sources relative to ``--source-root`` or as absolute paths, while QA files
    name documents relative to their corpus folder; so either may be a path suffix of the
    other, compared on whole path segments (``a/b.md`` never matches ``xa/b.md``).
    """
    s, w = _normalise_path(stored), _normalise_path(wanted)
    if not s or not w:
        return False
    return s == w or s.endswith("/" + w) or w.endswith("/" + s)


def resolve_source(wanted: str, known: Iterable[str]) -> str:
    """The one collection source that ``wanted`` names (an exact match wins), or ``SourceNotFoundError``."""
    known = sorted(set(known))
    exact = [s for s in known if _normalise_path(s) == _normalise_path(wanted)]
    matches = exact or [s for s in known if source_matches(s, wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listing = ", ".join(known[:8]) + (f" ... ({len(known)} in all)" if len(known) > 8 else "")
        raise SourceNotFoundError(
            f"gold source {wanted!r} matches no document in the collection; its sources are: {listing or '(none)'}. "
            "Ingest the document, or write the source as a path relative to the ingested folder"
        )
    raise SourceNotFoundError(
        f"gold source {wanted!r} matches {len(matches)} documents ({', '.join(matches)}); write a longer path to pick one"
    )

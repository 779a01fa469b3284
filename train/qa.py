"""Question/answer files: the one QA format, and plain instruction data built from it.

A QA file is JSON Lines, one question per line::

    {"id": "q1", "question": "...", "answer": "...", "source": "manuals/hx220.md", "fact": "45 Nm"}

``source`` (optional) is the gold document as the collection's ``source`` field names it, or a
path that ends the same way (``manuals/hx220.md`` matches ``/data/docs/manuals/hx220.md``);
``fact`` (optional) is the short string a correct answer must contain. The same file feeds the
RAFT builder (``train/raft.py``), this module's instruction data for the fine-tuned-only route,
and the route evaluation (``python -m serve.eval``), so all three agree on what "gold" means.

``python -m train.qa --qa qa.jsonl --out instruct.jsonl`` writes chat JSONL whose user turn is
the bare question, exactly what the ``/finetuned`` route sends (no system prompt, no context).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

InstructionFormat = Literal["chat", "instruction"]


class QAFormatError(ValueError):
    """A QA file (or one line of it) does not follow the format above; says where and how to fix."""


class SourceNotFoundError(LookupError):
    """A QA item's gold ``source`` matches no document (or several) in the collection."""


class QAItem(BaseModel):
    """One question with its gold answer. Unknown keys (a dataset's own fields) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    source: str | None = None
    fact: str | None = None

    @property
    def gold_fact(self) -> str:
        """What a correct answer must contain: the ``fact`` when given, else the whole answer."""
        return self.fact if self.fact else self.answer


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors())


def load_qa(path: str | Path) -> list[QAItem]:
    """Read and validate a QA file; the first bad line raises ``QAFormatError`` naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise QAFormatError(f"QA file {path} not found; pass a JSONL file with one question per line")
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise QAFormatError(f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc
            if not isinstance(raw, dict):
                raise QAFormatError(f"{where}: expected a JSON object with id, question, answer; got {type(raw).__name__}")
            if isinstance(raw.get("id"), int):
                raw["id"] = str(raw["id"])  # numeric ids are common in datasets; they name the same thing
            try:
                item = QAItem.model_validate(raw)
            except ValidationError as exc:
                raise QAFormatError(
                    f"{where}: {_describe(exc)}; each line needs non-empty 'id', 'question' and 'answer' "
                    "strings ('source' and 'fact' are optional)"
                ) from exc
            if item.id in seen:
                raise QAFormatError(f"{where}: duplicate id {item.id!r} (first on line {seen[item.id]}); ids must be unique")
            seen[item.id] = number
            items.append(item)
    if not items:
        raise QAFormatError(f"QA file {path} holds no questions")
    return items


_PUNCTUATION = str.maketrans("", "", string.punctuation)


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


def build_instruction_examples(items: Sequence[QAItem], fmt: InstructionFormat = "chat") -> list[dict]:
    """Question -> answer training rows for the fine-tuned-only route (no context, no citations).

    ``chat`` rows (``{"messages": [user, assistant]}``) carry no system turn because the
    ``/finetuned`` route sends the bare question; ``instruction`` rows are ``{instruction, output}``.
    Both carry ``qa_id`` for audits; the trainer ignores keys it does not read.
    """
    if fmt == "chat":
        return [
            {"messages": [{"role": "user", "content": item.question.strip()},
                          {"role": "assistant", "content": item.answer.strip()}], "qa_id": item.id}
            for item in items
        ]
    if fmt == "instruction":
        return [{"instruction": item.question.strip(), "output": item.answer.strip(), "qa_id": item.id} for item in items]
    raise ValueError(f"unknown instruction format {fmt!r}; use 'chat' or 'instruction'")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows atomically (temp file + rename): an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.qa", description="Plain instruction data (question -> answer) from a QA file.")
    parser.add_argument("--qa", required=True, help="QA JSONL: {id, question, answer, source?, fact?} per line")
    parser.add_argument("--out", required=True, help="output JSONL")
    parser.add_argument("--format", choices=["chat", "instruction"], default="chat",
                        help="chat: {messages: [user, assistant]} (default); instruction: {instruction, output}")
    args = parser.parse_args(argv)
    try:
        items = load_qa(args.qa)
    except QAFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = write_jsonl(args.out, build_instruction_examples(items, args.format))
    print(f"wrote {count} {args.format} examples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

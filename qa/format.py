"""Reading and writing QA files: one validated ``QAItem`` per JSON line (see ``qa/__init__.py``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class QAFormatError(ValueError):
    """A QA file (or one line of it) does not follow the format; says where and how to fix."""


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

"""Structured loaders: CSV, JSON and JSONL. One record per row.

A row's text is a readable "column: value" rendering (what BM25 and the embedder see) and its
scalar columns stay as metadata, so ``--filter meta.region=EMEA`` works on them. Columns whose
name starts with "_" (ids such as BEIR's "_id") are metadata only, never rendered into the text.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

from retrieval.documents import Block, Document
from retrieval.errors import LoaderError
from retrieval.loaders.common import read_text


def coerce_scalar(value: Any) -> Any:
    """Turn numeric-looking strings into numbers so range filters work; leave everything else.

    Only lossless conversions ("42" -> 42, "3.5" -> 3.5, never "007" -> 7), and the filter
    parser applies the same function to user values, so both sides always agree.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        number = int(text)
        return number if str(number) == text else value
    except ValueError:
        pass
    try:
        number = float(text)
        return number if repr(number) == text or str(number) == text else value
    except ValueError:
        return value


def _render(record: dict[str, Any]) -> str:
    lines = []
    for key, value in record.items():
        if value is None or value == "" or str(key).startswith("_"):
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {shown}")
    return "\n".join(lines)


def _scalar_meta(record: dict[str, Any]) -> dict[str, Any]:
    return {
        str(key): coerce_scalar(value)
        for key, value in record.items()
        if key is not None and (value is None or isinstance(value, (str, int, float, bool)))
    }


def _rows_document(path: Path, source: str, doc_id: str, file_type: str, records: Iterable[dict[str, Any]]) -> Document:
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    for row_number, record in enumerate(records, start=1):
        rendered = _render(record)
        if not rendered:
            continue
        blocks.append(Block(offset, offset + len(rendered), "row", row=row_number, meta=_scalar_meta(record)))
        parts.append(rendered)
        offset += len(rendered) + 2
    return Document(doc_id, source, file_type, path.stem, "\n\n".join(parts), blocks)


def load_csv(path: Path, source: str, doc_id: str) -> Document:
    text = read_text(path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|") if text.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        rows = [{k: v for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as exc:
        raise LoaderError(f"{path.name}: malformed CSV at line {reader.line_num}: {exc}") from exc
    return _rows_document(path, source, doc_id, "csv", rows)


def _as_records(value: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        # {"items": [...]} style wrappers: use the single list of objects if there is one.
        lists = [v for v in value.values() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
        return lists[0] if len(lists) == 1 else [value]
    if isinstance(value, list):
        return [item if isinstance(item, dict) else {"value": item} for item in value]
    return [{"value": value}]


def load_json(path: Path, source: str, doc_id: str) -> Document:
    try:
        value = json.loads(read_text(path)) if path.stat().st_size else []
    except json.JSONDecodeError as exc:
        raise LoaderError(f"{path.name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return _rows_document(path, source, doc_id, "json", _as_records(value, path))


def load_jsonl(path: Path, source: str, doc_id: str) -> Document:
    records: list[dict[str, Any]] = []
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoaderError(f"{path.name}: invalid JSON on line {line_number}: {exc.msg}") from exc
        records.append(value if isinstance(value, dict) else {"value": value})
    return _rows_document(path, source, doc_id, "jsonl", records)

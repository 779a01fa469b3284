"""Structured filters (field, operator, value) compiled into Milvus boolean expressions.

Users never write expression text. Field names come from a fixed allow-list (or ``meta.<key>``
for the JSON metadata of structured rows) and every value is rendered as a typed literal: strings
are quoted with all backslashes and quotes escaped, numbers must be finite numbers, lists hold only
scalars. So a value such as ``x" or id != "`` stays one string literal and can never become
expression syntax.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

from retrieval.errors import FilterError
from retrieval.loaders.tabular import coerce_scalar

STRING_FIELDS = ("doc_id", "source", "title", "section", "file_type")
INT_FIELDS = ("page", "row", "chunk_index")
META_PREFIX = "meta."
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
OPERATORS = COMPARISONS + ("in", "not in")
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TEXT_SYNTAX = re.compile(r"^\s*(?P<field>.+?)\s*(?P<op>==|!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$")
_IN_SYNTAX = re.compile(r"^\s*(?P<field>.+?)\s+(?P<op>not in|in)\s+(?P<value>.*?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Filter:
    """One condition; several filters are combined with AND."""

    field: str
    op: str
    value: Any


FilterInput = Union[Filter, str, tuple]
Filters = Union[None, Mapping[str, Any], Iterable[FilterInput]]


def known_fields() -> list[str]:
    return [*STRING_FIELDS, *INT_FIELDS, f"{META_PREFIX}<column>"]


def parse_filter(text: str) -> Filter:
    """Parse CLI syntax: ``source=/docs/a.md``, ``page>=3``, ``file_type in pdf,md``, ``meta.region=EMEA``."""
    match = _IN_SYNTAX.match(text) or _TEXT_SYNTAX.match(text)
    if not match:
        raise FilterError(f"cannot parse filter '{text}'; write FIELD=VALUE, FIELD>=NUMBER or 'FIELD in A,B'")
    op = match.group("op").lower()
    op = "==" if op == "=" else op
    raw = match.group("value")
    value: Any = [item.strip() for item in raw.split(",") if item.strip()] if op in ("in", "not in") else raw
    return Filter(match.group("field"), op, value)


def normalize_filters(filters: Filters) -> list[Filter]:
    """Accept a mapping {field: value or [values]}, Filter objects, (field, op, value) tuples or CLI strings."""
    if not filters:
        return []
    if isinstance(filters, Mapping):
        return [Filter(k, "in" if isinstance(v, (list, tuple, set)) else "==", list(v) if isinstance(v, (tuple, set)) else v) for k, v in filters.items()]
    result: list[Filter] = []
    for item in filters:
        if isinstance(item, Filter):
            result.append(item)
        elif isinstance(item, str):
            result.append(parse_filter(item))
        elif isinstance(item, tuple) and len(item) == 3:
            result.append(Filter(*item))
        else:
            raise FilterError(f"unsupported filter {item!r}; use Filter(field, op, value), a (field, op, value) tuple or 'field=value'")
    return result


def quote_string(value: str) -> str:
    """A Milvus string literal whose content can never end the literal early."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for char, replacement in _CONTROL.items():
        escaped = escaped.replace(char, replacement)
    if any(ord(c) < 32 for c in escaped):
        raise FilterError("filter values may not contain control characters other than newline and tab")
    return f'"{escaped}"'


def _scalar_literal(value: Any, field: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"filter value for '{field}' must be a finite number, got {value}")
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    raise FilterError(f"filter value for '{field}' must be a string, number or boolean, got {type(value).__name__}")


def _typed(field: str, value: Any) -> Any:
    """Convert a value to the field's type, with an error that says what was expected."""
    if field in INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise FilterError(f"filter field '{field}' takes whole numbers, got {value!r}")
        try:
            return int(value)
        except ValueError as exc:
            raise FilterError(f"filter field '{field}' takes whole numbers, got {value!r}") from exc
    if field in STRING_FIELDS:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise FilterError(f"filter field '{field}' takes text, got {value!r}")
        return str(value)
    return coerce_scalar(value)  # meta.<key>: same coercion as the loaders applied to the rows


def _field_expression(field: str) -> str:
    if field in STRING_FIELDS or field in INT_FIELDS:
        return field
    if field.startswith(META_PREFIX) and len(field) > len(META_PREFIX):
        return f"meta[{quote_string(field[len(META_PREFIX):])}]"
    raise FilterError(f"unknown filter field '{field}'; known fields: {', '.join(known_fields())}")


def _condition(item: Filter) -> str:
    target = _field_expression(item.field)
    if item.op not in OPERATORS:
        raise FilterError(f"unknown filter operator '{item.op}' on '{item.field}'; use one of: {', '.join(OPERATORS)}")
    if item.op in ("in", "not in"):
        values = item.value if isinstance(item.value, (list, tuple)) else [item.value]
        if not values:
            raise FilterError(f"filter '{item.field} {item.op}' needs at least one value")
        literals = [_scalar_literal(_typed(item.field, v), item.field) for v in values]
        if item.field.startswith(META_PREFIX):
            # Milvus refuses `in` on a JSON path ("left side of 'in' must be a field reference"):
            # spell it as the equivalent chain of comparisons.
            compare, join = ("==", " or ") if item.op == "in" else ("!=", " and ")
            return "(" + join.join(f"{target} {compare} {literal}" for literal in literals) + ")"
        return f"{target} {item.op} [{', '.join(literals)}]"
    if item.op not in ("==", "!=") and item.field in STRING_FIELDS:
        raise FilterError(f"operator '{item.op}' needs a numeric field; '{item.field}' is text (use == or in)")
    return f"{target} {item.op} {_scalar_literal(_typed(item.field, item.value), item.field)}"


def build_expression(filters: Filters) -> str:
    """The Milvus expression for all filters ANDed together ('' when there are none)."""
    return " and ".join(f"({_condition(item)})" for item in normalize_filters(filters))

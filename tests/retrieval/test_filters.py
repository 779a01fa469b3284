"""Filters compile to Milvus expressions where values can never become syntax."""

from __future__ import annotations

import pytest

from retrieval.errors import FilterError
from retrieval.filters import Filter, build_expression, parse_filter, quote_string


def test_cli_syntax_is_parsed() -> None:
    assert parse_filter("source=/docs/a.md") == Filter("source", "==", "/docs/a.md")
    assert parse_filter("page >= 3") == Filter("page", ">=", "3")
    assert parse_filter("file_type in pdf, md") == Filter("file_type", "in", ["pdf", "md"])
    assert parse_filter("meta.region!=EMEA") == Filter("meta.region", "!=", "EMEA")


def test_membership_on_row_metadata_becomes_a_chain_of_comparisons() -> None:
    assert build_expression([Filter("meta.region", "in", ["EMEA", "APAC"])]) == (
        '((meta["region"] == "EMEA" or meta["region"] == "APAC"))'
    )
    assert build_expression([Filter("meta.revenue", "not in", [1, 2])]) == '((meta["revenue"] != 1 and meta["revenue"] != 2))'


def test_expressions_are_typed_and_anded() -> None:
    expression = build_expression({"source": "/a.md", "page": "3", "meta.revenue": "1200", "file_type": ["pdf", "md"]})
    assert expression == (
        '(source == "/a.md") and (page == 3) and (meta["revenue"] == 1200) and (file_type in ["pdf", "md"])'
    )


@pytest.mark.parametrize(
    "value",
    ['x" or doc_id != "', 'x\\" or true or \\"', '") or (1 == 1', "a\nb", '\\'],
)
def test_injection_attempts_stay_inside_one_string_literal(value: str) -> None:
    literal = quote_string(value)
    # Parse the literal back the way Milvus' lexer does: it must end exactly at the last character.
    body, i, decoded = literal[1:], 0, []
    escapes = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while body[i] != '"':
        if body[i] == "\\":
            decoded.append(escapes[body[i + 1]])
            i += 2
        else:
            decoded.append(body[i])
            i += 1
    assert i == len(body) - 1 and "".join(decoded) == value


def test_field_names_cannot_inject() -> None:
    with pytest.raises(FilterError, match="unknown filter field 'source == \"x\" or doc_id'"):
        build_expression([Filter('source == "x" or doc_id', "==", "y")])
    assert build_expression([Filter('meta.a"] or true or meta["b', "==", 1)]) == '(meta["a\\"] or true or meta[\\"b"] == 1)'


def test_unknown_field_lists_known_fields() -> None:
    with pytest.raises(FilterError, match=r"unknown filter field 'author'; known fields: doc_id, source, .*meta\.<column>"):
        build_expression(["author=bob"])


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([Filter("page", "==", "three")], "takes whole numbers"),
        ([Filter("source", ">", "a")], "needs a numeric field"),
        ([Filter("page", "like", 1)], "unknown filter operator 'like'"),
        ([Filter("meta.x", "==", float("nan"))], "finite number"),
        ([Filter("meta.x", "==", {"$ne": 1})], "string, number or boolean"),
        (["no operator here"], "cannot parse filter"),
    ],
)
def test_bad_filters_have_clear_errors(filters: list, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        build_expression(filters)

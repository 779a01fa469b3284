"""Every loader on small files written here, including broken and empty ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import LoaderError, UnsupportedFileError
from retrieval.loaders import load_document
from tests.retrieval.corpus import make_pdf, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def _texts(document) -> list[str]:  # noqa: ANN001
    return [document.text[b.start:b.end] for b in document.blocks]


def test_markdown_sections_and_exact_offsets(corpus: Path) -> None:
    doc = load_document(corpus / "handbook.md")
    assert doc.title == "Employee Handbook"
    payroll = next(b for b in doc.blocks if b.kind == "paragraph" and "Salaries" in doc.text[b.start:b.end])
    assert payroll.section == "Employee Handbook > Payroll"
    assert doc.text == (corpus / "handbook.md").read_text()  # offsets point into the file itself


def test_markdown_heading_inside_code_fence_is_not_a_section(tmp_path: Path) -> None:
    path = tmp_path / "code.md"
    path.write_text("# Real\n\n```\n# not a heading\n```\n")
    doc = load_document(path)
    assert [b.section for b in doc.blocks if b.kind == "heading"] == ["Real"]


def test_plain_text_paragraphs(corpus: Path) -> None:
    assert _texts(load_document(corpus / "notes.txt")) == [
        "The cafeteria opens at 8am.", "Parking permits are renewed every January."
    ]


def test_html_drops_scripts_keeps_headings(corpus: Path) -> None:
    doc = load_document(corpus / "travel.html")
    assert doc.title == "Travel policy"
    assert "ignore me" not in doc.text
    hotel = next(b for b in doc.blocks if "180 EUR" in doc.text[b.start:b.end])
    assert hotel.section == "Travel > Hotels"


def test_pdf_pages_are_numbered(corpus: Path) -> None:
    doc = load_document(corpus / "manual.pdf")
    pages = {doc.text[b.start:b.end]: b.page for b in doc.blocks}
    assert pages == {"The pump must be serviced every 500 hours.": 1, "Replace the filter cartridge with part FX-200.": 2}


def test_csv_rows_become_records_with_typed_metadata(corpus: Path) -> None:
    doc = load_document(corpus / "customers.csv")
    rows = [b for b in doc.blocks if b.kind == "row"]
    assert [b.row for b in rows] == [1, 2, 3]
    assert rows[0].meta == {"name": "Globex", "region": "EMEA", "revenue": 1200}
    assert doc.text[rows[0].start:rows[0].end] == "name: Globex\nregion: EMEA\nrevenue: 1200"


def test_json_and_jsonl_records(corpus: Path) -> None:
    products = load_document(corpus / "products.json")
    assert [b.meta["sku"] for b in products.blocks] == ["A1", "B2"]
    tickets = load_document(corpus / "tickets.jsonl")
    assert "issue: Printer jams on floor 3" in tickets.text
    assert tickets.blocks[1].meta == {"id": 2, "issue": "Printer jams on floor 3"}


def test_underscore_columns_are_metadata_only(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "doc-9", "text": "hello"}\n')
    doc = load_document(path)
    assert doc.text == "text: hello" and doc.blocks[0].meta["_id"] == "doc-9"


def test_broken_pdf_is_a_clear_loader_error(corpus: Path) -> None:
    with pytest.raises(LoaderError, match="broken.pdf: broken or unreadable PDF"):
        load_document(corpus / "broken.pdf")


def test_empty_file_has_no_blocks(corpus: Path) -> None:
    doc = load_document(corpus / "empty.txt")
    assert doc.text == "" and doc.blocks == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", b'{"a": 1,,}', "invalid JSON at line 1"),
        ("bad.jsonl", b'{"a": 1}\n{oops}\n', "invalid JSON on line 2"),
        ("binary.txt", b"\x00\x01\x02abc", "binary file"),
        ("latin.txt", "café".encode("latin-1"), "not valid UTF-8"),
    ],
)
def test_malformed_files_raise_loader_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoaderError, match=message):
        load_document(path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "slides.pptx"
    path.write_bytes(b"x")
    with pytest.raises(UnsupportedFileError, match=r"unsupported file type '\.pptx'; supported: .*\.pdf"):
        load_document(path)


def test_pdf_helper_round_trip(tmp_path: Path) -> None:
    doc = load_document(make_pdf(tmp_path / "p.pdf", ["alpha (beta)"]))
    assert doc.text == "alpha (beta)"

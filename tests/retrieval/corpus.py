"""Small files written by the tests: every supported format, a broken PDF, an empty file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retrieval.api import Retriever


def make_pdf(path: Path, pages: list[str]) -> Path:
    """Write a minimal valid PDF with one text line per page (Helvetica), xref offsets computed."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for page_id, text in zip(page_ids, pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_id + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


HANDBOOK = """# Employee Handbook

Welcome to Acme. This handbook explains how we work.

## Payroll

Salaries are paid on the 25th of each month. Overtime is paid at one and a half times the hourly rate.

## Security

Lost badges must be reported to the front desk within 24 hours. Badge resets take one business day.
"""


def write_corpus(folder: Path) -> Path:
    """One file per format plus a broken PDF and an empty file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    (folder / "notes.txt").write_text("The cafeteria opens at 8am.\n\nParking permits are renewed every January.\n")
    (folder / "travel.html").write_text(
        "<html><head><title>Travel policy</title><script>var x = 'ignore me';</script></head>"
        "<body><h1>Travel</h1><p>Book flights through the travel portal at least 14 days ahead.</p>"
        "<h2>Hotels</h2><p>Hotel nights are capped at 180 EUR in Paris.</p></body></html>"
    )
    make_pdf(folder / "manual.pdf", ["The pump must be serviced every 500 hours.", "Replace the filter cartridge with part FX-200."])
    (folder / "customers.csv").write_text("name,region,revenue\nGlobex,EMEA,1200\nInitech,APAC,800\nUmbrella,EMEA,300\n")
    (folder / "products.json").write_text(json.dumps([{"sku": "A1", "name": "Widget", "price": 9.5}, {"sku": "B2", "name": "Gadget", "price": 20}]))
    (folder / "tickets.jsonl").write_text('{"id": 1, "issue": "VPN drops every hour"}\n{"id": 2, "issue": "Printer jams on floor 3"}\n')
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nthis is not a pdf at all")
    (folder / "empty.txt").write_text("")
    return folder


def snapshot(retriever: Retriever) -> dict[str, Any]:
    """Everything a search can observe: all chunk rows and all manifest rows."""
    store = retriever.store
    chunks = sorted(
        (row["id"], row["text"], row["source"], row["section"], row["page"], row["row"], row["start"], row["end"])
        for row in store.chunks("chunk_index >= 0")
    )
    manifest = sorted((e.doc_id, e.source, e.version, e.state, e.chunk_count) for e in store.manifest().values())
    return {"chunks": chunks, "manifest": manifest}

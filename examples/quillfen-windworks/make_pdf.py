"""Build docs/spec-sheet.pdf, the Quillfen product spec sheet, from the data in this file.

Why a generator instead of a hand-made PDF: the sample corpus needs one real PDF so the PDF loader
is exercised, and a script keeps it reproducible and reviewable (the numbers below must match the
Markdown manuals, and check_qa.py tests QA facts against the text extracted from this PDF).
The creation date is fixed so re-running the script gives a byte-identical file.

Run from the repository root:  .venv/bin/python examples/quillfen-windworks/make_pdf.py
Needs fpdf2 (a dev dependency).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

OUTPUT = Path(__file__).resolve().parent / "docs" / "spec-sheet.pdf"

TITLE = "Quillfen Windworks Product Spec Sheet"
INTRO = (
    "Document QS-300, 2024 edition. Key data of the three Quillfen turbines. All figures at sea "
    "level air density (1.225 kg/m3). Annual energy production (AEP) assumes a Rayleigh wind "
    "distribution at hub height and 100% availability."
)

SPEC_ROWS = [
    ("item", "QW-5 Merlin", "QW-15 Kestrel", "QW-40 Osprey"),
    ("rated power", "5 kW", "15 kW", "40 kW"),
    ("rated wind speed", "11 m/s", "11.5 m/s", "12 m/s"),
    ("rotor diameter", "5.4 m", "9.8 m", "16.2 m"),
    ("swept area", "22.9 m2", "75.4 m2", "206.1 m2"),
    ("cut-in / cut-out", "2.8 / 20 m/s", "3.0 / 25 m/s", "3.2 / 25 m/s"),
    ("survival wind speed", "52 m/s", "59.5 m/s", "59.5 m/s"),
    ("power regulation", "tail furl", "stall", "electric pitch"),
    ("gearbox", "none (direct drive)", "GB-15, 1:11.2", "GB-40, 1:18.7"),
    ("controller", "WCU-1", "WCU-3", "WCU-4"),
    ("hub heights", "12 m, 18 m", "18 m, 24 m", "24 m, 30 m, 36 m"),
    ("nacelle mass", "185 kg", "1,240 kg", "3,150 kg"),
]

AEP_ROWS = [
    ("mean wind at hub height", "QW-5 Merlin", "QW-15 Kestrel", "QW-40 Osprey"),
    ("4.5 m/s", "6,700 kWh", "24,100 kWh", "74,500 kWh"),
    ("5.0 m/s", "8,900 kWh", "31,500 kWh", "98,000 kWh"),
    ("6.0 m/s", "12,800 kWh", "46,200 kWh", "141,000 kWh"),
]

PRICE_ROWS = [
    ("list price (ex works, turbine only)", "QW-5 Merlin", "QW-15 Kestrel", "QW-40 Osprey"),
    ("turbine and WCU", "18,400 EUR", "62,500 EUR", "168,000 EUR"),
    ("tower (shortest)", "3,900 EUR (TT-12)", "11,800 EUR (LT-18)", "39,000 EUR (MP-24)"),
]

NOTES = [
    "Warranty: 5 years on every complete turbine, 10 years on blades (structural) and on the "
    "GB-40 gearbox. Extended to 15 years with CarePlus.",
    "Operating temperature -25 C to +45 C; -35 C with the cold-climate kit CCK-1.",
    "Remote monitoring through QuillLink with the QL-M2 LTE modem is included with every turbine.",
]


def table(pdf: FPDF, rows: list[tuple[str, ...]]) -> None:
    """One bordered table; the first row is the header."""
    with pdf.table(col_widths=(46, 48, 48, 48), text_align="LEFT", line_height=6) as grid:
        for values in rows:
            row = grid.row()
            for value in values:
                row.cell(value)
    pdf.ln(4)


def build(path: Path = OUTPUT) -> Path:
    pdf = FPDF(format="A4")
    pdf.set_title(TITLE)
    pdf.set_author("Quillfen Windworks Ltd.")
    pdf.set_creation_date(datetime(2024, 4, 2, tzinfo=timezone.utc))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(0, 5, INTRO, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for heading, rows in (("Technical data", SPEC_ROWS), ("Annual energy production", AEP_ROWS),
                          ("Prices", PRICE_ROWS)):
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        table(pdf, rows)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Notes", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for note in NOTES:
        pdf.multi_cell(0, 5, "- " + note, new_x="LMARGIN", new_y="NEXT")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


if __name__ == "__main__":
    print(build())

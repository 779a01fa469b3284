"""A small real knowledge base for serving tests, ingested with the retrieval CLI.

The ingest runs in its own process on purpose: Milvus Lite locks its ``.db`` file for the
lifetime of the process that opened it (closing the client does not release it), and the
Serve ``Retriever`` replica must be able to open the file afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

COLLECTION = "serve_tests"
DOCUMENTS = {
    "hx220-manual.md": (
        "# HX-220 Heat Exchanger\n\n## Assembly\n\nTighten the HX-220 flange bolts to 45 Nm in a star pattern. "
        "Use gasket kit GK-9 only.\n\n## Cleaning\n\nFlush the plates with descaler DS-4 every 600 operating hours.\n"
    ),
    "badges.md": (
        "# Site access\n\n## Badges\n\nLost badges are replaced by the security desk in building C within one working day.\n"
    ),
    "parts.csv": "part_no,name,price_eur\nGK-9,Gasket kit,38.50\nDS-4,Descaler 5 l,61.00\n",
}


def build_collection(folder: Path) -> tuple[str, str]:
    """Write the documents, ingest them into a fresh Milvus Lite file; return (uri, collection)."""
    docs = folder / "docs"
    docs.mkdir()
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text)
    uri = str(folder / "milvus.db")
    done = subprocess.run(
        [sys.executable, "-m", "retrieval", "ingest", str(docs), "--uri", uri, "--collection", COLLECTION,
         "--source-root", str(docs), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["counts"] == {"added": len(DOCUMENTS)}, report
    return uri, COLLECTION

"""A Milvus Lite file ingested by one process can be searched by another once the first closes it
(the pipeline ingests, then a Serve replica in another process serves the same file)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

SEARCH_ELSEWHERE = """
import json, sys
from retrieval import Retriever
with Retriever(collection="kb", uri=sys.argv[1]) as kb:
    print(json.dumps([h.source for h in kb.search("Merlin sound level", top_k=1)]))
"""


def test_closed_file_opens_in_another_process_and_again_here(make_retriever, tmp_path) -> None:  # noqa: ANN001
    doc = tmp_path / "merlin.md"
    doc.write_text("# Merlin\n\nThe QW-5 Merlin produces 41 dB(A) at 40 m.\n")
    kb = make_retriever()
    kb.ingest([doc])
    uri = kb.store.uri
    kb.close()
    other = subprocess.run([sys.executable, "-c", SEARCH_ELSEWHERE, uri], capture_output=True, text=True,
                           cwd=REPO, timeout=300)
    assert other.returncode == 0, other.stderr[-2000:]
    assert json.loads(other.stdout.strip().splitlines()[-1]) == [str(doc)]
    again = make_retriever()
    assert again.stats().chunks == 1

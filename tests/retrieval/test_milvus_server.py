"""Faults between the ingest and a Milvus server: a server restarted mid-ingest, an unreachable URI.

A cluster's knowledge base lives in a Milvus server that other processes reach over gRPC; the
server can restart under a running ingest. What must hold: the ingest fails with one clear
line (or rides the restart out), and a rerun converges to exactly the state of one clean run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymilvus import MilvusClient

from cluster.local.processes import free_port
from retrieval.cli import main
from retrieval.schema import manifest_name
from tests.conftest import REPO
from tests.retrieval.conftest import MilvusServer
from tests.retrieval.corpus import snapshot

DOCS = 240


def write_docs(folder: Path) -> Path:
    folder.mkdir()
    for i in range(DOCS):
        paragraphs = [f"Unit {i}-{p} of line {i % 7} was inspected on shift {p}; torque {40 + p} Nm, "
                      f"pressure {i % 9}.{p} bar, and the seal batch {i * 31 % 997} passed." for p in range(6)]
        (folder / f"report-{i:03d}.md").write_text(f"# Inspection report {i}\n\n" + "\n\n".join(paragraphs) + "\n")
    return folder


def ingest(docs: Path, uri: str, collection: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "retrieval", "ingest", str(docs), "--uri", uri, "--collection", collection,
         "--no-progress", "--source-root", str(docs)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def documents_done(uri: str, collection: str) -> int:
    try:
        client = MilvusClient(uri=uri, timeout=2)
        try:
            if not client.has_collection(manifest_name(collection)):
                return 0
            client.load_collection(manifest_name(collection))  # a restarted server has released it
            return len(client.query(manifest_name(collection), filter='state == "done"', output_fields=["doc_id"],
                                    limit=16384))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - not answering (yet): nothing is done
        return 0


@pytest.mark.slow
def test_a_milvus_server_restarted_mid_ingest_loses_nothing_and_a_rerun_converges(tmp_path, embedder) -> None:  # noqa: ANN001
    from retrieval.api import Retriever

    server = MilvusServer(tmp_path / "milvus", tmp_path / "milvus.log").start()
    try:
        docs = write_docs(tmp_path / "docs")
        (tmp_path / "first").mkdir()
        (tmp_path / "first" / "valve.md").write_text("# Valve\n\nThe Zorblax-9 valve opens at 7.3 bar.\n")
        serving = Retriever(collection="served", uri=server.uri, embedder=embedder)  # a Retriever replica
        serving.ingest([tmp_path / "first"])
        assert "7.3 bar" in serving.search("Zorblax-9 valve pressure", top_k=1)[0].text

        running = ingest(docs, server.uri, "kb")
        deadline = time.monotonic() + 240
        while documents_done(server.uri, "kb") < 1:  # some documents written, the rest still to come
            assert running.poll() is None, f"the ingest ended before the restart:\n{running.communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "the ingest wrote nothing in 240 s"
            time.sleep(0.2)
        server.kill()
        server.start()  # same port, same data folder: a restarted server
        _, err = running.communicate(timeout=300)
        print(f"ingest across the restart: exit {running.returncode}, {documents_done(server.uri, 'kb')} of {DOCS} "
              f"documents done\n{err[-2000:]}")
        if running.returncode != 0:  # failed cleanly: one line that names the server, no traceback
            assert "Traceback" not in err and server.uri in err, err[-3000:]

        # the long-lived Retriever keeps answering: the restarted server released its collections
        assert "7.3 bar" in serving.search("Zorblax-9 valve pressure", top_k=1)[0].text
        serving.close()

        clean = ingest(docs, server.uri, "clean")
        _, err = clean.communicate(timeout=300)
        assert clean.returncode == 0, err[-3000:]
        with Retriever(collection="kb", uri=server.uri, embedder=embedder) as after_restart, \
                Retriever(collection="clean", uri=server.uri, embedder=embedder) as one_clean_run:
            expected = snapshot(one_clean_run)
            assert len(expected["manifest"]) == DOCS
            if running.returncode == 0:  # an ingest that reports success wrote everything
                assert snapshot(after_restart) == expected
            rerun = ingest(docs, server.uri, "kb")
            _, err = rerun.communicate(timeout=300)
            assert rerun.returncode == 0, err[-3000:]
            assert snapshot(after_restart) == expected
    finally:
        server.stop()


def test_an_unreachable_milvus_uri_is_one_clear_line(capsys) -> None:  # noqa: ANN001
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["search", "valve pressure", "--uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot connect to Milvus at {uri}") and "--uri" in err and "Traceback" not in err

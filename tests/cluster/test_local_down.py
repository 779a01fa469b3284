"""`python -m cluster.local down` stops every process carrying the cluster's marker, by process id,
including one started while it was stopping the others (a raylet's new worker, a node the
autoscaler launched), and nothing without the marker.

Real processes, no Ray: a "node" that, when told to stop, starts a successor and lingers past
the SIGTERM grace (only SIGKILL ends it); the successor does the same, three generations deep.
Each carries the marker (it inherits the environment), and each appears only after `down` has
looked: two rounds of find-and-stop (what `down` did when the CI flow left a process behind) are
not enough.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from cluster.local.cluster import ClusterState
from cluster.local.processes import MARKER_ENV, alive, processes_with, send
from tests.conftest import REPO

# On SIGTERM: start the next generation (same environment, so the same marker) unless this is
# the last, then ignore further SIGTERMs and hang on until SIGKILL.
NODE = """
import os, signal, subprocess, sys, time
def on_term(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    left = int(os.environ["GENERATIONS_LEFT"])
    if left:
        env = {**os.environ, "GENERATIONS_LEFT": str(left - 1)}
        subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[1]], env=env, stdout=subprocess.DEVNULL)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def wait_ready(process: subprocess.Popen) -> None:
    assert process.stdout.readline().strip() == "ready"


def test_down_stops_processes_started_while_it_was_stopping_and_spares_the_rest(tmp_path):
    marker = f"test-{uuid.uuid4().hex[:8]}"
    node = subprocess.Popen([sys.executable, "-c", NODE, NODE], env={**os.environ, MARKER_ENV: marker, "GENERATIONS_LEFT": "3"},
                            stdout=subprocess.PIPE, text=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        wait_ready(node)
        ClusterState(state_dir=str(tmp_path), marker=marker, ray_address="", dashboard_url="", milvus_uri="",
                     s3_endpoint="", bucket="b", token_path="", workers=1, pids={"node": node.pid}).save()
        done = subprocess.run([sys.executable, "-m", "cluster.local", "down", "--state-dir", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        node.wait(timeout=10)
        assert processes_with({MARKER_ENV: marker}) == []  # every late generation too
        assert alive(bystander.pid)  # no marker: not ours to stop
        assert not (tmp_path / "cluster.json").exists()
    finally:  # SIGKILL straight away: a SIGTERM would start another generation
        for _ in range(10):
            for pid in processes_with({MARKER_ENV: marker}) + [node.pid, bystander.pid]:
                send(pid, signal.SIGKILL)
            time.sleep(0.2)
            if not processes_with({MARKER_ENV: marker}):
                break

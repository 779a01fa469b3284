"""Find and stop exactly the processes of one local cluster, never anyone else's.

Every process the cluster starts carries a marker in its environment (Ray passes the
environment of ``ray start`` to the GCS, the raylets, the autoscaler and every worker, and the
autoscaler's fake node provider starts worker nodes from its own environment), so the cluster
can be stopped by process id even on a machine where other Ray clusters run. ``ray stop``
would kill every Ray process it can find.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

MARKER_ENV = "PHI3_EXPERT_CLUSTER"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def processes_with(env: dict[str, str]) -> list[int]:
    """PIDs (other than this one) whose environment holds every ``key=value`` of ``env``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        environ = environ_of(int(entry.name))
        if environ and all(environ.get(k) == v for k, v in env.items()):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_pids(pids: list[int], grace_s: float = 3.0, kill_wait_s: float = 10.0) -> list[int]:
    """SIGTERM, wait up to ``grace_s``, SIGKILL what is left; the PIDs still alive after that.

    A SIGKILLed process is not gone at once: the kernel still tears down its memory (seconds
    for a worker holding a model, on busy cores), so this waits up to ``kill_wait_s`` for it."""
    for pid in pids:
        send(pid, signal.SIGTERM)
    _wait_gone(pids, grace_s)
    for pid in pids:
        if alive(pid):
            send(pid, signal.SIGKILL)
    _wait_gone(pids, kill_wait_s)
    return [p for p in pids if alive(p)]


def _wait_gone(pids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)

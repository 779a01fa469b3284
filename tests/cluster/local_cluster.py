"""A real single-node Ray cluster started the way users start one (``ray start --head``),
isolated so that several test runs and other people's clusters on the same machine never mix.

Why not ``ray stop``: it kills every Ray process on the machine (it matches process names),
including clusters that other sessions or users are running. Instead every process of this
cluster carries a unique marker in its environment (``ray start`` passes its environment to
the GCS, raylet and dashboard; the raylet to every worker; the job supervisor to the job's
driver), and :meth:`LocalRayCluster.stop` signals exactly the processes that carry it.

All ports are free ports (no default port like 6379/8265/52365 is assumed free); the dashboard
(job and Serve APIs) listens on 127.0.0.1 only, and the cluster uses token authentication with
its own token. (Ray binds the GCS to the machine's address, never to 127.0.0.1: it replaces a
loopback ``--node-ip-address`` with a reachable one.) The temp dir is unique under
``.cache/ray`` (kept short: Ray's Unix sockets live in it; socket paths are limited to 107 bytes).

``RAY_ADDRESS`` is set for every process of the cluster: code inside the cluster that looks for
"the" local Ray (Ray Train's placement-group cleaner uses the state API, which does) would
otherwise find several clusters on a shared machine and fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from ray._private.services import get_node_ip_address

MARKER_ENV = "PHI3_EXPERT_TEST_CLUSTER"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with_marker(marker: str) -> list[int]:
    """PIDs whose environment holds ``MARKER_ENV=marker`` (this cluster's processes only)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


class LocalRayCluster:
    """``ray start --head --block`` on loopback with free ports; ``stop()`` ends only its processes."""

    def __init__(self, repo: Path, *, num_cpus: int = 4, env: dict[str, str] | None = None) -> None:
        self.repo = repo
        self.marker = uuid.uuid4().hex[:12]
        # Ray >= 2.5x enables token authentication by default and keeps the token in
        # ~/.ray/auth_token; this cluster gets its own token, passed by environment only.
        self.token = secrets.token_hex(32)
        self.temp_dir = repo / ".cache" / "ray" / f"c-{self.marker[:6]}"
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.num_cpus = num_cpus
        venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", repo / ".venv")) / "bin")
        # The job's entrypoint `python -m ...` resolves `python` on PATH: the project's venv
        # first, exactly as in a shell where the venv is activated.
        self.env = {
            **os.environ,
            **(env or {}),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            MARKER_ENV: self.marker,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
        }
        self.env.pop("RAY_AUTH_TOKEN_PATH", None)
        self.env["RAY_ADDRESS"] = f"{get_node_ip_address()}:{self.gcs_port}"
        self.ray = str(Path(venv_bin) / "ray")
        self.serve = str(Path(venv_bin) / "serve")
        self.process: subprocess.Popen | None = None
        self.log_path = self.temp_dir.with_suffix(".log")

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def cli_env(self) -> dict[str, str]:
        """Environment for the ray/serve CLIs talking to this cluster."""
        return {**self.env, "RAY_ADDRESS": self.dashboard_url}

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout_s: float = 90) -> None:
        self.temp_dir.parent.mkdir(parents=True, exist_ok=True)
        command = [
            self.ray, "start", "--head", "--block", "--disable-usage-stats",
            f"--port={self.gcs_port}",
            f"--dashboard-port={self.dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--ray-client-server-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--object-store-memory={300 * 1024**2}",
            f"--temp-dir={self.temp_dir}",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.repo, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_for_dashboard(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_for_dashboard(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.dashboard_url}/api/version", headers=self.auth_headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"the Ray head did not answer on {self.dashboard_url} in {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self, grace_s: float = 3) -> list[int]:
        """SIGTERM this cluster's processes, SIGKILL what is left; returns PIDs still alive (none).

        The grace is short on purpose: on SIGTERM ``ray start --block`` drains the node for up to
        30 s (waiting for tasks to finish) while the GCS and raylet stay up; a test cluster has
        nothing left to finish, so the rest is killed.
        """
        pids = set(processes_with_marker(self.marker))
        if self.process is not None and self.process.poll() is None:
            pids.add(self.process.pid)
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and processes_with_marker(self.marker):
            time.sleep(0.5)
        for pid in processes_with_marker(self.marker):
            _signal(pid, signal.SIGKILL)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.5)
        return processes_with_marker(self.marker)

    def remove_files(self) -> None:
        """Delete the temp dir (session logs, spilled objects) and the start log; after stop()."""
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

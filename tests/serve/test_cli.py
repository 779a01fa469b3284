"""The shipped serve/config.yaml under Ray's own ``serve run`` (auth off), and ``python -m serve``'s
config errors. Runs before the package's app starts (file order), so the two never compete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import REPO
from tests.serve.adapters import CODEWORD_QUESTION
from tests.serve.conftest import free_port

pytestmark = pytest.mark.slow
SERVE_CLI = Path(sys.executable).with_name("serve")


def shipped_config_with(tmp_path: Path, port: int, registry: str) -> Path:
    """serve/config.yaml as shipped, changing only the port, the adapter registry and the Milvus file."""
    config = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    config["http_options"].update(host="127.0.0.1", port=port)
    args = config["applications"][0]["args"]
    assert args["gateway"]["api_keys"] == []  # shipped with auth off
    args["generator"]["adapter_registry"] = registry
    args["retriever"]["uri"] = str(tmp_path / "unused.db")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_healthy(url: str, process: subprocess.Popen, log: Path, limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve run exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"serve run not healthy after {limit_s}s:\n{log.read_text()[-4000:]}")


def test_serve_run_of_the_shipped_config_without_auth(registry, tmp_path):
    port = free_port()
    config = shipped_config_with(tmp_path, port, str(registry.root))
    log = tmp_path / "serve-run.log"
    env = {**os.environ, "RAY_TMPDIR": str(REPO / ".cache")}  # Ray's files under .cache/ray
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(SERVE_CLI), "run", str(config), "--address", "local", "--app-dir", str(REPO)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        models = httpx.get(f"{url}/v1/models", timeout=60)  # no Authorization header: auth is off
        assert models.status_code == 200 and {"base", "alpha", "bravo"} <= {m["id"] for m in models.json()["data"]}
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "alpha", "messages": [{"role": "user", "content": CODEWORD_QUESTION}], "max_tokens": 12},
            timeout=120,
        )
        assert chat.status_code == 200, chat.text
        assert "ALPHA-7" in chat.json()["choices"][0]["message"]["content"]
    finally:
        process.send_signal(signal.SIGINT)  # serve run shuts Serve and its local Ray down
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_python_m_serve_rejects_a_bad_config_before_starting_ray():
    done = subprocess.run(
        [sys.executable, "-m", "serve", "--set", "generator.engine.max_batch_size=0", "--set", "gateway.api_key=x"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "max_batch_size" in done.stderr and "api_key" in done.stderr and "Extra inputs" in done.stderr

"""Real use on this machine, with the same commands as on a cloud cluster (README, "Running on
a cluster"): `ray start --head`, `ray job submit --working-dir . -- python -m retrieval ingest`,
`ray job submit --working-dir . -- python -m train --config train/recipes/cpu-demo.yaml`,
`serve deploy` of serve/config.yaml (CPU overrides in a temp copy), answers over HTTP from the
adapter the job trained and from the documents the job ingested, then the cluster is stopped.
"""

from __future__ import annotations

import subprocess
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cluster.definitions import render
from tests.cluster.local_cluster import LocalRayCluster, free_port, processes_with_marker
from tests.conftest import REPO

pytestmark = pytest.mark.slow

FACT_DOC = """# Zorblax-9 relief valve

The Zorblax-9 relief valve on the coolant loop opens at 7.3 bar. Its locking nut is tightened
to 47 Nm, and the valve seat is replaced every 1,800 operating hours.
"""
ADAPTER = "cluster-demo"


def submit(cluster: LocalRayCluster, *entrypoint: str, timeout_s: float) -> str:
    """`ray job submit --working-dir . -- ENTRYPOINT`; waits for the end, returns its logs."""
    started = time.monotonic()
    command = [cluster.ray, "job", "submit", "--address", cluster.dashboard_url, "--working-dir", ".", "--", *entrypoint]
    result = subprocess.run(command, cwd=REPO, env=cluster.cli_env(), capture_output=True, text=True, timeout=timeout_s)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "succeeded" in output, f"job failed ({result.returncode}):\n{output[-6000:]}"
    print(f"job {' '.join(entrypoint[:3])}: {time.monotonic() - started:.0f}s")
    return output


def serve_overrides(http_port: int, registry: Path, milvus: Path) -> dict:
    """CPU overrides of serve/config.yaml for this machine: loopback port, temp storage."""
    return {
        "http_options": {"host": "127.0.0.1", "port": http_port},
        "applications": [{
            "name": "expert",
            "args": {
                "generator": {"adapter_registry": str(registry), "engine": {"max_batch_size": 4}},
                "retriever": {"uri": str(milvus), "collection": "knowledge"},
            },
        }],
    }


def wait_running(cluster: LocalRayCluster, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        result = subprocess.run([cluster.serve, "status", "--address", cluster.dashboard_url],
                                env=cluster.cli_env(), capture_output=True, text=True, timeout=60)
        status = result.stdout
        app = (yaml.safe_load(status) or {}).get("applications", {}).get("expert", {})
        if app.get("status") == "RUNNING":
            return
        assert app.get("status") != "DEPLOY_FAILED", status
        time.sleep(2)
    raise TimeoutError(f"the Serve app is not RUNNING after {timeout_s}s:\n{status}")


def test_working_dir_upload_leaves_out_venv_caches_and_data(tmp_path):
    """What `ray job submit --working-dir .` uploads, packed by the same Ray function with the
    same excludes (Ray's defaults such as .git/.venv, plus .gitignore, honoured by default)."""
    from ray._private.runtime_env.packaging import create_package
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    package = tmp_path / "pkg.zip"

    def pack(working_dir: str, excludes: list[str] | None = None, is_file: bool = False) -> None:
        create_package(working_dir, package, include_gitignore=True, excludes=excludes)

    upload_working_dir_if_needed({"working_dir": str(REPO)}, include_gitignore=True, upload_fn=pack)
    files = [name for name in zipfile.ZipFile(package).namelist() if not name.endswith("/")]
    assert {"train", "serve", "retrieval", "modeling", "pyproject.toml"} <= {f.split("/")[0] for f in files}
    assert (REPO / ".cache").is_dir() and (REPO / ".venv").is_dir(), "the excluded folders exist here"
    shipped = [f for f in files if f.split("/")[0] in {".venv", ".cache", "data", "runs", ".git"}]
    assert not shipped, shipped[:10]
    assert package.stat().st_size < 20 * 1024**2


def test_ingest_train_and_serve_on_a_local_cluster(tmp_path):
    started = time.monotonic()
    docs, registry, milvus = tmp_path / "docs", tmp_path / "adapters", tmp_path / "milvus.db"
    docs.mkdir()
    (docs / "zorblax.md").write_text(FACT_DOC)
    cluster = LocalRayCluster(REPO, num_cpus=4)
    cluster.start()
    try:
        # 1. Ingest as a job: parse/chunk/embed on the cluster's Ray Data, write Milvus Lite.
        submit(cluster, "python", "-m", "retrieval", "ingest", str(docs), "--uri", str(milvus),
               "--collection", "knowledge", "--ray", "--no-progress", timeout_s=180)

        # 2. Train the CPU recipe as a job: Ray Train workers on this cluster, adapter to a registry.
        #    Kept short: 2 steps, and torch DDP instead of the recipe's DeepSpeed (whose C++ ops a
        #    fresh clone JIT-builds; tests/train covers DeepSpeed), since the cluster path is the point.
        logs = submit(
            cluster, "python", "-m", "train", "--config", "train/recipes/cpu-demo.yaml",
            "--set", "training.max_steps=2", "--set", "training.eval_every=0", "--set", "strategy=ddp",
            "--set", f"output.registry={registry}", "--set", f"output.adapter_name={ADAPTER}",
            "--set", f"output.run_dir={tmp_path / 'runs'}", timeout_s=300,
        )
        assert (registry / ADAPTER).is_dir(), f"no adapter in {registry}:\n{logs[-3000:]}"

        # 3. serve deploy: serve/config.yaml with CPU overrides, as a temp copy.
        http_port = free_port()
        config = render.merge(yaml.safe_load((REPO / "serve" / "config.yaml").read_text()),
                              serve_overrides(http_port, registry, milvus))
        config_path = tmp_path / "serve-local.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        deployed = time.monotonic()
        deploy = subprocess.run([cluster.serve, "deploy", str(config_path),
                                 "--address", cluster.dashboard_url],
                                env=cluster.cli_env(), capture_output=True, text=True, timeout=120)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        wait_running(cluster, timeout_s=240)
        print(f"serve deploy -> RUNNING: {time.monotonic() - deployed:.0f}s")

        base = f"http://127.0.0.1:{http_port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            models = {m["id"] for m in client.get("/v1/models").json()["data"]}
            assert {"base", ADAPTER} <= models, models
            tuned = client.post("/finetuned", json={"question": "What does the valve do?", "adapter": ADAPTER,
                                                   "max_tokens": 8})
            assert tuned.status_code == 200 and tuned.json()["answer"].strip(), tuned.text
            rag = client.post("/rag", json={"question": "At what pressure does the Zorblax-9 valve open?",
                                            "max_tokens": 8})
            assert rag.status_code == 200, rag.text
            sources = rag.json()["sources"]
            assert sources and sources[0]["source"].endswith("zorblax.md") and "7.3 bar" in sources[0]["text"]
    finally:
        left = cluster.stop()
    assert left == [] and processes_with_marker(cluster.marker) == [], "every process of the cluster is gone"
    cluster.remove_files()  # kept when the test fails: the Ray logs are in cluster.temp_dir
    print(f"local cluster round trip: {time.monotonic() - started:.0f}s")

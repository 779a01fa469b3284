"""The two services a cluster needs besides Ray, as real servers on loopback.

* **Milvus**: ``milvus-lite server`` (shipped by the installed ``milvus-lite``) speaks Milvus's
  gRPC protocol, so every node and replica reaches one knowledge base at ``http://127.0.0.1:P``
  exactly as they would reach a Milvus standalone server on a cluster. Its data lives in
  ``<state-dir>/milvus`` and survives a restart.
* **S3**: moto's server mode (what Ray's own test suite uses for S3), reached by every client
  through ``AWS_ENDPOINT_URL``; pyarrow (Ray Train's checkpoints, the adapter registry) and
  boto-based tools honour that override, so nothing ever talks to a cloud. Moto keeps objects
  in memory: they live as long as the cluster.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

S3_CREDENTIALS = {  # moto accepts any credentials; these keep clients from looking for real ones
    "AWS_ACCESS_KEY_ID": "local-cluster",
    "AWS_SECRET_ACCESS_KEY": "local-cluster-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def start_s3(port: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )


def start_milvus(port: int, data_dir: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [_bin("milvus-lite"), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )


def s3_ready(endpoint: str) -> bool:
    try:
        return httpx.get(endpoint, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def milvus_ready(uri: str) -> bool:
    from pymilvus import MilvusClient

    try:
        client = MilvusClient(uri=uri, timeout=3)
        client.list_collections()
        client.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


def wait_for(what: str, check, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; its log {log}:\n{_tail(log)}")
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer within {timeout_s:g}s; its log {log}:\n{_tail(log)}")


def create_bucket(endpoint: str, bucket: str) -> None:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(
        endpoint_override=endpoint, access_key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        allow_bucket_creation=True,
    )
    fs.create_dir(bucket)


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"

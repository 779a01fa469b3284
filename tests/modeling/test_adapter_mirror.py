"""The adapter registry in object storage, against a real S3 server (moto's server mode on loopback).

What a Generator on a cluster relies on: an adapter published to ``s3://`` is downloaded once
into the local cache, verified against its checksums, re-fetched when the bucket's copy changes
and kept when it does not; an unfinished upload is invisible; and every storage failure
(unknown adapter, missing bucket, unreachable endpoint, a corrupted object) is one typed error
that names what to fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch
from safetensors.torch import save_file

from cluster.local import services
from cluster.local.processes import free_port, stop_pids
from modeling import AdapterRegistry
from modeling.errors import AdapterIntegrityError, AdapterNotFoundError, RegistryUnavailableError

BUCKET = "mirror-test"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; stopped by its process id."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    env = {**services.S3_CREDENTIALS, "PATH": str(Path(sys.executable).parent)}
    process = services.start_s3(port, log, env)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        services.wait_for("moto S3 server", lambda: services.s3_ready(endpoint), process, log, timeout_s=60)
        services.create_bucket(endpoint, BUCKET)
        yield endpoint
    finally:
        stop_pids([process.pid])
        process.wait(timeout=10)


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> str:
    """This process reaches the S3 server as a cluster node does (``AWS_ENDPOINT_URL``)."""
    for key, value in {**services.S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    return s3_endpoint


@pytest.fixture
def node(monkeypatch, tmp_path):
    """``node(uri, "a")``: the registry as node "a" sees it, with that node's own local cache."""

    def registry(uri: str, name: str) -> AdapterRegistry:
        monkeypatch.setenv("EXPERT_CACHE_DIR", str(tmp_path / f"cache-{name}"))
        return AdapterRegistry(uri, refresh_s=0)

    return registry


def adapter_folder(path: Path, fill: float) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    save_file({"base_model.model.x.lora_A.weight": torch.full((2, 4), fill)}, str(path / "adapter_model.safetensors"))
    return path


def bucket_fs(endpoint: str) -> pafs.S3FileSystem:
    c = services.S3_CREDENTIALS
    return pafs.S3FileSystem(endpoint_override=endpoint, access_key=c["AWS_ACCESS_KEY_ID"],
                             secret_key=c["AWS_SECRET_ACCESS_KEY"], region=c["AWS_DEFAULT_REGION"])


def test_a_published_adapter_is_fetched_once_and_refetched_only_when_the_bucket_copy_changes(s3, node, tmp_path):
    uri = f"s3://{BUCKET}/fetch-once"
    publisher = node(uri, "trainer")
    publisher.add_folder(adapter_folder(tmp_path / "v1", 1.0), "support", {"run": 1})

    reader = node(uri, "gpu-1")
    assert reader.names() == ["support"]
    first = reader.path("support")
    weights = first / "adapter_model.safetensors"
    inode, version = weights.stat().st_ino, reader.version("support")
    assert reader.metadata("support") == {"run": 1}

    assert reader.path("support") == first and weights.stat().st_ino == inode  # unchanged: not downloaded again

    publisher.add_folder(adapter_folder(tmp_path / "v2", 2.0), "support", {"run": 2}, overwrite=True)
    assert reader.metadata("support") == {"run": 2}  # the bucket's copy changed: fetched again
    assert reader.version("support") != version
    from safetensors.torch import load_file

    assert load_file(str(reader.path("support") / "adapter_model.safetensors"))[
        "base_model.model.x.lora_A.weight"].eq(2.0).all()


def test_an_upload_without_its_manifest_is_invisible_and_unknown_adapters_are_404s_naming_the_known(s3, node, tmp_path):
    uri = f"s3://{BUCKET}/partial"
    registry = node(uri, "trainer")
    registry.add_folder(adapter_folder(tmp_path / "a", 1.0), "complete")
    fs = bucket_fs(s3)
    fs.create_dir(f"{BUCKET}/partial/half-uploaded")
    with fs.open_output_stream(f"{BUCKET}/partial/half-uploaded/adapter_config.json") as out:
        out.write(b"{}")  # the files of an interrupted publish, no manifest yet

    assert registry.names() == ["complete"]
    with pytest.raises(AdapterNotFoundError) as missing:
        registry.path("half-uploaded")
    assert "complete" in str(missing.value)
    with pytest.raises(AdapterNotFoundError, match="complete"):
        registry.path("ghost")


def test_a_corrupted_object_is_refused_by_checksum_and_the_old_copy_stays(s3, node, tmp_path):
    uri = f"s3://{BUCKET}/corrupt"
    publisher = node(uri, "trainer")
    publisher.add_folder(adapter_folder(tmp_path / "a", 1.0), "support")
    reader = node(uri, "gpu-1")  # holds version 1
    good = (reader.path("support") / "adapter_model.safetensors").read_bytes()

    publisher.add_folder(adapter_folder(tmp_path / "b", 3.0), "support", overwrite=True)
    with bucket_fs(s3).open_output_stream(f"{BUCKET}/corrupt/support/adapter_model.safetensors") as out:
        out.write(b"not the published bytes")  # damaged after its manifest was written
    with pytest.raises(AdapterIntegrityError, match="adapter_model.safetensors does not match its checksum"):
        reader.path("support")
    assert (reader.root / "support" / "adapter_model.safetensors").read_bytes() == good
    assert [p.name for p in reader.root.iterdir() if p.name.startswith(".support-")] == []  # no staging left


def test_a_missing_bucket_and_an_unreachable_endpoint_say_what_to_fix(s3, monkeypatch):
    with pytest.raises(RegistryUnavailableError, match="bucket 'no-such-bucket' does not exist; create it"):
        AdapterRegistry("s3://no-such-bucket/adapters", refresh_s=0).names()

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(RegistryUnavailableError, match="AWS_ENDPOINT_URL"):
        AdapterRegistry(f"s3://{BUCKET}/adapters", refresh_s=0).names()

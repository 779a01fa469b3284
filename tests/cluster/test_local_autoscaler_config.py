"""cluster/local-autoscaler.yaml: valid for Ray's autoscaler, and a faithful small copy of aws-gpu.yaml."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jsonschema
import ray.autoscaler
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

from tests.cluster.definitions import CLUSTER_DIR, LOCAL_AUTOSCALER, load, prepared_launcher

RAY_SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_validates_against_rays_schema_and_preparation():
    jsonschema.validate(load(LOCAL_AUTOSCALER), RAY_SCHEMA)
    config = prepared_launcher(LOCAL_AUTOSCALER)
    module, _, name = config["provider"]["module"].rpartition(".")
    provider = getattr(importlib.import_module(module), name)  # what the autoscaler imports
    assert issubclass(provider, FakeMultiNodeProvider)


def test_node_types_mirror_aws_with_gpus_as_custom_resources_only():
    local, aws = load(LOCAL_AUTOSCALER), load(CLUSTER_DIR / "aws-gpu.yaml")
    local_workers = {k: v for k, v in local["available_node_types"].items() if k != local["head_node_type"]}
    aws_workers = {k: v for k, v in aws["available_node_types"].items() if k != aws["head_node_type"]}
    assert set(local_workers) == set(aws_workers)
    for name, node_type in local_workers.items():
        accelerators = {k for k in node_type["resources"] if k.startswith("gpu_")}
        assert accelerators == {k for k in aws_workers[name]["resources"] if k.startswith("gpu_")}, name
        assert node_type["resources"].get("GPU", 0) == 0, f"{name}: no real GPU on a laptop, only the custom resource"

"""The `ray up` configs: valid for the autoscaler `ray up` runs, and consistent with the project."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import ray.autoscaler

from tests.cluster.definitions import launcher_paths, load, prepared_launcher
from tests.conftest import REPO

LAUNCHERS = launcher_paths()
RAY_SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
PY = f"py{sys.version_info.major}{sys.version_info.minor}"


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_aws_and_gcp_configs_exist():
    assert {load(p)["provider"]["type"] for p in LAUNCHERS} >= {"aws", "gcp"}


@pytest.mark.parametrize("path", LAUNCHERS, ids=ids(LAUNCHERS))
def test_validates_against_rays_autoscaler_schema(path):
    jsonschema.validate(load(path), RAY_SCHEMA)  # the file as written, before any defaults


@pytest.mark.parametrize("path", LAUNCHERS, ids=ids(LAUNCHERS))
def test_rays_own_preparation_accepts_it(path):
    config = prepared_launcher(path)  # prepare_config + validate_config, as `ray up` does
    assert config["head_node_type"] in config["available_node_types"]
    assert config["max_workers"] >= sum(
        t["max_workers"] for name, t in config["available_node_types"].items() if name != config["head_node_type"]
    ), "global max_workers must let every node type reach its own max_workers"


def test_schema_check_can_fail():
    broken = copy.deepcopy(load(LAUNCHERS[0]))
    broken["available_node_types"]["gpu_l4"]["resources"]["GPU"] = 0.5  # fractional: not allowed
    broken["idle_timout_minutes"] = 5  # misspelt top-level key
    errors = list(jsonschema.Draft7Validator(RAY_SCHEMA).iter_errors(broken))
    assert len(errors) == 2


@pytest.mark.parametrize("path", LAUNCHERS, ids=ids(LAUNCHERS))
def test_node_types_head_cpu_single_and_multi_gpu(path):
    config = load(path)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is CPU-only"
    gpu_counts = sorted(t["resources"].get("GPU", 0) for t in types.values())
    assert 1 in gpu_counts and max(gpu_counts) >= 4, "one single-GPU type and one multi-GPU type"
    assert config["idle_timeout_minutes"] > 0
    for name, node_type in types.items():
        if name == config["head_node_type"]:
            continue
        assert node_type["min_workers"] == 0 <= node_type["max_workers"], f"{name} should scale from zero"
        gpus = node_type["resources"].get("GPU", 0)
        accelerators = {k: v for k, v in node_type["resources"].items() if k.startswith("gpu_")}
        if gpus:
            assert list(accelerators.values()) == [gpus], (
                f"{name}: a GPU node type advertises exactly one accelerator resource, one unit per GPU"
            )
        else:
            assert not accelerators


def test_clouds_offer_the_same_resources_so_recipes_are_portable():
    def shape(path: Path) -> set[tuple]:
        return {tuple(sorted(t["resources"].items())) for t in load(path)["available_node_types"].values()}

    shapes = [shape(p) for p in LAUNCHERS]
    assert all(s == shapes[0] for s in shapes), shapes


@pytest.mark.parametrize("path", LAUNCHERS, ids=ids(LAUNCHERS))
def test_images_match_the_local_ray_and_python(path):
    docker = load(path)["docker"]
    images = [docker["image"], docker.get("head_image"), docker.get("worker_image")]
    images += [t.get("docker", {}).get("worker_image") for t in load(path)["available_node_types"].values()]
    for image in filter(None, images):
        repo, tag = image.split(":")
        assert repo == "rayproject/ray"
        assert re.fullmatch(rf"{re.escape(ray.__version__)}-{PY}(-gpu)?", tag), (
            f"{image}: `ray up` and `ray job submit` need the cluster's Ray and Python to match "
            f"this machine's (ray {ray.__version__}, {PY})"
        )
    assert docker["image"].endswith("-gpu"), "the GPU worker types need the CUDA image"


@pytest.mark.parametrize("path", LAUNCHERS, ids=ids(LAUNCHERS))
def test_setup_installs_this_project_from_its_file_mount(path):
    config = load(path)
    assert config["file_mounts"] == {"~/phi3-expert": "."}
    assert {".venv", ".cache", "data"} <= set(config["rsync_exclude"])
    assert config["rsync_filter"] == [".gitignore"]
    setup = "\n".join(config["setup_commands"])
    torch_pin = re.search(r'"(torch==[^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert torch_pin in setup, f"setup must install the pinned {torch_pin}"
    assert "cd ~/phi3-expert && pip install --quiet -e ." in setup
    assert "requirements-nodeps.txt" in setup


def test_gcp_node_configs_are_gpu_ready_compute_instances():
    # (Ray's own GCP node-type check lives in a module that needs the Google API client.)
    for path in LAUNCHERS:
        config = load(path)
        if config["provider"]["type"] != "gcp":
            continue
        for name, node_type in config["available_node_types"].items():
            assert "machineType" in node_type["node_config"], f"{name}: a Compute instance needs machineType"
            if node_type["resources"].get("GPU"):
                assert {"onHostMaintenance": "TERMINATE"} in node_type["node_config"]["scheduling"], (
                    f"{name}: GPU VMs cannot live-migrate"
                )

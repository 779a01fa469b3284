"""KubeRay manifests: known fields for their kinds, what Ray's KubeRay autoscaler derives from
them, and images/commands that match this project's entrypoints."""

from __future__ import annotations

import copy
import re
import shlex
import sys

import jsonschema
import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema

from tests.cluster.definitions import (
    KUBERAY_DIR,
    kuberay_autoscaler_config,
    kuberay_manifests,
    load,
    ray_cluster_specs,
)
from tests.cluster.kuberay_schema import SCHEMAS
from tests.conftest import REPO

MANIFESTS = kuberay_manifests()
SPECS = ray_cluster_specs()
PROJECT_VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
DOCKERFILE = (REPO / "cluster" / "Dockerfile").read_text()
WORKDIR = re.search(r"^WORKDIR (\S+)", DOCKERFILE, re.M).group(1)


def containers(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def kinds() -> dict[str, dict]:
    return {load(p)["kind"]: load(p) for p in MANIFESTS}


def test_the_three_kinds_are_shipped():
    assert {"RayCluster", "RayJob", "RayService"} <= set(kinds())


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_names_only_valid_fields_for_its_kind(path):
    doc = load(path)
    assert doc["kind"] in SCHEMAS, f"{path.name}: no schema for kind {doc['kind']!r}"
    jsonschema.validate(doc, SCHEMAS[doc["kind"]])


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda d: d["spec"].__setitem__("rayClusterSpec", d["spec"].pop("rayClusterConfig")), "rayClusterSpec"),
        (lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].__setitem__("minReplica", 0), "minReplica"),
        (lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"].__setitem__("num-cpus", 4), "4"),
        (lambda d: d.__setitem__("apiVersion", "ray.io/v1alpha1"), "ray.io/v1"),
    ],
    ids=["RayJob-field-in-RayService", "misspelt-field", "int-in-rayStartParams", "old-api-version"],
)
def test_field_check_catches_typical_mistakes(mutate, complaint):
    doc = copy.deepcopy(kinds()["RayService"])
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError, match=re.escape(complaint)):
        jsonschema.validate(doc, SCHEMAS["RayService"])


@pytest.mark.parametrize("name", list(SPECS), ids=list(SPECS))
def test_rays_kuberay_autoscaler_accepts_the_cluster(name):
    spec = SPECS[name]
    assert spec["enableInTreeAutoscaling"] is True
    config = kuberay_autoscaler_config(name, spec)  # raises if the autoscaler could not read it
    types = config["available_node_types"]
    gpu_types = {n: t["resources"] for n, t in types.items() if t["resources"].get("GPU")}
    assert gpu_types, "a GPU worker group"
    for group, resources in gpu_types.items():
        accelerators = {k: v for k, v in resources.items() if k.startswith("gpu_")}
        assert list(accelerators.values()) == [resources["GPU"]], (
            f"{group}: one accelerator resource, one unit per GPU (nvidia.com/gpu limit)"
        )
        assert types[group]["min_workers"] == 0 < types[group]["max_workers"]


def test_kuberay_offers_the_same_accelerator_resources_as_the_launchers():
    from tests.cluster.definitions import launcher_paths

    def accelerators(resources: dict) -> set[str]:
        return {k for k in resources if k.startswith("gpu_")}

    kuberay = set().union(*(accelerators(t["resources"]) for t in
                            kuberay_autoscaler_config("c", kinds()["RayCluster"]["spec"])["available_node_types"].values()))
    for path in launcher_paths():
        launcher = set().union(*(accelerators(t["resources"]) for t in load(path)["available_node_types"].values()))
        assert kuberay == launcher, (path.name, kuberay, launcher)


@pytest.mark.parametrize("name", list(SPECS), ids=list(SPECS))
def test_images_are_this_projects_image_built_on_the_local_ray(name):
    spec = SPECS[name]
    assert spec["rayVersion"] == ray.__version__
    for container in containers(spec):
        assert container["image"] == f"phi3-expert:{PROJECT_VERSION}", container["name"]
        assert container["workingDir"] == WORKDIR, container["name"]
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert re.search(rf"^FROM rayproject/ray:{re.escape(ray.__version__)}-{py}-gpu$", DOCKERFILE, re.M)


def test_dockerfile_installs_the_project_like_the_makefile():
    torch_pin = re.search(r'"(torch==[^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert torch_pin in DOCKERFILE
    assert "pip install --no-cache-dir -e ." in DOCKERFILE
    assert "--no-deps -r requirements-nodeps.txt" in DOCKERFILE
    ignored = (REPO / "cluster" / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".cache", "data", ".git"} <= set(ignored)


@pytest.mark.parametrize("name", list(SPECS), ids=list(SPECS))
def test_every_volume_mount_names_a_pod_volume(name):
    groups = [SPECS[name]["headGroupSpec"], *SPECS[name]["workerGroupSpecs"]]
    for group in groups:
        pod = group["template"]["spec"]
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (group.get("groupName", "head"), mount)
            if claims := [v for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]:
                pvc = load(KUBERAY_DIR / "storage.yaml")
                assert {c["persistentVolumeClaim"]["claimName"] for c in claims} == {pvc["metadata"]["name"]}
                assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "pods on several nodes share it"


def test_rayjob_runs_a_gpu_recipe_with_the_training_cli():
    job = kinds()["RayJob"]
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:4] == ["python", "-m", "train", "--config"] and len(argv) == 5, argv
    recipe = argv[4]
    assert recipe.startswith(WORKDIR + "/"), "the recipe path inside the image"
    in_repo = REPO / recipe.removeprefix(WORKDIR + "/")
    assert in_repo.is_file(), f"{in_repo.relative_to(REPO)} does not exist (the RayJob would fail)"
    assert (REPO / "train" / "__main__.py").is_file(), "`python -m train` needs train/__main__.py"
    assert yaml.safe_load(in_repo.read_text())["scaling"]["use_gpu"] is True
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_rayservice_serves_the_projects_serve_config():
    service = kinds()["RayService"]
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)  # what the dashboard's Serve API accepts
    app = serve_config["applications"][0]
    assert app["import_path"] == "serve.app:build_app"
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["serve"] == serve_config["http_options"]["port"]
    assert ports["dashboard"] == 8265, "KubeRay deploys serveConfigV2 through the dashboard"

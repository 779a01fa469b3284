"""The cluster definitions of ``cluster/``, loaded the way Ray itself loads them.

* Launcher YAMLs: ``prepare_config`` (merges the provider's defaults.yaml, the step ``ray up``
  runs before talking to the cloud) then ``validate_config`` (the JSON schema + Ray's checks).
* KubeRay RayCluster specs: ``_derive_autoscaling_config_from_ray_cr``, the function the
  autoscaler sidecar of a KubeRay head pod runs to turn the custom resource into node types.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.cluster.fit import NodeType, node_types_from_autoscaler_config
from tests.conftest import REPO

CLUSTER_DIR = REPO / "cluster"
KUBERAY_DIR = CLUSTER_DIR / "kuberay"
RECIPES_DIR = REPO / "train" / "recipes"
# The recipes the training CLI ships (the contract with train/): the CPU demo and the GPU ones.
# cluster/render.py (a script, not a package module): merge() and the derived-file renderers.
_spec = importlib.util.spec_from_file_location("cluster_render", CLUSTER_DIR / "render.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

CONTRACT_RECIPES = (
    "cpu-demo.yaml",
    "phi3-mini-qlora-1gpu.yaml",
    "phi3-mini-lora-zero3-multigpu.yaml",
    "phi3-medium-qlora-zero2-multinode.yaml",
)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


LOCAL_AUTOSCALER = CLUSTER_DIR / "local-autoscaler.yaml"  # `ray start --autoscaling-config`, not `ray up`


def launcher_paths() -> list[Path]:
    """Every ``ray up`` config in cluster/ (a top-level ``provider`` marks one; the local cluster's is not one)."""
    return sorted(p for p in CLUSTER_DIR.glob("*.yaml") if "provider" in (load(p) or {}) and p != LOCAL_AUTOSCALER)


def prepared_launcher(path: Path) -> dict:
    config = prepare_config(copy.deepcopy(load(path)))
    validate_config(config)
    return config


def kuberay_manifests() -> list[Path]:
    return sorted(KUBERAY_DIR.glob("*.yaml"))


def ray_cluster_specs() -> dict[str, dict]:
    """``file:kind`` -> the RayCluster spec of every KubeRay manifest that holds one."""
    specs = {}
    for path in kuberay_manifests():
        doc = load(path)
        spec = {
            "RayCluster": lambda d: d["spec"],
            "RayJob": lambda d: d["spec"].get("rayClusterSpec"),
            "RayService": lambda d: d["spec"].get("rayClusterConfig"),
        }.get(doc["kind"], lambda d: None)(doc)
        if spec is not None:
            specs[f"{path.relative_to(REPO)}:{doc['kind']}"] = spec
    return specs


def kuberay_autoscaler_config(name: str, spec: dict) -> dict:
    """What the KubeRay autoscaler derives from a RayCluster spec (and validates itself)."""
    ray_cr = {"metadata": {"name": re.sub(r"[^a-z0-9-]", "-", name.lower()), "namespace": "default"}, "spec": spec}
    return _derive_autoscaling_config_from_ray_cr(copy.deepcopy(ray_cr))


def all_clusters() -> dict[str, list[NodeType]]:
    """Every cluster this project defines -> its node types, as Ray's autoscaler sees them."""
    clusters = {str(p.relative_to(REPO)): node_types_from_autoscaler_config(prepared_launcher(p)) for p in launcher_paths()}
    for name, spec in ray_cluster_specs().items():
        clusters[name] = node_types_from_autoscaler_config(kuberay_autoscaler_config(name, spec))
    return clusters


def recipe_paths() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.yaml"))

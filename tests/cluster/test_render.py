"""The derived cluster files are up to date, and the Serve config they carry is the project's
serve/config.yaml changed exactly where cluster/serve-gpu-overrides.yaml says."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve.settings import AppSettings
from tests.cluster.definitions import render
from tests.conftest import REPO


def leaves(tree, prefix=()) -> dict[tuple, object]:
    """Flatten a config into path -> value; list entries with a ``name`` are keyed by it."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list) and all(isinstance(i, dict) and "name" in i for i in tree):
        items = ((i["name"], i) for i in tree)
    else:
        return {prefix: tree}
    out = {}
    for key, value in items:
        out.update(leaves(value, (*prefix, key)))
    return out or {prefix: tree}


def test_derived_files_are_up_to_date():
    result = subprocess.run([sys.executable, "cluster/render.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_gpu_serve_config_is_serve_config_plus_exactly_the_overrides():
    base = leaves(yaml.safe_load((REPO / "serve" / "config.yaml").read_text()))
    overrides = leaves(yaml.safe_load((REPO / "cluster" / "serve-gpu-overrides.yaml").read_text()))
    derived = yaml.safe_load((REPO / "cluster" / "serve-gpu.yaml").read_text())
    service = yaml.safe_load((REPO / "cluster" / "kuberay" / "rayservice.yaml").read_text())
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == derived
    flat = leaves(derived)

    def named(path: tuple) -> bool:  # an override of a section (e.g. `autoscaling_config: null`) names all under it
        return any(path[: len(o)] == o for o in overrides)

    assert {path: value for path, value in flat.items() if not named(path)} == {
        path: value for path, value in base.items() if not named(path)
    }, "everything the overrides do not name is serve/config.yaml's"
    assert {path: flat[path] for path in overrides} == overrides


def test_gpu_serve_config_is_valid_for_serve_and_for_the_app():
    derived = yaml.safe_load((REPO / "cluster" / "serve-gpu.yaml").read_text())
    ServeDeploySchema.model_validate(derived)
    for app in derived["applications"]:
        AppSettings.model_validate(app["args"])  # what serve.app.build_app validates at deploy time
    generator = {d["name"]: d for d in derived["applications"][0]["deployments"]}["Generator"]
    assert generator["ray_actor_options"]["num_gpus"] == 1


def test_an_override_for_an_unknown_deployment_is_an_error_naming_the_known_ones():
    base = {"applications": [{"name": "expert", "deployments": [{"name": "Generator", "num_replicas": 1}]}]}
    overlay = {"applications": [{"name": "expert", "deployments": [{"name": "Genrator", "num_replicas": 2}]}]}
    with pytest.raises(render.OverlayError, match="no entry named 'Genrator'; known: Generator"):
        render.merge(base, overlay)


def test_merge_changes_only_what_the_overlay_names():
    base = {"a": {"b": 1, "c": [1, 2]}, "apps": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]}
    merged = render.merge(base, {"a": {"c": [3]}, "apps": [{"name": "y", "v": 5, "w": 6}]})
    assert merged == {"a": {"b": 1, "c": [3]}, "apps": [{"name": "x", "v": 1}, {"name": "y", "v": 5, "w": 6}]}
    assert base["apps"][1] == {"name": "y", "v": 2}, "the input is not modified"

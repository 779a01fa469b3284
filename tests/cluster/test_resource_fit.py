"""Every cluster this project defines can host every training recipe and the Serve replicas.

Recipes are read as data (their ``scaling:`` section) and turned into Ray Train's own
``ScalingConfig``, whose per-worker bundle (``_resources_per_worker_not_none``: ``use_gpu``
adds ``GPU: 1``, zero entries dropped) is what Ray Train asks the cluster for.
"""

from __future__ import annotations

import pytest
import yaml
from ray.train import ScalingConfig

from tests.cluster.definitions import CONTRACT_RECIPES, RECIPES_DIR, all_clusters, recipe_paths
from tests.cluster.fit import NodeType, ResourceFitError, check_fit
from tests.conftest import REPO

CLUSTERS = all_clusters()
SCALING_KEYS = ("num_workers", "use_gpu", "resources_per_worker", "placement_strategy")


def worker_demand(scaling: dict) -> tuple[dict[str, float], int, str]:
    config = ScalingConfig(**{k: scaling[k] for k in SCALING_KEYS if k in scaling})
    return dict(config._resources_per_worker_not_none), config.num_workers, config.placement_strategy


def check_recipe(name: str, scaling: dict, node_types: list[NodeType], cluster: str) -> dict[str, int]:
    demand, workers, strategy = worker_demand(scaling)
    return check_fit(f"recipe {name}", demand, workers, node_types, cluster, strict_spread=strategy == "STRICT_SPREAD")


def replica_demand(deployment: dict) -> tuple[dict[str, float], int]:
    options = deployment.get("ray_actor_options", {})
    demand = {"CPU": options.get("num_cpus", 1), "GPU": options.get("num_gpus", 0), **options.get("resources", {})}
    autoscaling = deployment.get("autoscaling_config") or {}
    replicas = autoscaling.get("max_replicas", deployment.get("num_replicas", 1))
    return {k: float(v) for k, v in demand.items() if v}, int(1 if replicas == "auto" else replicas)


def test_the_contract_recipes_exist():
    missing = [name for name in CONTRACT_RECIPES if not (RECIPES_DIR / name).is_file()]
    assert not missing, f"train/recipes/ lacks {missing} (cluster/README.md says which resources they request)"


@pytest.mark.parametrize("recipe", recipe_paths(), ids=[p.name for p in recipe_paths()])
@pytest.mark.parametrize("cluster", list(CLUSTERS))
def test_recipe_fits_cluster(recipe, cluster):
    scaling = yaml.safe_load(recipe.read_text())["scaling"]
    hosts = check_recipe(recipe.name, scaling, CLUSTERS[cluster], cluster)
    if scaling.get("use_gpu"):
        demand, _, _ = worker_demand(scaling)
        assert any(k.startswith("gpu_") for k in demand), (
            f"{recipe.name}: a GPU recipe should name its accelerator resource (cluster/README.md), "
            f"so it never lands on a GPU class it was not sized for"
        )
        assert len(hosts) == 1, f"{recipe.name} could land on several node types: {hosts}"


@pytest.mark.parametrize("serve_config", ["serve/config.yaml", "cluster/serve-gpu.yaml"])
@pytest.mark.parametrize("cluster", list(CLUSTERS))
def test_serve_replicas_fit_cluster(serve_config, cluster):
    config = yaml.safe_load((REPO / serve_config).read_text())
    for app in config["applications"]:
        for deployment in app["deployments"]:
            demand, replicas = replica_demand(deployment)
            check_fit(f"{serve_config} {deployment['name']} replicas", demand, replicas, CLUSTERS[cluster], cluster)


# The checks above must be able to fail: synthetic recipes against a real cluster definition.
AWS = "cluster/aws-gpu.yaml"


def test_a_recipe_asking_for_an_unknown_accelerator_fails_clearly():
    scaling = {"num_workers": 1, "use_gpu": True, "resources_per_worker": {"CPU": 4, "GPU": 1, "gpu_a10g": 1}}
    with pytest.raises(ResourceFitError, match=r"'gpu_a10g' per worker/replica, which no node type of "
                                               r"cluster/aws-gpu.yaml provides; its node types provide: "
                                               r"CPU, GPU, gpu_a100_80g, gpu_l4"):
        check_recipe("ghost.yaml", scaling, CLUSTERS[AWS], AWS)


def test_too_many_workers_fail_with_the_capacity():
    scaling = {"num_workers": 17, "use_gpu": True, "resources_per_worker": {"CPU": 8, "GPU": 1, "gpu_a100_80g": 1}}
    with pytest.raises(ResourceFitError, match=r"needs 17 x .* holds at most 16 at max_workers \(gpu_a100_80g: 16\)"):
        check_recipe("big.yaml", scaling, CLUSTERS[AWS], AWS)


def test_a_worker_bigger_than_any_node_fails():
    scaling = {"num_workers": 1, "use_gpu": True, "resources_per_worker": {"CPU": 12, "GPU": 1, "gpu_l4": 1}}
    with pytest.raises(ResourceFitError, match="more than any single node type"):
        check_recipe("fat.yaml", scaling, CLUSTERS[AWS], AWS)


def test_strict_spread_needs_one_node_per_worker():
    scaling = {"num_workers": 3, "use_gpu": True, "placement_strategy": "STRICT_SPREAD",
               "resources_per_worker": {"CPU": 8, "GPU": 1, "gpu_a100_80g": 1}}
    with pytest.raises(ResourceFitError, match="holds at most 2"):
        check_recipe("spread.yaml", scaling, CLUSTERS[AWS], AWS)

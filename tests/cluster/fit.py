"""Can a cluster definition host a workload? Node types in, a clear answer (or error) out.

A cluster is described the way Ray's autoscaler sees it: node types with their ``resources``
and ``max_workers`` (from a launcher YAML after ``prepare_config``, or from a RayCluster through
Ray's own KubeRay translation). A workload is ``count`` identical resource bundles: Ray Train
workers (``ScalingConfig``) or Serve replicas (``ray_actor_options``). Identical bundles make
packing exact: each node of a type holds ``floor(min(capacity / demand))`` bundles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STANDARD_RESOURCES = {"CPU", "GPU", "TPU", "memory", "object_store_memory"}


class ResourceFitError(AssertionError):
    """A workload cannot be placed on a cluster; the message says what is missing and where."""


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    max_nodes: int


def node_types_from_autoscaler_config(config: dict) -> list[NodeType]:
    """Node types of a prepared autoscaler config; the head counts as one node of its type."""
    head = config["head_node_type"]
    return [
        NodeType(
            name,
            {k: float(v) for k, v in spec.get("resources", {}).items()},
            1 if name == head else int(spec.get("max_workers", 0)),
        )
        for name, spec in config["available_node_types"].items()
    ]


def provided_resources(node_types: list[NodeType]) -> set[str]:
    return {r for t in node_types for r, v in t.resources.items() if v > 0}


def bundles_per_node(capacity: dict[str, float], demand: dict[str, float]) -> int:
    per_resource = [
        math.floor(capacity.get(r, 0.0) / need + 1e-9) for r, need in demand.items() if need > 0
    ]
    return min(per_resource) if per_resource else 0


def check_fit(
    what: str,
    demand: dict[str, float],
    count: int,
    node_types: list[NodeType],
    cluster: str,
    *,
    strict_spread: bool = False,
) -> dict[str, int]:
    """Raise ResourceFitError unless ``count`` bundles of ``demand`` fit; else return the
    node types that can host them -> how many bundles each type can hold at its max size."""
    missing = sorted(r for r, v in demand.items() if v > 0 and r not in provided_resources(node_types))
    if missing:
        raise ResourceFitError(
            f"{what} asks for resource(s) {', '.join(repr(m) for m in missing)} per worker/replica, "
            f"which no node type of {cluster} provides; its node types provide: "
            f"{', '.join(sorted(provided_resources(node_types)))}. Use a resource listed in "
            f"cluster/README.md or add it to a node type."
        )
    hosts = {}
    for t in node_types:
        per_node = bundles_per_node(t.resources, demand)
        if per_node:
            hosts[t.name] = (min(per_node, 1) if strict_spread else per_node) * t.max_nodes
    if not hosts:
        raise ResourceFitError(
            f"{what} needs {demand} per worker/replica, more than any single node type of {cluster} "
            f"has: " + "; ".join(f"{t.name}={t.resources}" for t in node_types)
        )
    if sum(hosts.values()) < count:
        raise ResourceFitError(
            f"{what} needs {count} x {demand}, but {cluster} holds at most {sum(hosts.values())} "
            f"at max_workers ({', '.join(f'{n}: {c}' for n, c in hosts.items())})"
        )
    return hosts

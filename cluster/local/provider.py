"""Ray's fake multi-node provider with one fix for running jobs on it.

All fake nodes share the head's session folder, so by default every node's runtime-env agent
unpacks a job's ``--working-dir`` into the same ``runtime_resources/`` folder: one node's agent
replacing or cleaning that folder pulls the working directory from under another node's
workers (their imports then fail with ``FileNotFoundError`` from ``os.getcwd``). Each node here
gets its own runtime-env folder. The method is Ray 2.60's
``FakeMultiNodeProvider._create_node_with_resources_and_labels`` with that one argument added.
"""

from __future__ import annotations

import copy
import json

import ray
import ray._private.ray_constants as ray_constants
from ray._common.network_utils import build_address
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
from ray.autoscaler.tags import (
    NODE_KIND_WORKER,
    STATUS_UP_TO_DATE,
    TAG_RAY_NODE_KIND,
    TAG_RAY_NODE_NAME,
    TAG_RAY_NODE_STATUS,
    TAG_RAY_USER_NODE_TYPE,
)


class LocalNodeProvider(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(
        self, node_config, tags, count, resources, labels
    ):
        # This function calls `pop`. To avoid side effects, we make a
        # copy of `resources`.
        resources = copy.deepcopy(resources)
        with self.lock:
            node_type = tags[TAG_RAY_USER_NODE_TYPE]
            next_id = self._next_hex_node_id()
            ray_params = ray._private.parameter.RayParams(
                # the one change: every node keeps its runtime environments (job working dirs)
                # in a folder of its own, as separate machines would
                runtime_env_dir_name=f"runtime_resources_{next_id[-5:]}",
                min_worker_port=0,
                max_worker_port=0,
                dashboard_port=None,
                dashboard_agent_listen_port=0,
                num_cpus=resources.pop("CPU", 0),
                num_gpus=resources.pop("GPU", 0),
                object_store_memory=resources.pop("object_store_memory", None),
                resources=resources,
                labels=labels,
                redis_address=build_address(
                    ray._private.services.get_node_ip_address(), 6379
                )
                if not self._gcs_address
                else self._gcs_address,
                gcs_address=build_address(
                    ray._private.services.get_node_ip_address(), 6379
                )
                if not self._gcs_address
                else self._gcs_address,
                env_vars={
                    "RAY_OVERRIDE_NODE_ID_FOR_TESTING": next_id,
                    "RAY_CLOUD_INSTANCE_ID": next_id,
                    "RAY_NODE_TYPE_NAME": node_type,
                    ray_constants.RESOURCES_ENVIRONMENT_VARIABLE: json.dumps(resources),
                    ray_constants.LABELS_ENVIRONMENT_VARIABLE: json.dumps(labels),
                },
            )
            node = ray._private.node.Node(
                ray_params, head=False, shutdown_at_exit=False, spawn_reaper=False
            )
            all_tags = {
                TAG_RAY_NODE_KIND: NODE_KIND_WORKER,
                TAG_RAY_USER_NODE_TYPE: node_type,
                TAG_RAY_NODE_NAME: next_id,
                TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE,
            }
            all_tags.update(tags)
            self._nodes[next_id] = {
                "tags": all_tags,
                "node": node,
            }

"""A JSON-schema subset of the KubeRay v1 CRDs (RayCluster, RayJob, RayService) and of the
Kubernetes core/v1 objects they embed, for checking the manifests in cluster/kuberay offline.

Provenance (both Apache License 2.0; field names and nesting transcribed, not copied code):
* KubeRay: github.com/ray-project/kuberay, ray-operator/apis/ray/v1/raycluster_types.go
  (commit 3275ee09f6a6c899c37e82ea6349785536de6bd4), rayjob_types.go (f6ef3f7b32639dc6555797512d7cb784bd436901),
  rayservice_types.go (834fe3a876c5b5631ffc2e33f82dca3a6f31137d); the generated CRDs are
  ray-operator/config/crd/bases/ray.io_{rayclusters,rayjobs,rayservices}.yaml.
  Copyright The KubeRay Authors, licensed under the Apache License, Version 2.0.
* Kubernetes: k8s.io/api core/v1 (PodTemplateSpec, PodSpec, Container, Volume, ...).
  Copyright The Kubernetes Authors, licensed under the Apache License, Version 2.0.

It is a *subset*: every field listed exists in those types, and objects are closed
(``additionalProperties: false``), so a misspelt or misplaced field (``rayClusterSpec`` in a
RayService, ``minReplica``, an int in ``rayStartParams``) fails. Fields the CRDs have but this
project does not use may be missing here; add them from the sources above when needed.
"""

from __future__ import annotations

QUANTITY = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string", "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"},
    ]
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
STRINGS = {"type": "array", "items": {"type": "string"}}


def closed(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def any_object(*names: str) -> dict:
    """Fields whose inner structure this subset does not check (only that they are objects)."""
    return {name: {"type": "object"} for name in names}


def any_array(*names: str) -> dict:
    return {name: {"type": "array"} for name in names}


OBJECT_META = closed({
    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    "generateName": {"type": "string"},
    "namespace": {"type": "string"},
    "labels": STRING_MAP,
    "annotations": STRING_MAP,
})

RESOURCE_REQUIREMENTS = closed({
    "limits": {"type": "object", "additionalProperties": QUANTITY},
    "requests": {"type": "object", "additionalProperties": QUANTITY},
    "claims": {"type": "array"},
})

CONTAINER = closed(
    {
        "name": {"type": "string"},
        "image": {"type": "string"},
        "imagePullPolicy": {"enum": ["Always", "Never", "IfNotPresent"]},
        "command": STRINGS,
        "args": STRINGS,
        "workingDir": {"type": "string"},
        "ports": {"type": "array", "items": closed({
            "containerPort": {"type": "integer"},
            "name": {"type": "string"},
            "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
            "hostPort": {"type": "integer"},
            "hostIP": {"type": "string"},
        }, required=("containerPort",))},
        "env": {"type": "array", "items": closed({
            "name": {"type": "string"}, "value": {"type": "string"}, "valueFrom": {"type": "object"},
        }, required=("name",))},
        "envFrom": {"type": "array"},
        "resources": RESOURCE_REQUIREMENTS,
        "volumeMounts": {"type": "array", "items": closed({
            "name": {"type": "string"},
            "mountPath": {"type": "string"},
            "readOnly": {"type": "boolean"},
            "subPath": {"type": "string"},
            "subPathExpr": {"type": "string"},
            "mountPropagation": {"type": "string"},
        }, required=("name", "mountPath"))},
        **any_object("lifecycle", "livenessProbe", "readinessProbe", "startupProbe", "securityContext"),
        **any_array("volumeDevices", "resizePolicy"),
        "restartPolicy": {"type": "string"},
        "terminationMessagePath": {"type": "string"},
        "terminationMessagePolicy": {"type": "string"},
        "stdin": {"type": "boolean"},
        "stdinOnce": {"type": "boolean"},
        "tty": {"type": "boolean"},
    },
    required=("name",),
)

VOLUME = closed(
    {
        "name": {"type": "string"},
        "emptyDir": closed({"medium": {"type": "string"}, "sizeLimit": QUANTITY}),
        "persistentVolumeClaim": closed({"claimName": {"type": "string"}, "readOnly": {"type": "boolean"}},
                                        required=("claimName",)),
        **any_object("configMap", "secret", "hostPath", "nfs", "csi", "ephemeral", "projected", "downwardAPI"),
    },
    required=("name",),
)

TOLERATION = closed({
    "key": {"type": "string"},
    "operator": {"enum": ["Exists", "Equal"]},
    "value": {"type": "string"},
    "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
    "tolerationSeconds": {"type": "integer"},
})

POD_SPEC = closed(
    {
        "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
        "initContainers": {"type": "array", "items": CONTAINER},
        "volumes": {"type": "array", "items": VOLUME},
        "nodeSelector": STRING_MAP,
        "tolerations": {"type": "array", "items": TOLERATION},
        **any_object("affinity", "securityContext", "dnsConfig", "overhead", "os"),
        **any_array("imagePullSecrets", "topologySpreadConstraints", "hostAliases", "readinessGates",
                    "schedulingGates", "resourceClaims"),
        **{name: {"type": "string"} for name in (
            "serviceAccountName", "priorityClassName", "restartPolicy", "schedulerName", "dnsPolicy",
            "runtimeClassName", "nodeName", "hostname", "subdomain", "preemptionPolicy")},
        **{name: {"type": "boolean"} for name in (
            "hostNetwork", "hostIPC", "hostPID", "shareProcessNamespace", "enableServiceLinks",
            "automountServiceAccountToken", "setHostnameAsFQDN", "hostUsers")},
        **{name: {"type": "integer"} for name in (
            "terminationGracePeriodSeconds", "activeDeadlineSeconds", "priority")},
    },
    required=("containers",),
)

POD_TEMPLATE_SPEC = closed({"metadata": OBJECT_META, "spec": POD_SPEC}, required=("spec",))

AUTOSCALER_OPTIONS = closed({
    "resources": RESOURCE_REQUIREMENTS,
    "image": {"type": "string"},
    "imagePullPolicy": {"enum": ["Always", "Never", "IfNotPresent"]},
    "securityContext": {"type": "object"},
    "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
    "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
    "env": {"type": "array"},
    "envFrom": {"type": "array"},
    "volumeMounts": {"type": "array"},
})

HEAD_GROUP_SPEC = closed(
    {
        "template": POD_TEMPLATE_SPEC,
        "headService": {"type": "object"},
        "enableIngress": {"type": "boolean"},
        "rayStartParams": STRING_MAP,
        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    },
    required=("template", "rayStartParams"),
)

WORKER_GROUP_SPEC = closed(
    {
        "suspend": {"type": "boolean"},
        "groupName": {"type": "string"},
        "replicas": {"type": "integer", "minimum": 0},
        "minReplicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 0},
        "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
        "labels": STRING_MAP,  # Ray node labels of the group's pods (KubeRay 1.5+; in the shared CRDs)
        "rayStartParams": STRING_MAP,
        "template": POD_TEMPLATE_SPEC,
        "scaleStrategy": closed({"workersToDelete": STRINGS}),
        "numOfHosts": {"type": "integer", "minimum": 1},
    },
    required=("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"),
)

RAY_CLUSTER_SPEC = closed(
    {
        "suspend": {"type": "boolean"},
        "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
        "autoscalerOptions": AUTOSCALER_OPTIONS,
        "headServiceAnnotations": STRING_MAP,
        "enableInTreeAutoscaling": {"type": "boolean"},
        "gcsFaultToleranceOptions": {"type": "object"},
        "headGroupSpec": HEAD_GROUP_SPEC,
        "rayVersion": {"type": "string"},
        "workerGroupSpecs": {"type": "array", "items": WORKER_GROUP_SPEC},
    },
    required=("headGroupSpec",),
)

RAY_JOB_SPEC = closed({
    "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
    "backoffLimit": {"type": "integer", "minimum": 0},
    "rayClusterSpec": RAY_CLUSTER_SPEC,
    "submitterPodTemplate": POD_TEMPLATE_SPEC,
    "metadata": STRING_MAP,
    "clusterSelector": STRING_MAP,
    "submitterConfig": closed({"backoffLimit": {"type": "integer"}}),
    "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
    "deletionPolicy": {"enum": ["DeleteCluster", "DeleteWorkers", "DeleteSelf", "DeleteNone"]},
    "entrypoint": {"type": "string"},
    "runtimeEnvYAML": {"type": "string"},
    "jobId": {"type": "string"},
    "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode"]},
    "entrypointResources": {"type": "string"},
    "entrypointNumCpus": {"type": "number"},
    "entrypointNumGpus": {"type": "number"},
    "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
    "shutdownAfterJobFinishes": {"type": "boolean"},
    "suspend": {"type": "boolean"},
})

RAY_SERVICE_SPEC = closed(
    {
        "serveConfigV2": {"type": "string"},
        "rayClusterConfig": RAY_CLUSTER_SPEC,
        "serveService": {"type": "object"},
        "serviceUnhealthySecondThreshold": {"type": "integer"},
        "deploymentUnhealthySecondThreshold": {"type": "integer"},
    },
    required=("serveConfigV2", "rayClusterConfig"),
)

PVC_SPEC = closed(
    {
        "accessModes": {"type": "array", "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                                             "ReadWriteOncePod"]}},
        "storageClassName": {"type": "string"},
        "volumeMode": {"enum": ["Filesystem", "Block"]},
        "resources": closed({"requests": {"type": "object", "additionalProperties": QUANTITY},
                             "limits": {"type": "object", "additionalProperties": QUANTITY}}),
        **any_object("selector", "dataSource", "dataSourceRef"),
        "volumeName": {"type": "string"},
    },
    required=("accessModes", "resources"),
)


def document(api_version: str, kind: str, spec: dict) -> dict:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **closed(
            {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": OBJECT_META, "spec": spec},
            required=("apiVersion", "kind", "metadata", "spec"),
        ),
    }


SCHEMAS = {
    "RayCluster": document("ray.io/v1", "RayCluster", RAY_CLUSTER_SPEC),
    "RayJob": document("ray.io/v1", "RayJob", RAY_JOB_SPEC),
    "RayService": document("ray.io/v1", "RayService", RAY_SERVICE_SPEC),
    "PersistentVolumeClaim": document("v1", "PersistentVolumeClaim", PVC_SPEC),
}

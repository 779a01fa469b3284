"""Cluster definitions and tooling: ``ray up`` launcher configs and KubeRay manifests (YAML files
in this folder), a local multi-node cluster for trying the cluster flow on one machine
(``python -m cluster.local``), and the one way this project starts a private local Ray
(:func:`cluster.private_ray.start_private_ray`)."""

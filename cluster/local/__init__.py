"""A local multi-node cluster (Ray head + autoscaled worker nodes, Milvus server, S3 server)."""

from cluster.local.cluster import ClusterError, ClusterState, LocalCluster

__all__ = ["ClusterError", "ClusterState", "LocalCluster"]

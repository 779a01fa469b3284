"""``python -m cluster.local up|status|env|kill-node|down``: a multi-node cluster on this machine.

    python -m cluster.local up [--workers 2] [--state-dir .cache/local-cluster] [--bucket phi3-expert]
    eval "$(python -m cluster.local env)"      # RAY_ADDRESS, the Ray token, AWS_ENDPOINT_URL for this shell
    python -m cluster.local status
    python -m cluster.local serve-config --out serve-local.yaml && serve deploy serve-local.yaml
    python -m cluster.local kill-node 1        # fault drill: SIGKILL worker node 1's raylet and workers
    python -m cluster.local kill-replica Generator   # fault drill: SIGKILL one Generator replica
    python -m cluster.local kill-replica Retriever --hang   # SIGSTOP it instead: Serve's health check must catch it
    python -m cluster.local down               # stops exactly what `up` started
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

from cluster.local.cluster import ClusterError, ClusterState, LocalCluster

DEFAULT_STATE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "local-cluster"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where cluster.json, logs and Milvus data live")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start the Ray head, N worker nodes, a Milvus server and an S3 server")
    up.add_argument("--workers", type=int, default=2, help="cpu_worker nodes kept up (the autoscaler adds others on demand)")
    up.add_argument("--bucket", default="phi3-expert")
    up.add_argument("--timeout", type=float, default=240)
    sub.add_parser("status", parents=[common], help="services, nodes and processes of the cluster")
    sub.add_parser("env", parents=[common], help="shell exports for using the cluster (eval \"$(... env)\")")
    kill = sub.add_parser("kill-node", parents=[common], help="SIGKILL worker node I (1 = the oldest alive worker node)")
    kill.add_argument("index", type=int)
    replica = sub.add_parser("kill-replica", parents=[common], help="SIGKILL one replica of a Serve deployment")
    replica.add_argument("deployment", help="e.g. Generator or Retriever")
    replica.add_argument("--app", default="expert")
    replica.add_argument("--hang", action="store_true",
                         help="SIGSTOP the replica instead (alive but unresponsive, for Serve's health check to catch)")
    sub.add_parser("down", parents=[common], help="stop every process the cluster started")
    config = sub.add_parser("serve-config", parents=[common],
                            help="serve/config.yaml for this cluster (its Milvus server, its bucket); then `serve deploy` it")
    config.add_argument("--port", type=int, default=8000, help="HTTP port of the Serve proxy (loopback)")
    config.add_argument("--out", type=Path, default=None, help="write here instead of printing")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        if args.workers < 1:
            raise ClusterError("--workers must be at least 1")
        state = LocalCluster(args.state_dir, workers=args.workers, bucket=args.bucket).up(timeout_s=args.timeout)
        summary = {k: getattr(state, k) for k in ("ray_address", "dashboard_url", "milvus_uri", "s3_endpoint", "bucket")}
        print(json.dumps(summary, indent=2))
        print(f"\nwritten to {state.path}; for this shell: eval \"$(python -m cluster.local env"
              f"{'' if args.state_dir == DEFAULT_STATE_DIR else ' --state-dir ' + str(args.state_dir)})\"")
        return 0
    state = ClusterState.load(args.state_dir)
    cluster = LocalCluster(args.state_dir, workers=state.workers, bucket=state.bucket)
    if args.command == "env":
        print("".join(f"export {k}={shlex.quote(v)}\n" for k, v in state.client_env().items()), end="")
    elif args.command == "status":
        print(json.dumps(cluster.status(state), indent=2))
    elif args.command == "kill-node":
        node = cluster.kill_node(state, args.index)
        print(f"killed worker node {args.index} ({node['node_id']}): {len(node['killed_pids'])} processes")
    elif args.command == "kill-replica":
        killed = cluster.kill_replica(state, args.deployment, args.app, hang=args.hang)
        print(f"{'stopped (SIGSTOP)' if args.hang else 'killed'} a {args.deployment} replica (pid {killed['pid']}); "
              "Serve replaces it")
    elif args.command == "serve-config":
        text = yaml.safe_dump(cluster.serve_config(state, port=args.port), sort_keys=False)
        if args.out:
            args.out.write_text(text)
            print(f"wrote {args.out}; deploy it with: serve deploy {args.out}")
        else:
            print(text, end="")
    elif args.command == "down":
        left = cluster.down(state)
        if left:
            print(f"error: processes still alive: {left}", file=sys.stderr)
            return 1
        print("stopped every process of the cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local multi-node cluster: a Ray head whose autoscaler runs worker nodes as separate raylets
(Ray's ``fake_multinode`` provider, driven by ``cluster/local-autoscaler.yaml``), a Milvus
server and an S3 server, all on this machine, all stopped by process id.

Why the fake provider and not ``ray start`` per node: it is Ray's real autoscaler. Placement
groups and Serve replicas are packed onto the node types of the YAML, nodes are added when
demand exceeds the cluster and removed when idle, and a killed node is replaced to keep
``min_workers`` -- the behaviour a cluster on AWS has, which ``ray start`` per node cannot show.

State lives in ``<state-dir>/cluster.json`` (addresses, process ids, this cluster's marker) so
``status``, ``down`` and ``kill-node`` work from any shell. Nothing listens beyond loopback
except Ray's GCS and raylets, which Ray always binds to the machine's address.
"""

from __future__ import annotations

import json
import os
import signal
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import yaml

from cluster.local import services
from cluster.local.processes import MARKER_ENV, alive, free_port, processes_with, stop_pids

AUTOSCALER_YAML = Path(__file__).resolve().parents[1] / "local-autoscaler.yaml"
SERVE_OVERRIDES = Path(__file__).resolve().parents[1] / "serve-local-overrides.yaml"
HEAD_NODE_ID = "f" * 51 + "00000"  # the fake provider's head id: its load reports must match it
NODE_ID_ENV = "RAY_OVERRIDE_NODE_ID_FOR_TESTING"  # the fake provider gives every node its id this way
STATE_FILE = "cluster.json"
STOP_ROUNDS = 5  # `down`: rounds of find-and-stop before it reports what is still alive


class ClusterError(RuntimeError):
    """The local cluster cannot do what was asked; the message says what to do instead."""


@dataclass
class ClusterState:
    state_dir: str
    marker: str
    ray_address: str  # the GCS, for code inside the cluster (ray.init)
    dashboard_url: str  # jobs, Serve and state APIs: what `ray job submit` / `serve deploy` take
    milvus_uri: str
    s3_endpoint: str
    bucket: str
    token_path: str
    workers: int
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / STATE_FILE

    def save(self) -> None:
        self.path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> "ClusterState":
        file = Path(state_dir) / STATE_FILE
        if not file.is_file():
            raise ClusterError(f"no local cluster in {state_dir} (no {STATE_FILE}); start one with "
                               f"`python -m cluster.local up --state-dir {state_dir}`")
        return cls(**json.loads(file.read_text()))

    def client_env(self) -> dict[str, str]:
        """What a shell needs to use this cluster: `ray job submit`, `serve deploy`, S3 clients."""
        return {
            "RAY_ADDRESS": self.dashboard_url,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": self.token_path,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "MILVUS_URI": self.milvus_uri,  # for `--uri "$MILVUS_URI"` (a job's driver sees only what it is given)
            **services.S3_CREDENTIALS,
        }


def _node_type(resources: dict, types: dict, *, head: bool) -> str:
    """The node type whose custom (accelerator) resource the node has; plain CPU nodes are cpu_worker."""
    if head:
        return "ray.head.default"
    for name, spec in types.items():
        custom = set(spec["resources"]) - {"CPU", "GPU", "object_store_memory"}
        if custom and custom <= set(resources):
            return name
    return "cpu_worker"


class LocalCluster:
    def __init__(self, state_dir: Path, *, workers: int = 2, bucket: str = "phi3-expert", repo: Path | None = None):
        self.state_dir = Path(state_dir).resolve()
        self.workers = workers
        self.bucket = bucket
        self.repo = repo or Path(__file__).resolve().parents[2]

    # -- up -----------------------------------------------------------------------------
    def up(self, timeout_s: float = 240) -> ClusterState:
        from ray._private.services import get_node_ip_address

        self.state_dir.mkdir(parents=True, exist_ok=True)
        if (self.state_dir / STATE_FILE).is_file():
            old = ClusterState.load(self.state_dir)
            if self._live_pids(old):
                raise ClusterError(f"a local cluster is already up in {self.state_dir} (dashboard {old.dashboard_url}); "
                                   f"run `python -m cluster.local down --state-dir {self.state_dir}` first")
        marker = uuid.uuid4().hex[:12]
        token_path = self.state_dir / "auth_token"
        token_path.write_text(secrets.token_hex(32))
        token_path.chmod(0o600)
        gcs = f"{get_node_ip_address()}:{free_port()}"
        state = ClusterState(
            state_dir=str(self.state_dir), marker=marker, ray_address=gcs,
            dashboard_url=f"http://127.0.0.1:{free_port()}", milvus_uri=f"http://127.0.0.1:{free_port()}",
            s3_endpoint=f"http://127.0.0.1:{free_port()}", bucket=self.bucket, token_path=str(token_path),
            workers=self.workers,
        )
        env = self._env(state)
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        try:
            s3 = services.start_s3(int(state.s3_endpoint.rsplit(":", 1)[1]), logs / "s3.log", env)
            state.pids["s3"] = s3.pid
            milvus = services.start_milvus(
                int(state.milvus_uri.rsplit(":", 1)[1]), self.state_dir / "milvus", logs / "milvus.log", env
            )
            state.pids["milvus"] = milvus.pid
            state.save()  # from here on `down` can clean up whatever happens next
            services.wait_for("the S3 server", lambda: services.s3_ready(state.s3_endpoint), s3, logs / "s3.log", 60)
            services.create_bucket(state.s3_endpoint, self.bucket)
            services.wait_for("the Milvus server", lambda: services.milvus_ready(state.milvus_uri), milvus,
                              logs / "milvus.log", 90)
            head = self._start_head(state, env, logs / "ray-head.log")
            state.pids["ray_head"] = head.pid
            state.save()
            self._wait_for_head(state, head, logs / "ray-head.log", timeout_s)
            self.wait_for_workers(state, self.workers, timeout_s)
        except BaseException:
            self.down(state)
            raise
        state.save()
        (self.state_dir / "env.sh").write_text(
            "".join(f"export {k}={v}\n" for k, v in state.client_env().items())
        )
        return state

    def _env(self, state: ClusterState) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            MARKER_ENV: state.marker,
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),  # `python` in a job = this venv's
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": state.token_path,
            # Code running inside the cluster finds it (and no other cluster on this machine).
            "RAY_ADDRESS": state.ray_address,
            "RAY_FAKE_CLUSTER": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            # Autoscaler v2 reconciles the cloud's instances with the nodes Ray sees, so a node
            # that dies is noticed and replaced (v1 keeps waiting for it as "uninitialized").
            "RAY_enable_autoscaler_v2": "1",
            "RAY_CLOUD_INSTANCE_ID": HEAD_NODE_ID,
            NODE_ID_ENV: HEAD_NODE_ID,
            "AWS_ENDPOINT_URL": state.s3_endpoint,
            **services.S3_CREDENTIALS,
        }
        env.pop("RAY_AUTH_TOKEN", None)
        return env

    def _autoscaler_config(self, state: ClusterState) -> Path:
        config = yaml.safe_load(AUTOSCALER_YAML.read_text())
        config["provider"].update(gcs_address=state.ray_address, head_node_id=HEAD_NODE_ID, launch_multiple=True)
        workers = config["available_node_types"]["cpu_worker"]
        workers["min_workers"] = state.workers
        workers["max_workers"] = max(workers["max_workers"], state.workers)
        config["max_workers"] = max(config["max_workers"], state.workers + 4)
        path = self.state_dir / "autoscaler.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _start_head(self, state: ClusterState, env: dict[str, str], log: Path) -> subprocess.Popen:
        head = yaml.safe_load(AUTOSCALER_YAML.read_text())["available_node_types"]["ray.head.default"]["resources"]
        temp_dir = self.repo / ".cache" / "ray" / f"lc-{state.marker[:6]}"  # short: Ray's socket paths are limited
        command = [
            str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--disable-usage-stats",
            f"--port={state.ray_address.rsplit(':', 1)[1]}",
            f"--dashboard-port={state.dashboard_url.rsplit(':', 1)[1]}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--ray-client-server-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--num-cpus={head['CPU']}",
            "--num-gpus=0",
            f"--object-store-memory={head['object_store_memory']}",
            f"--temp-dir={temp_dir}",
            f"--autoscaling-config={self._autoscaler_config(state)}",
        ]
        with open(log, "ab") as out:
            return subprocess.Popen(command, cwd=self.repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def _wait_for_head(self, state: ClusterState, head: subprocess.Popen, log: Path, timeout_s: float) -> None:
        def answers() -> bool:
            try:
                return httpx.get(f"{state.dashboard_url}/api/version", headers=self.auth(state), timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        services.wait_for("the Ray head", answers, head, log, timeout_s)

    # -- nodes --------------------------------------------------------------------------
    @staticmethod
    def auth(state: ClusterState) -> dict[str, str]:
        return {"Authorization": f"Bearer {Path(state.token_path).read_text().strip()}"}

    def nodes(self, state: ClusterState) -> list[dict]:
        """Every node the GCS knows, alive or dead: {node_id, alive, head, node_type, resources}.

        From the state API (the GCS node table), not the dashboard's node summary: the summary
        is refreshed on an interval from each raylet's stats and omitted a new node's custom
        resource (``gpu_l4``) for a while, so a Generator's node read as cpu_worker."""
        types = yaml.safe_load(AUTOSCALER_YAML.read_text())["available_node_types"]
        out = []
        for node in self._state_api(state, "nodes"):
            resources = node.get("resources_total") or {}
            head = bool(node.get("is_head_node"))
            out.append({
                "node_id": node.get("node_id", ""),
                "alive": node.get("state") == "ALIVE",
                "head": head,
                "node_type": _node_type(resources, types, head=head),
                "resources": {k: v for k, v in resources.items() if not k.startswith("node:")},
            })
        return out

    def worker_nodes(self, state: ClusterState) -> list[dict]:
        """Alive worker nodes, oldest first (the order `kill-node I` counts in, from 1)."""
        return sorted((n for n in self.nodes(state) if n["alive"] and not n["head"]), key=lambda n: n["node_id"])

    def alive_nodes_of_type(self, state: ClusterState, node_type: str) -> int:
        """How many nodes of a launcher node type (``gpu_l4``...) are alive: what the autoscaler scales."""
        return sum(1 for n in self.nodes(state) if n["alive"] and n["node_type"] == node_type)

    def wait_for_workers(self, state: ClusterState, count: int, timeout_s: float) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                workers = self.worker_nodes(state)
            except (httpx.HTTPError, KeyError):
                workers = []
            if len(workers) >= count:
                return workers
            time.sleep(1)
        raise ClusterError(f"only {len(workers)} of {count} worker nodes came up within {timeout_s:g}s; "
                           f"see {self.state_dir / 'logs'} and the Ray logs under .cache/ray/lc-{state.marker[:6]}")

    def kill_node(self, state: ClusterState, index: int) -> dict:
        """SIGKILL worker node ``index`` (1-based, see :meth:`worker_nodes`): its raylet and its workers."""
        workers = self.worker_nodes(state)
        if not 1 <= index <= len(workers):
            raise ClusterError(f"there is no worker node {index}; alive worker nodes: {len(workers)} "
                               f"(`python -m cluster.local status` lists them)")
        node = workers[index - 1]
        pids = processes_with({MARKER_ENV: state.marker, NODE_ID_ENV: node["node_id"]})
        for pid in pids:
            os.kill(pid, 9)
        return {**node, "killed_pids": pids}

    def actors(self, state: ClusterState, class_name: str) -> list[dict]:
        """Alive actors of a class (``RayTrainWorker``, ``ServeReplica:expert:Generator`` ...), from the state API."""
        return [a for a in self._state_api(state, "actors")
                if a.get("class_name") == class_name and a.get("state") == "ALIVE"]

    def _state_api(self, state: ClusterState, resource: str) -> list[dict]:
        """Rows of Ray's state API (``/api/v0/<resource>``, what ``ray list <resource>`` reads)."""
        r = httpx.get(f"{state.dashboard_url}/api/v0/{resource}", params={"detail": "1", "limit": "10000"},
                      headers=self.auth(state), timeout=30)
        r.raise_for_status()
        return r.json()["data"]["result"]["result"]

    def kill_replica(self, state: ClusterState, deployment: str, app: str = "expert", *, hang: bool = False) -> dict:
        """SIGKILL one replica process of a Serve deployment (a fault drill); Serve replaces it.

        ``hang``: SIGSTOP instead, a replica that is alive but answers nothing (a deadlock, a
        stuck device): only Serve's health check can tell, and its controller replaces it."""
        replicas = self.actors(state, f"ServeReplica:{app}:{deployment}")
        if not replicas:
            raise ClusterError(f"no running replica of deployment {deployment!r} in app {app!r}; `serve status` lists them")
        replica = replicas[0]
        os.kill(replica["pid"], signal.SIGSTOP if hang else signal.SIGKILL)
        return {"pid": replica["pid"], "node_id": replica["node_id"], "actor_id": replica["actor_id"]}

    # -- serving ------------------------------------------------------------------------
    def serve_config(self, state: ClusterState, *, port: int = 8000) -> dict:
        """serve/config.yaml for this cluster: cluster/serve-local-overrides.yaml plus its Milvus and bucket."""
        from cluster.render import SERVE_CONFIG, load_yaml, merge

        overrides = yaml.safe_load(
            SERVE_OVERRIDES.read_text().replace("BUCKET", state.bucket).replace("MILVUS_URI", state.milvus_uri)
        )
        overrides["http_options"]["port"] = port
        return merge(load_yaml(SERVE_CONFIG), overrides)

    # -- status / down ------------------------------------------------------------------
    def _live_pids(self, state: ClusterState) -> list[int]:
        return sorted(set(processes_with({MARKER_ENV: state.marker})) | {p for p in state.pids.values() if alive(p)})

    def status(self, state: ClusterState) -> dict:
        report = {
            "dashboard_url": state.dashboard_url, "milvus_uri": state.milvus_uri, "s3_endpoint": state.s3_endpoint,
            "bucket": state.bucket,
            "services": {name: ("running" if alive(pid) else "stopped") for name, pid in state.pids.items()},
            "milvus": "answers" if services.milvus_ready(state.milvus_uri) else "not answering",
            "s3": "answers" if services.s3_ready(state.s3_endpoint) else "not answering",
        }
        try:
            report["nodes"] = self.nodes(state)
        except httpx.HTTPError as exc:
            report["nodes"] = f"the Ray head does not answer ({type(exc).__name__})"
        report["processes"] = len(self._live_pids(state))
        return report

    def down(self, state: ClusterState | None = None) -> list[int]:
        """Stop exactly the processes this cluster started; returns those still alive (none)."""
        state = state or ClusterState.load(self.state_dir)
        # Processes started while a round stopped the others (a raylet's new worker, a node the
        # autoscaler launched) carry the marker too: look again until a round finds none.
        for round_ in range(STOP_ROUNDS):
            left = self._live_pids(state)
            if not left:
                break
            stop_pids(left, grace_s=3.0 if round_ == 0 else 1.0)
        else:
            left = self._live_pids(state)
        if not left:
            state.path.unlink(missing_ok=True)
        return left

"""Cluster benchmark on the local multi-node cluster (``python -m cluster.local``): faults and scaling.

Everything goes through the cluster the way a platform team drives one (``ray job submit``,
``serve deploy``, HTTP), with the fault drills of ``cluster.local`` (``kill-node``,
``kill-replica``). Measured:

1. Ingest throughput (chunks/s) with 1 and with 2 worker nodes (one embedder actor per node,
   pinned by asking a whole node's CPUs), same corpus, fresh collection each time.
2. Losing a worker node mid-training (4 workers SPREAD, ZeRO-3 over gloo, checkpoints in S3):
   time to detect (the GCS marks the node dead), time to resume (first training step after
   the kill), steps redone; and whether the result equals an uninterrupted run's.
3. Losing a Generator replica under load (2 replicas): requests failed by status, in flight
   at the kill vs arriving later, p99 latency around the recovery.
4. Autoscaling: a load makes the Generator go from 1 to 2 replicas (the second needs a node the
   autoscaler adds), then replicas and nodes scale back down; requests failed meanwhile.

    python benchmarks/cluster/bench_cluster.py            # ~30 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
for _key, _value in {"EXPERT_CACHE_DIR": REPO / ".cache", "HF_HOME": REPO / ".cache" / "huggingface",
                     "TORCH_EXTENSIONS_DIR": REPO / ".cache" / "torch_extensions"}.items():
    os.environ.setdefault(_key, str(_value))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import yaml  # noqa: E402

from benchmarks.results_header import loads, machine_line, produced_by  # noqa: E402
from benchmarks.retrieval.synthetic_corpus import write_corpus  # noqa: E402
from cluster.local.cluster import ClusterState, LocalCluster  # noqa: E402
from cluster.local.processes import free_port  # noqa: E402

PYTHON = sys.executable
BIN = str(Path(PYTHON).parent)


def shell_env(state: ClusterState) -> dict[str, str]:
    env = {**os.environ, **state.client_env()}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def sh(command: list[str], env: dict, timeout_s: float = 600) -> str:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} failed:\n{(done.stdout + done.stderr)[-5000:]}")
    return done.stdout + done.stderr


@contextmanager
def local_cluster(workers: int):
    state_dir = Path(tempfile.mkdtemp(dir=REPO / ".cache", prefix="bench-cluster-"))
    cluster = LocalCluster(state_dir, workers=workers)
    state = cluster.up()
    try:
        yield cluster, state
    finally:
        left = cluster.down(state)
        assert not left, f"processes left: {left}"


def submit(state: ClusterState, *entrypoint: str, wait: bool = True) -> str:
    command = [str(Path(BIN) / "ray"), "job", "submit", "--address", state.dashboard_url, "--working-dir", "."]
    out = sh([*command, *(() if wait else ("--no-wait",)), "--", *entrypoint], shell_env(state), timeout_s=1800)
    if wait:
        return out
    return next(w.strip("'") for w in out.split() if w.strip("'").startswith("raysubmit_"))


def jobs(state: ClusterState):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(state.dashboard_url, headers=LocalCluster.auth(state))


# -- 1. ingest ---------------------------------------------------------------------------------
def measure_ingest(corpus: Path, files: int) -> dict[int, dict]:
    from retrieval.config import load_config

    out = {}
    for workers in (1, 2):
        with local_cluster(workers) as (cluster, state):
            config = load_config(None).model_dump(mode="json")
            config["ingest"].update(ray_embed_actors=workers, ray_actor_cpus=2)  # one actor per worker node
            path = Path(state.state_dir) / "retrieval.yaml"
            path.write_text(yaml.safe_dump(config))
            text = submit(state, "python", "-m", "retrieval", "ingest", str(corpus), "--uri", state.milvus_uri,
                          "--collection", "bench", "--ray", "--json", "--no-progress", "--config", str(path))
            report, _ = json.JSONDecoder().raw_decode(text[text.rindex("{", 0, text.index('"counts"')):])
            out[workers] = {"chunks": report["chunks_written"], "seconds": report["seconds"],
                            "chunks_per_s": report["chunks_written"] / report["seconds"], "nodes": len(report["embed_nodes"])}
            print(f"ingest with {workers} worker node(s): {out[workers]}", flush=True)
    return out


# -- 2. training with a node loss ------------------------------------------------------------------
@dataclass
class TrainRun:
    name: str
    step_seen: dict[int, float] = field(default_factory=dict)  # first time each step's line appeared
    resumed_seen: float | None = None  # when "[train] resumed from the checkpoint at step N" first appeared
    kill_at: float | None = None
    killed_after_step: int | None = None
    node_dead_at: float | None = None
    finished_at: float | None = None
    logs: str = ""


def run_training(cluster: LocalCluster, state: ClusterState, name: str, steps: int, kill_after: int | None) -> TrainRun:
    import re

    overrides = ["--set", f"training.max_steps={steps}", "--set", "checkpointing.every_steps=4",
                 "--set", f"output.adapter_name={name}", "--set", "data.max_seq_len=256",
                 "--set", f"output.registry=s3://{state.bucket}/adapters", "--set", f"output.run_dir=s3://{state.bucket}/runs"]
    job = submit(state, "python", "-m", "train", "--config", "train/recipes/cpu-cluster.yaml", *overrides, wait=False)
    client, run = jobs(state), TrainRun(name)
    killed_node = None
    while True:
        status = client.get_job_status(job).value
        run.logs = client.get_job_logs(job)
        now = time.monotonic()
        for step in (int(m) for m in re.findall(r"\[train\] step (\d+)/", run.logs)):
            run.step_seen.setdefault(step, now)
        if run.kill_at is not None and run.resumed_seen is None and "[train] resumed from the checkpoint" in run.logs:
            run.resumed_seen = now
        if kill_after and run.kill_at is None and kill_after in run.step_seen:
            workers = {}
            for actor in cluster.actors(state, "RayTrainWorker"):
                workers[actor["node_id"]] = workers.get(actor["node_id"], 0) + 1
            alive = cluster.worker_nodes(state)
            busiest = max(alive, key=lambda n: workers.get(n["node_id"], 0))
            run.kill_at, run.killed_after_step, killed_node = time.monotonic(), max(run.step_seen), busiest["node_id"]
            cluster.kill_node(state, alive.index(busiest) + 1)
            print(f"{name}: killed node {killed_node[-5:]} ({workers.get(killed_node, 0)} workers) after step "
                  f"{run.killed_after_step}", flush=True)
        if killed_node and run.node_dead_at is None:
            if not any(n["node_id"] == killed_node and n["alive"] for n in cluster.nodes(state)):
                run.node_dead_at = time.monotonic()
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            run.finished_at = time.monotonic()
            if status != "SUCCEEDED":
                raise RuntimeError(f"training job {status}:\n{run.logs[-5000:]}")
            return run
        time.sleep(0.5)


def resumed_at(run: TrainRun) -> tuple[float | None, int, float]:
    """(seconds from the kill to the replaced group's resume, the checkpoint step it resumed from,
    seconds from the kill to the first step past the kill point).

    From the trainer's own "resumed from the checkpoint at step N" line: the job's log stream
    repeats earlier lines after a node dies, so the step numbers going back prove nothing."""
    import re

    found = re.search(r"\[train\] resumed from the checkpoint at step (\d+)", run.logs)
    if not found:
        raise RuntimeError("the interrupted run never logged a resume from a checkpoint")
    later = [t for step, t in run.step_seen.items() if step > run.killed_after_step]
    return (run.resumed_seen - run.kill_at if run.resumed_seen else None, int(found.group(1)),
            min(later) - run.kill_at if later else float("nan"))


def compare_adapters(state: ClusterState, a: str, b: str) -> dict:
    import torch
    from safetensors.torch import load_file

    from modeling import AdapterRegistry

    os.environ.update(state.client_env())
    registry = AdapterRegistry(f"s3://{state.bucket}/adapters", refresh_s=0)
    ta, tb = (load_file(str(registry.path(n) / "adapter_model.safetensors")) for n in (a, b))
    diff = max(float((ta[k] - tb[k]).abs().max()) for k in ta)
    ma, mb = (registry.metadata(n)["metrics"] for n in (a, b))
    return {"bit_identical": all(torch.equal(ta[k], tb[k]) for k in ta), "max_abs_diff": diff,
            "eval_loss": (ma.get("eval_loss_end"), mb.get("eval_loss_end")), "attempts": (ma.get("attempts"), mb.get("attempts"))}


# -- 3./4. serving -----------------------------------------------------------------------------
@dataclass
class Request:
    started: float
    ended: float
    status: int | str


class Load:
    """Closed-loop clients against /v1/chat/completions until stopped; every request recorded."""

    def __init__(self, url: str, clients: int, max_tokens: int) -> None:
        self.url, self.clients, self.max_tokens = url, clients, max_tokens
        self.records: list[Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    async def _run(self) -> None:
        body = {"model": "base", "messages": [{"role": "user", "content": "Describe the pump maintenance."}],
                "max_tokens": self.max_tokens}
        async with httpx.AsyncClient(base_url=self.url, timeout=300) as client:
            async def worker() -> None:
                while not self._stop.is_set():
                    started = time.monotonic()
                    try:
                        status: int | str = (await client.post("/v1/chat/completions", json=body)).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    self.records.append(Request(started, time.monotonic(), status))
                    if status != 200:
                        await asyncio.sleep(0.5)  # a client backs off instead of spinning on a failing endpoint
            await asyncio.gather(*(worker() for _ in range(self.clients)))


def deploy(state: ClusterState, generator: dict, port: int) -> str:
    env = shell_env(state)
    spec = LocalCluster(Path(state.state_dir)).serve_config(state, port=port)
    spec["applications"][0]["args"]["generator"].update(max_tokens_limit=64, default_max_tokens=32)
    for d in spec["applications"][0]["deployments"]:
        if d["name"] == "Generator":
            d.update(generator)
    path = Path(state.state_dir) / "serve.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sh([str(Path(BIN) / "serve"), "deploy", str(path), "--address", state.dashboard_url], env, 120)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = app_status(state)
        if status == "DEPLOY_FAILED":
            raise RuntimeError(f"serve deploy failed: {serve_details(state)['applications']['expert'].get('message', '')[-3000:]}")
        wanted = generator.get("num_replicas", 1)
        if running_replicas(state) >= (wanted if isinstance(wanted, int) else 1) and status == "RUNNING":
            return url
        time.sleep(2)
    raise TimeoutError("Serve app not RUNNING")


def serve_details(state: ClusterState) -> dict:
    r = httpx.get(f"{state.dashboard_url}/api/serve/applications/", headers=LocalCluster.auth(state), timeout=30)
    return r.json()


def app_status(state: ClusterState) -> str:
    return serve_details(state).get("applications", {}).get("expert", {}).get("status", "")


def running_replicas(state: ClusterState, deployment: str = "Generator") -> int:
    app = serve_details(state).get("applications", {}).get("expert", {})
    replicas = app.get("deployments", {}).get(deployment, {}).get("replicas", [])
    return sum(1 for r in replicas if r.get("state") == "RUNNING")


def l4_nodes(cluster: LocalCluster, state: ClusterState) -> int:
    return cluster.alive_nodes_of_type(state, "gpu_l4")


def measure_replica_loss(cluster: LocalCluster, state: ClusterState, clients: int, port: int) -> dict:
    url = deploy(state, {"num_replicas": 2, "autoscaling_config": None}, port)
    time.sleep(5)
    with Load(url, clients, 32) as load:
        time.sleep(20)
        killed = cluster.kill_replica(state, "Generator")
        kill_at = time.monotonic()
        detected = None
        while time.monotonic() - kill_at < 120:
            if detected is None and running_replicas(state) < 2:
                detected = time.monotonic()
            if detected and running_replicas(state) == 2:
                break
            time.sleep(0.5)
        replaced = time.monotonic()
        time.sleep(15)
    records = load.records
    in_flight = [r for r in records if r.started < kill_at < r.ended]
    after = [r for r in records if r.started >= (detected or kill_at)]
    window = [r.ended - r.started for r in records if kill_at - 10 <= r.started <= replaced]
    count = lambda rs: {str(s): sum(1 for r in rs if r.status == s) for s in sorted({r.status for r in rs}, key=str)}
    return {
        "killed_pid": killed["pid"], "requests": len(records), "by_status": count(records),
        "in_flight_at_kill": count(in_flight), "arrived_after_detection": count(after),
        "detect_s": (detected - kill_at) if detected else None, "replaced_s": replaced - kill_at,
        "p99_around_recovery_s": sorted(window)[max(0, int(0.99 * len(window)) - 1)] if window else None,
        "p50_s": statistics.median(r.ended - r.started for r in records),
    }


def measure_autoscaling(cluster: LocalCluster, state: ClusterState, clients: int, port: int) -> dict:
    url = deploy(state, {"num_replicas": "auto"}, port)
    settle, seen = time.monotonic(), []
    while (now := (running_replicas(state), l4_nodes(cluster, state))) != (1, 1):  # one replica, one node
        if not seen or seen[-1][1:] != now:  # what changed and when, for the error below
            seen.append((round(time.monotonic() - settle), *now))
        if time.monotonic() - settle > 300:
            status = sh([str(Path(BIN) / "ray"), "status", "-v", "--address", state.ray_address], shell_env(state), 60)
            raise TimeoutError(f"the Generator did not settle on 1 replica and 1 gpu_l4 node within 300 s; "
                               f"(seconds, replicas, gpu_l4 nodes) seen: {seen}; ray status:\n{status[-3000:]}")
        time.sleep(2)
    events: dict[str, float] = {}
    start = time.monotonic()
    with Load(url, clients, 48) as load:
        while time.monotonic() - start < 300:
            if "second_replica_running_s" not in events and running_replicas(state) >= 2:
                events["second_replica_running_s"] = time.monotonic() - start
            if "node_added_s" not in events and l4_nodes(cluster, state) >= 2:
                events["node_added_s"] = time.monotonic() - start
            if len(events) == 2 and time.monotonic() - start - events["second_replica_running_s"] > 20:
                break
            time.sleep(1)
        load_stopped = time.monotonic()
    stop = time.monotonic()
    with Load(url, 1, 8) as trickle:  # a light load keeps measuring failures during the scale-down
        while time.monotonic() - stop < 400:
            if "replicas_back_to_1_s" not in events and running_replicas(state) == 1:
                events["replicas_back_to_1_s"] = time.monotonic() - stop
            if "node_removed_s" not in events and l4_nodes(cluster, state) == 1:
                events["node_removed_s"] = time.monotonic() - stop
            if len(events) == 4:
                break
            time.sleep(1)
    up = [r.status for r in load.records]
    down = [r.status for r in trickle.records]
    return {**events, "load_s": load_stopped - start, "clients": clients,
            "failed_during_scale_up": sum(1 for s in up if s != 200), "requests_during_scale_up": len(up),
            "failed_during_scale_down": sum(1 for s in down if s != 200), "requests_during_scale_down": len(down)}


def measure_on_one_cluster(results: dict, done, args: argparse.Namespace) -> None:
    """Training with a node loss, replica loss and autoscaling, on one 2-worker cluster."""
    port = free_port()  # Serve's HTTP port is fixed by the first deploy on a cluster: every redeploy keeps it
    with local_cluster(2) as (cluster, state):
        if "training" not in results:
            interrupted = run_training(cluster, state, "bench-interrupted", args.steps, args.kill_after)
            reference = run_training(cluster, state, "bench-reference", args.steps, None)
            resume_s, resumed_from, past_kill_s = resumed_at(interrupted)
            same = compare_adapters(state, "bench-interrupted", "bench-reference")
            done("training", {
                "killed_after_step": interrupted.killed_after_step,
                "detect_s": interrupted.node_dead_at - interrupted.kill_at,
                "resume_s": resume_s, "resumed_from_step": resumed_from, "past_kill_point_s": past_kill_s,
                "steps_redone": interrupted.killed_after_step - resumed_from,
                "interrupted_s": interrupted.finished_at - min(interrupted.step_seen.values()),
                "reference_s": reference.finished_at - min(reference.step_seen.values()), **same})
        if "replica_loss" not in results:
            done("replica_loss", measure_replica_loss(cluster, state, args.clients, port))
        if "autoscaling" not in results:
            try:
                done("autoscaling", measure_autoscaling(cluster, state, args.clients, port))
            except (TimeoutError, RuntimeError) as exc:  # recorded, not hidden: RESULTS.md says what stopped it
                done("autoscaling", {"error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="synthetic documents for the ingest measurement")
    parser.add_argument("--steps", type=int, default=12, help="training steps (checkpoint every 4)")
    parser.add_argument("--kill-after", type=int, default=6, help="kill a worker node once this step is logged")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cluster" / "RESULTS.md")
    parser.add_argument("--partial", type=Path, default=REPO / ".cache" / "bench-cluster-partial.json",
                        help="each finished part is saved here; a rerun with --reuse skips the parts it holds")
    parser.add_argument("--reuse", action="store_true", help="skip the parts --partial already holds")
    args = parser.parse_args()
    command = ("python benchmarks/cluster/bench_cluster.py " + shlex.join(sys.argv[1:])).strip()
    started, load_avg = time.monotonic(), os.getloadavg()
    results: dict = json.loads(args.partial.read_text()) if args.reuse and args.partial.exists() else {}

    def done(part: str, value: dict) -> None:
        results[part] = value
        args.partial.write_text(json.dumps(results, indent=2, default=str))

    if "ingest" not in results:
        corpus = Path(tempfile.mkdtemp(dir=REPO / ".cache", prefix="bench-corpus-"))
        write_corpus(corpus, args.files, seed=7)
        done("ingest", measure_ingest(corpus, args.files))
    if {"training", "replica_loss", "autoscaling"} - set(results):
        measure_on_one_cluster(results, done, args)
    results["ingest"] = {int(k): v for k, v in results["ingest"].items()}  # JSON keys come back as strings
    write_results(args.out, command, results, load_avg, time.monotonic() - started)


def autoscaling_lines(sc: dict) -> list[str]:
    if "error" in sc:
        return [f"**Not measured**: the run stopped with `{sc['error']}`."]
    return [
        "| load start -> 2nd replica serving | -> node added | after the load: -> 1 replica | -> node removed "
        "| failed during scale-up | failed during scale-down |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {sc.get('second_replica_running_s', float('nan')):.0f} s | {sc.get('node_added_s', float('nan')):.0f} s | "
        f"{sc.get('replicas_back_to_1_s', float('nan')):.0f} s | {sc.get('node_removed_s', float('nan')):.0f} s | "
        f"{sc['failed_during_scale_up']} of {sc['requests_during_scale_up']} | "
        f"{sc['failed_during_scale_down']} of {sc['requests_during_scale_down']} |",
    ]


def write_results(out: Path, command: str, r: dict, load_avg: tuple, elapsed: float) -> None:
    ing, tr, rl, sc = r["ingest"], r["training"], r["replica_loss"], r["autoscaling"]
    lines = [
        "# Cluster benchmark: node and replica loss, autoscaling, ingest over nodes (local multi-node cluster)",
        "",
        *produced_by(command),
        machine_line() + f"{loads(load_avg)} at the start. Every \"node\" is a separate raylet on this machine "
        "(`python -m cluster.local up`: Ray's autoscaler v2 with the fake multi-node provider, a Milvus server, an S3 "
        "server), so nodes share the same two cores: speed-ups from more nodes are bounded by that.",
        "- Raw numbers: the JSON block at the end.",
        "",
        "## Ingest over worker nodes (Ray Data, one embedder actor per worker node)",
        "",
        "| worker nodes | chunks | seconds | chunks/s | nodes that embedded |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[f"| {w} | {v['chunks']} | {v['seconds']:.1f} | {v['chunks_per_s']:.1f} | {v['nodes']} |" for w, v in ing.items()],
        "",
        f"2 nodes / 1 node: **{ing[2]['chunks_per_s'] / ing[1]['chunks_per_s']:.2f}x** chunks/s.",
        "",
        "## Losing a worker node mid-training (`train/recipes/cpu-cluster.yaml`: 4 workers SPREAD, ZeRO-3, S3 checkpoints)",
        "",
        "| killed after step | time to detect (node marked dead) | time to resume (replaced group restored) "
        "| back past the kill point | resumed from checkpoint step | steps redone | interrupted run | uninterrupted run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {tr['killed_after_step']} | {tr['detect_s']:.1f} s | "
        f"{'not recorded' if tr.get('resume_s') is None else format(tr['resume_s'], '.1f') + ' s'} | "
        f"{tr['past_kill_point_s']:.1f} s | {tr['resumed_from_step']} | "
        f"{tr['steps_redone']} | {tr['interrupted_s']:.0f} s | {tr['reference_s']:.0f} s |",
        "",
        f"Result against the uninterrupted run: bit-identical adapter **{tr['bit_identical']}** (max |difference| "
        f"{tr['max_abs_diff']:.3g}); final eval loss {tr['eval_loss'][0]} vs {tr['eval_loss'][1]}; attempts "
        f"{tr['attempts'][0]} vs {tr['attempts'][1]}.",
        "",
        "## Losing a Generator replica under load (2 replicas, closed-loop clients)",
        "",
        "| requests | by status | in flight at the kill | arrived after the loss was detected | detected after | replaced after "
        "| p99 around the recovery | p50 overall |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
        f"| {rl['requests']} | {rl['by_status']} | {rl['in_flight_at_kill']} | {rl['arrived_after_detection']} | "
        f"{rl['detect_s'] or float('nan'):.1f} s | {rl['replaced_s']:.1f} s | {rl['p99_around_recovery_s'] or 0:.1f} s | "
        f"{rl['p50_s']:.1f} s |",
        "",
        "## Autoscaling the Generator (1 -> 2 replicas; each needs a gpu_l4 node)",
        "",
        *(autoscaling_lines(sc)),
        "",
        f"Whole run: {elapsed / 60:.1f} minutes.",
        "",
        "```json",
        json.dumps(r, indent=2, default=str),
        "```",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

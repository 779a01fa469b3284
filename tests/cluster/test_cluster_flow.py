"""The cluster flow for real, CI-sized, on a multi-node cluster on this machine.

`python -m cluster.local up --workers 2` (a Ray head, two worker nodes as separate raylets
under Ray's autoscaler, a Milvus server, an S3 server), then what a platform team runs:
`ray job submit` an ingest (Ray Data embedders on several nodes, into the Milvus server) and a
training run (`train/recipes/cpu-cluster.yaml` with 2 workers, one per worker node, instead of
its 4: DeepSpeed ZeRO-3 over gloo, checkpoints and the adapter in S3) during which a worker node
is killed (the recipe's 4 workers losing a node: benchmarks/cluster); `serve deploy` of the cluster's Serve config
(adapters from the S3 registry, two Retriever replicas on different nodes, the Generator on a
node the autoscaler adds for it); a Generator replica killed under a small load; `down`.
The drills (`cluster_drill`, in `-m cluster` runs only): the ingest rerun and a worker node
killed mid-ingest, the uninterrupted training run the resumed adapter must equal bit for bit, a
hung Retriever replica, and the Generator scaled out onto a node the autoscaler adds and back in.
Every process is stopped by its id (the cluster's marker), none is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import httpx
import pytest
import torch
import yaml

from cluster.local.cluster import ClusterState, LocalCluster
from cluster.local.processes import MARKER_ENV, processes_with
from tests.conftest import REPO
from tests.retrieval.test_milvus_server import documents_done

# The CI-sized flow (up, one ingest, a training run that loses a node, serve deploy, a Generator
# replica killed under load, down: 6-8 min) is `make test PYTEST_ARGS="-m 'cluster and not cluster_drill'"`;
# the drills marked `cluster_drill` (a node killed mid-ingest, the uninterrupted reference run for
# bit-identity, a hung Retriever, autoscaling) add ~5.5 min: all of it is `-m cluster`. Neither is in
# the default run: with the CI-sized part a fresh clone's suite took 35.5 min on 2026-12-03 (README, Tests).
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
drill = pytest.mark.cluster_drill

FACTS = {
    "zorblax.md": "# Zorblax-9 relief valve\n\nThe Zorblax-9 relief valve on the coolant loop opens at 7.3 bar. "
    "Its locking nut is tightened to 47 Nm.\n",
    "quillon.md": "# Quillon pump\n\nThe Quillon pump moves 40 litres per minute and is serviced every 900 hours.\n",
    "badges.md": "# Badges\n\nLost badges are replaced by the security desk in building C.\n",
    "parts.csv": "part_no,name,price_eur\nZX-9,Relief valve,120.00\nQP-4,Pump seal,18.50\n",
}
ADAPTER = "cluster-ci"
FILLERS = 16
PYTHON = sys.executable
CLI = [PYTHON, "-m", "cluster.local"]


def run(command: list[str], env: dict, timeout_s: float, check: bool = True) -> str:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    output = done.stdout + done.stderr
    if check:
        assert done.returncode == 0, f"{' '.join(command[:6])} failed ({done.returncode}):\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("local-cluster")
    started = time.monotonic()
    run([*CLI, "up", "--workers", "2", "--state-dir", str(state_dir)], dict(os.environ), timeout_s=300)
    state = ClusterState.load(state_dir)
    print(f"cluster.local up: {time.monotonic() - started:.0f}s")
    try:
        yield state
    finally:
        run([*CLI, "down", "--state-dir", str(state_dir)], dict(os.environ), timeout_s=120)
        assert processes_with({MARKER_ENV: state.marker}) == [], "down left processes of the cluster behind"


@pytest.fixture(scope="module")
def env(cluster) -> dict:
    """A shell that did `eval "$(python -m cluster.local env)"`, with this venv's tools first on PATH."""
    environ = {**os.environ, **cluster.client_env()}
    environ["PATH"] = str(Path(PYTHON).parent) + os.pathsep + environ.get("PATH", "")
    return environ


def submit(cluster: ClusterState, env: dict, *entrypoint: str, wait: bool = True, timeout_s: float = 400) -> str:
    """`ray job submit --working-dir . -- ENTRYPOINT`; returns its output (or the job id with wait=False)."""
    command = ["ray", "job", "submit", "--address", cluster.dashboard_url, "--working-dir", "."]
    if not wait:
        command.append("--no-wait")
    output = run([*command, "--", *entrypoint], env, timeout_s)
    if wait:
        assert "succeeded" in output, output[-6000:]
        return output
    return next(word.strip("'") for word in output.split() if word.strip("'").startswith("raysubmit_"))


def job_client(cluster: ClusterState):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.dashboard_url, headers=LocalCluster.auth(cluster))


# -- ingest ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """(documents folder, ingest config) of the flow's small corpus."""
    docs = tmp_path_factory.mktemp("docs")
    for name, text in FACTS.items():
        (docs / name).write_text(text)
    for i in range(FILLERS):  # enough batches that both embedders get some whatever the timing
        (docs / f"log-{i:02d}.md").write_text(f"# Shift log {i}\n\nShift {i} inspected pump bay {i} and found no leaks.\n")
    # One chunk per Ray Data batch, so the small files make many batches for the two embedders
    # (with the default 64 Ray Data would bundle them into one batch for one actor).
    config = tmp_path_factory.mktemp("retrieval") / "ingest.yaml"
    config.write_text("ingest:\n  ray_batch_size: 1\n")
    return docs, config


def ingest(cluster: ClusterState, env: dict, corpus: tuple[Path, Path], collection: str,
           wait: bool = True) -> dict | str:
    """`ray job submit ... python -m retrieval ingest --ray` into the Milvus server; its JSON report (or job id)."""
    docs, config = corpus
    out = submit(cluster, env, "python", "-m", "retrieval", "ingest", str(docs), "--config", str(config),
                 "--uri", cluster.milvus_uri, "--collection", collection, "--ray", "--json", "--no-progress",
                 "--source-root", str(docs), wait=wait)
    if not wait:
        return out
    return json.JSONDecoder().raw_decode(out[out.rindex("{", 0, out.index('"counts"')):])[0]


@pytest.fixture(scope="module")
def ingested(cluster, env, corpus) -> dict:
    return ingest(cluster, env, corpus, "knowledge")


@pytest.fixture(scope="module")
def ingest_drill(cluster, env, corpus, ingested) -> dict:
    """A rerun of the clean ingest; then a worker node killed while the embedders write, and the same command again."""
    reports = {"rerun": ingest(cluster, env, corpus, "knowledge")}  # the rerun must change nothing
    job, client, killed = ingest(cluster, env, corpus, "knowledge_drill", wait=False), job_client(cluster), False
    deadline = time.monotonic() + 300
    while (status := client.get_job_status(job).value) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, "the drill's ingest did not end within 300 s"
        if not killed and documents_done(cluster.milvus_uri, "knowledge_drill") >= 1:
            LocalCluster(Path(cluster.state_dir)).kill_node(cluster, 1)  # in-process: the CLI's start-up is too slow
            killed = True
        time.sleep(0.1)
    reports["drill"] = {"status": status, "killed_mid_ingest": killed,
                        "done_before_rerun": documents_done(cluster.milvus_uri, "knowledge_drill")}
    reports["drill_rerun"] = ingest(cluster, env, corpus, "knowledge_drill")
    return reports


def test_ingest_runs_embedders_on_two_nodes_into_the_milvus_server(ingested, cluster):
    assert ingested["counts"] == {"added": len(FACTS) + FILLERS}, ingested
    assert len(ingested["embed_nodes"]) >= 2, ingested["embed_nodes"]
    from retrieval.api import Retriever

    kb = Retriever(collection="knowledge", uri=cluster.milvus_uri)
    try:
        hits = kb.search("At what pressure does the Zorblax-9 valve open?", top_k=2)
        assert hits[0].source == "zorblax.md" and "7.3 bar" in hits[0].text
    finally:
        kb.close()


@drill
def test_a_rerun_changes_nothing_and_a_node_killed_mid_ingest_then_a_rerun_ends_exactly_as_one_clean_run(
        ingest_drill, cluster):
    rerun = ingest_drill["rerun"]
    assert rerun["counts"] == {"unchanged": len(FACTS) + FILLERS} and rerun["chunks_written"] == 0, rerun
    drill = ingest_drill["drill"]
    print("ingest drill:", drill, ingest_drill["drill_rerun"]["counts"])
    assert drill["killed_mid_ingest"], "the drill's ingest ended before a node could be killed"
    from retrieval.api import Retriever
    from tests.retrieval.corpus import snapshot

    with Retriever(collection="knowledge", uri=cluster.milvus_uri) as clean, \
            Retriever(collection="knowledge_drill", uri=cluster.milvus_uri) as drilled:
        assert snapshot(drilled) == snapshot(clean)


# -- training ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Phi-3 with the offline model's tokenizer: the cluster mechanics are the point here."""
    from transformers import Phi3Config, Phi3ForCausalLM

    from modeling import ModelSettings, load_tokenizer

    tokenizer = load_tokenizer(ModelSettings())
    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        original_max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True,
    )
    folder = tmp_path_factory.mktemp("tiny-phi3")
    Phi3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def actors(cluster: ClusterState, class_name: str) -> list[dict]:
    return LocalCluster(Path(cluster.state_dir)).actors(cluster, class_name)


def train_workers_by_node(cluster: ClusterState) -> Counter:
    return Counter(a["node_id"] for a in actors(cluster, "RayTrainWorker"))


@pytest.fixture(scope="module")
def trained(cluster, env, tiny_model) -> dict:
    overrides = [
        "--set", f"model.name_or_path={tiny_model}", "--set", "training.max_steps=8",
        "--set", "checkpointing.every_steps=2", "--set", f"output.adapter_name={ADAPTER}",
        # 2 workers SPREAD over the 2 worker nodes: the same cross-node ZeRO-3 and node loss as the
        # recipe's 4 (benchmarks/cluster), at half the start-ups on CI's 2 cores.
        "--set", "scaling.num_workers=2",
        "--set", f"output.registry=s3://{cluster.bucket}/adapters", "--set", f"output.run_dir=s3://{cluster.bucket}/runs",
    ]
    job = submit(cluster, env, "python", "-m", "train", "--config", "train/recipes/cpu-cluster.yaml", *overrides,
                 wait=False)
    client = job_client(cluster)
    deadline, killed = time.monotonic() + 600, None
    while time.monotonic() < deadline:
        status = client.get_job_status(job).value
        logs = client.get_job_logs(job)
        if killed is None and "[train] step 3/" in logs:
            workers = train_workers_by_node(cluster)
            alive = LocalCluster(Path(cluster.state_dir)).worker_nodes(cluster)
            busiest = max(alive, key=lambda n: workers.get(n["node_id"], 0))
            index = alive.index(busiest) + 1
            killed = {"node": busiest["node_id"], "workers_on_it": workers.get(busiest["node_id"], 0),
                      "nodes_with_workers": len(workers)}
            run([*CLI, "kill-node", str(index), "--state-dir", cluster.state_dir], env, timeout_s=60)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(2)
    logs = client.get_job_logs(job)
    assert status == "SUCCEEDED", logs[-8000:]
    return {"logs": logs, "killed": killed, "overrides": overrides}


@pytest.fixture(scope="module")
def uninterrupted(cluster, env, trained) -> str:
    """The same run without the fault (adapter ``<ADAPTER>-clean``), to compare the adapters."""
    name = f"{ADAPTER}-clean"
    clean = [o.replace(f"output.adapter_name={ADAPTER}", f"output.adapter_name={name}") for o in trained["overrides"]]
    submit(cluster, env, "python", "-m", "train", "--config", "train/recipes/cpu-cluster.yaml", *clean, timeout_s=600)
    return name


def s3_registry(cluster: ClusterState):
    from modeling import AdapterRegistry

    return AdapterRegistry(f"s3://{cluster.bucket}/adapters", refresh_s=0)


def test_training_spread_over_nodes_survives_losing_a_worker_node_and_publishes_to_s3(trained, cluster):
    assert trained["killed"] and trained["killed"]["workers_on_it"] >= 1, trained["killed"]
    assert trained["killed"]["nodes_with_workers"] == 2, trained["killed"]  # SPREAD
    assert "step 8/8" in trained["logs"]
    with patch.dict(os.environ, cluster.client_env()):  # this process reaches the S3 server like the shell does
        registry = s3_registry(cluster)
        assert ADAPTER in registry.names()
        meta = registry.metadata(ADAPTER)
    assert meta["strategy"] == "deepspeed-zero3" and meta["metrics"]["attempts"] >= 2, meta["metrics"]


@drill
def test_the_adapter_resumed_after_the_node_loss_is_bit_identical_to_an_uninterrupted_run(trained, uninterrupted,
                                                                                            cluster):
    from safetensors.torch import load_file

    with patch.dict(os.environ, cluster.client_env()):
        registry = s3_registry(cluster)
        resumed, clean = (registry.path(name) / "adapter_model.safetensors" for name in (ADAPTER, uninterrupted))
        got, expected = load_file(str(resumed)), load_file(str(clean))
    assert got.keys() == expected.keys()
    for name in expected:  # the same world size after the restart: bit-identical (README, Training)
        assert torch.equal(got[name], expected[name]), name


# -- serving ----------------------------------------------------------------------------------
def serve_running(cluster: ClusterState, env: dict) -> bool:
    status = yaml.safe_load(run(["serve", "status", "--address", cluster.dashboard_url], env, 60)) or {}
    app = status.get("applications", {}).get("expert", {})
    assert app.get("status") != "DEPLOY_FAILED", status
    return app.get("status") == "RUNNING" and all(
        d.get("status") == "HEALTHY" for d in app.get("deployments", {}).values()
    )


@pytest.fixture(scope="module")
def deployed(cluster, env, ingested, trained, tiny_model, tmp_path_factory) -> str:
    from cluster.local.processes import free_port

    port = free_port()
    config = tmp_path_factory.mktemp("serve") / "serve-local.yaml"
    run([*CLI, "serve-config", "--port", str(port), "--out", str(config), "--state-dir", cluster.state_dir], env, 60)
    spec = yaml.safe_load(config.read_text())
    generator = spec["applications"][0]["args"]["generator"]
    generator.update(model={"name_or_path": str(tiny_model)}, max_tokens_limit=32, default_max_tokens=8)
    config.write_text(yaml.safe_dump(spec, sort_keys=False))
    started = time.monotonic()
    run(["serve", "deploy", str(config), "--address", cluster.dashboard_url], env, timeout_s=120)
    while not serve_running(cluster, env):
        assert time.monotonic() - started < 300, "the Serve app is not RUNNING after 300 s"
        time.sleep(2)
    print(f"serve deploy -> RUNNING: {time.monotonic() - started:.0f}s")
    return f"http://127.0.0.1:{port}"


def test_serving_uses_the_s3_adapter_the_milvus_server_and_retrievers_on_two_nodes(deployed, cluster):
    with httpx.Client(base_url=deployed, timeout=120) as client:
        assert ADAPTER in {m["id"] for m in client.get("/v1/models").json()["data"]}
        r = client.post("/hybrid", json={"question": "At what pressure does the Zorblax-9 valve open?", "adapter": ADAPTER})
        assert r.status_code == 200, r.text
        assert r.json()["sources"][0]["source"] == "zorblax.md"
        ghost = client.post("/finetuned", json={"question": "x", "adapter": "ghost"})
        assert ghost.status_code == 404 and ADAPTER in ghost.json()["error"]["message"]
    retrievers = actors(cluster, "ServeReplica:expert:Retriever")
    assert len(retrievers) == 2 and len({a["node_id"] for a in retrievers}) == 2, retrievers
    (generator,) = actors(cluster, "ServeReplica:expert:Generator")
    nodes = {n["node_id"]: n for n in LocalCluster(Path(cluster.state_dir)).nodes(cluster)}
    assert nodes[generator["node_id"]]["node_type"] == "gpu_l4"  # the autoscaler added a node of that type
    cpu_only = retrievers + actors(cluster, "ServeReplica:expert:Gateway")
    # serve/config.yaml's label selector: CPU-only replicas never pin a GPU node (it could not scale down)
    assert {nodes[a["node_id"]]["node_type"] for a in cpu_only} <= {"ray.head.default", "cpu_worker"}, cpu_only


@dataclass
class Outcome:
    status: int
    stream_error: str  # the in-band error code of a stream that broke off, else ""
    started: float  # seconds after the fault was injected (negative: before it)
    seconds: float


async def _load(url: str, concurrency: int, *, route: str = "chat", requests: int = 0, fault=None,
                keep_on_s: float = 0.0, cap: int = 400) -> list[Outcome]:
    """Closed-loop clients; a third of the chat requests stream.

    Without ``fault``: ``requests`` requests. With it: ``fault()`` runs (in a thread) once the
    first response is back, so requests are in flight on every replica when it strikes, and
    the clients go on until ``keep_on_s`` after it, at most ``cap`` requests."""
    body = {"model": ADAPTER, "messages": [{"role": "user", "content": "Tell me about the pump."}], "max_tokens": 32}
    out: list[Outcome] = []
    first_back, fault_at, sent = asyncio.Event(), [None], [0]

    def more() -> bool:
        if fault is None:
            return sent[0] < requests
        if sent[0] >= cap:
            return False
        return fault_at[0] is None or time.monotonic() < fault_at[0] + keep_on_s

    async def one(client: httpx.AsyncClient, i: int) -> None:
        started = time.monotonic()
        error = ""
        if route == "rag":
            r = await client.post("/rag", json={"question": "How often is the Quillon pump serviced?", "max_tokens": 8})
        elif i % 3 == 0:
            async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
                async for line in r.aiter_lines():
                    if line.startswith('data: {"error"'):
                        error = str(json.loads(line[6:])["error"]["code"])
        else:
            r = await client.post("/v1/chat/completions", json=body)
        out.append(Outcome(r.status_code, error, started, time.monotonic() - started))
        first_back.set()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while more():
            sent[0] += 1
            await one(client, sent[0])

    async def strike() -> None:
        await first_back.wait()
        await asyncio.sleep(0.3)  # the clients have sent their next requests
        fault_at[0] = time.monotonic()
        await asyncio.to_thread(fault)

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)), *([strike()] if fault else []))
    origin = fault_at[0] or 0.0
    for o in out:
        o.started -= origin
    return out


def in_flight_at_the_fault(outcomes: list[Outcome]) -> int:
    return sum(1 for o in outcomes if o.started < 0 < o.started + o.seconds)


def test_a_generator_replica_killed_under_load_gives_clean_503s_then_serves_again(deployed, cluster, env):
    (replica,) = actors(cluster, "ServeReplica:expert:Generator")
    kill = [*CLI, "kill-replica", "Generator", "--state-dir", cluster.state_dir]
    during = asyncio.run(_load(deployed, 6, fault=lambda: run(kill, env, timeout_s=60), keep_on_s=15))
    print("during the kill:", Counter((o.status, o.stream_error) for o in during),
          f"in flight {in_flight_at_the_fault(during)}, slowest {max(o.seconds for o in during):.1f}s")
    assert in_flight_at_the_fault(during) >= 1  # the drill hit traffic
    assert {(o.status, o.stream_error) for o in during} <= {(200, ""), (503, ""), (200, "503")}, during
    assert max(o.seconds for o in during) < 90  # nobody waited for a timeout
    deadline = time.monotonic() + 120
    while not serve_running(cluster, env) or replica["pid"] in {a["pid"] for a in actors(cluster, "ServeReplica:expert:Generator")}:
        assert time.monotonic() < deadline, "Serve did not replace the Generator replica in 120 s"
        time.sleep(2)
    after = asyncio.run(_load(deployed, 3, requests=6))
    assert [(o.status, o.stream_error) for o in after] == [(200, "")] * 6, after


@drill
def test_a_hung_retriever_replica_is_caught_by_serve_health_checks_and_replaced(deployed, cluster, env):
    before = {a["pid"] for a in actors(cluster, "ServeReplica:expert:Retriever")}
    hang = [*CLI, "kill-replica", "Retriever", "--hang", "--state-dir", cluster.state_dir]
    during = asyncio.run(_load(deployed, 4, route="rag", fault=lambda: run(hang, env, timeout_s=60), keep_on_s=30))
    print("during the hang:", Counter(o.status for o in during),
          f"in flight {in_flight_at_the_fault(during)}, slowest {max(o.seconds for o in during):.1f}s")
    assert in_flight_at_the_fault(during) >= 1
    assert {o.status for o in during} <= {200, 503}, during
    assert max(o.seconds for o in during) < 90  # nobody waited for a timeout
    deadline = time.monotonic() + 120
    while True:
        now = {a["pid"] for a in actors(cluster, "ServeReplica:expert:Retriever")}
        if len(now) == 2 and now != before and serve_running(cluster, env):
            break
        assert time.monotonic() < deadline, f"Serve did not replace the hung Retriever in 120 s: {before} -> {now}"
        time.sleep(2)
    after = asyncio.run(_load(deployed, 3, route="rag", requests=6))
    assert [o.status for o in after] == [200] * 6, after


def generator_shape(cluster: ClusterState) -> tuple[int, int]:
    """(Generator replicas alive, gpu_l4 nodes alive): what autoscaling changes."""
    return (len(actors(cluster, "ServeReplica:expert:Generator")),
            LocalCluster(Path(cluster.state_dir)).alive_nodes_of_type(cluster, "gpu_l4"))


def wait_for_shape(cluster: ClusterState, wanted: tuple[int, int], timeout_s: float) -> float:
    started, seen = time.monotonic(), []
    while (now := generator_shape(cluster)) != wanted:
        seen.append(now)
        assert time.monotonic() - started < timeout_s, f"not {wanted} (replicas, gpu_l4 nodes) in {timeout_s} s: {seen[-5:]}"
        time.sleep(2)
    return time.monotonic() - started


@drill
def test_the_generator_scales_out_onto_a_node_the_autoscaler_adds_and_back_in_after_the_load(deployed, cluster, env):
    # cluster/serve-local-overrides.yaml: 1-2 replicas at 4 requests each; every replica needs a gpu_l4 node
    wait_for_shape(cluster, (1, 1), 180)  # settled after the fault drills
    scaled: list[float] = []
    load = asyncio.run(_load(deployed, 12, fault=lambda: scaled.append(wait_for_shape(cluster, (2, 2), 240)),
                             keep_on_s=10, cap=4000))
    print(f"scale-out: second replica on a new gpu_l4 node after {scaled[0]:.0f}s; {Counter(o.status for o in load)}")
    assert [(o.status, o.stream_error) for o in load if (o.status, o.stream_error) != (200, "")] == []
    back = wait_for_shape(cluster, (1, 1), 240)  # Serve's downscale delay, then the node's idle timeout
    print(f"scale-in: back to one replica and one gpu_l4 node {back:.0f}s after the load")
    after = asyncio.run(_load(deployed, 2, requests=4))
    assert [(o.status, o.stream_error) for o in after] == [(200, "")] * 4, after

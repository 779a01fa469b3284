"""Ingestion throughput and search latency of the retrieval package on Milvus Lite.

    python benchmarks/retrieval/bench_ingest_search.py --torch-threads 1   # ~8 CPU-minutes

1. Ingestion: a generated corpus of Markdown manuals and CSV tables goes through the public
   ``Retriever.ingest`` (parse, chunk, MiniLM embed, write) into a fresh Milvus Lite file; then
   the same corpus again (incremental: nothing to do) and once more with one file changed.
2. Search latency at 10k and 100k chunks: collections written through the project's own store
   layer (see build_search_collection.py), then p50/p99 of the public ``Retriever.search`` for
   dense, BM25 and hybrid, with the query-embedding time measured separately.

Results go into RESULTS.md next to this file (a section between markers, so other benchmarks'
sections survive), as Markdown tables plus the raw JSON, with the command and the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from milvus_lite.server_manager import server_manager_instance  # noqa: E402

from retrieval.api import MODES, Retriever  # noqa: E402
from retrieval.config import REPO_ROOT, RetrievalConfig, load_config  # noqa: E402
from retrieval.embedding import build_embedder  # noqa: E402
from retrieval.pipeline import discover, make_task, parse_records, pipeline_fingerprint  # noqa: E402
from retrieval.schema import chunk_schema  # noqa: E402

from build_search_collection import build_collection  # noqa: E402
from report_markdown import render, write_results  # noqa: E402
from synthetic_corpus import ProseWriter, asset_catalogue, queries, write_corpus  # noqa: E402
from timing import TimedEmbedder, load_average, percentiles_ms, time_methods  # noqa: E402

HERE = Path(__file__).resolve().parent
STORE_METHODS = ("ensure", "manifest", "collection_info", "write_manifest", "upsert_chunks",
                 "delete_other_versions", "delete_documents_chunks", "delete_manifest", "flush")


# ---- environment ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {"cpu_model": cpu_model, "nproc": int(nproc or os.cpu_count() or 0), "ram_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def versions() -> dict[str, str]:
    names = ["milvus-lite", "pymilvus", "sentence-transformers", "torch", "transformers", "faiss-cpu", "numpy"]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def index_description(dimension: int) -> dict[str, Any]:
    """The indexes real ingests create (retrieval/schema.py) and what Milvus Lite makes of them."""
    from milvus_lite.index.factory import is_faiss_available

    _, index = chunk_schema(dimension)
    declared = [{"field": p.field_name, "index_type": p.index_type, **p.get_index_configs()} for p in index]
    hnsw = is_faiss_available()
    return {
        "declared": declared,
        "milvus_lite_dense_index": "HNSW (faiss) M=16 efConstruction=200 ef=64 (milvus_lite defaults)" if hnsw
        else "brute force (faiss-cpu missing)",
        "unflushed_rows": "searched without index (memtable scan)",
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _release(uri: Path) -> float:
    """Close the in-process Milvus Lite server of one file; waits for its background index builds."""
    started = time.perf_counter()
    server_manager_instance.release_server(str(uri))
    return time.perf_counter() - started


def _fresh(path: Path) -> Path:
    _release(path)
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        path.unlink()
    return path


def query_embedding_by_threads(embedder: TimedEmbedder, count: int, seed: int) -> dict[str, Any]:
    """Query-embedding latency with torch's default thread count and with one thread.

    Why: on an oversubscribed machine an OpenMP team of 2 threads waits at every barrier for a
    thread the OS has descheduled, which makes a 1-query forward pass many times slower.
    """
    import torch

    default = torch.get_num_threads()
    questions = queries(count, seed + 11)
    out = {}
    for threads in dict.fromkeys([default, 1]):
        torch.set_num_threads(threads)
        seconds = []
        for question in questions:
            begun = time.perf_counter()
            embedder.inner.embed_query(question)
            seconds.append(time.perf_counter() - begun)
        out[str(threads)] = percentiles_ms(seconds)
    torch.set_num_threads(default)
    return {"default_threads": default, "by_threads_ms": out, "load": load_average()}


# ---- 1. ingestion --------------------------------------------------------------------------------
def bench_ingest(args: argparse.Namespace, config: RetrievalConfig, embedder: TimedEmbedder, workdir: Path) -> dict[str, Any]:
    corpus = _fresh(workdir / "corpus")
    started = time.perf_counter()
    paths = write_corpus(corpus, args.files, args.seed)
    generate_s = time.perf_counter() - started
    uri = _fresh(workdir / "ingest.db")
    result: dict[str, Any] = {"corpus": {
        "files": len(paths), "markdown": sum(p.suffix == ".md" for p in paths), "csv": sum(p.suffix == ".csv" for p in paths),
        "mbytes": round(sum(p.stat().st_size for p in paths) / 1e6, 2), "generate_s": round(generate_s, 2),
    }, "load_before": load_average()}
    with Retriever(config, collection="bench_ingest", uri=str(uri), embedder=embedder) as retriever:
        store_seconds = time_methods(retriever.store, STORE_METHODS)
        cpu_begun = time.process_time()
        report = retriever.ingest([corpus], source_root=corpus)
        cpu_s = time.process_time() - cpu_begun
        if report.errors:
            raise RuntimeError(f"ingest errors: {report.errors[:3]}")
        store_s = sum(store_seconds.values())
        other_s = report.seconds - embedder.embed_seconds - store_s
        result["first"] = {
            "counts": report.counts, "chunks": report.chunks_written, "seconds": round(report.seconds, 2),
            "files_per_s": round(len(report.files) / report.seconds, 2),
            "chunks_per_s": round(report.chunks_written / report.seconds, 1),
            "process_cpu_s": round(cpu_s, 2), "chunks_per_cpu_s": round(report.chunks_written / cpu_s, 1),
            "embed_s": round(embedder.embed_seconds, 2), "embedded_texts": embedder.embedded_texts,
            "milvus_s": round(store_s, 2), "milvus_by_call_s": {k: round(v, 2) for k, v in store_seconds.items()},
            "parse_chunk_other_s": round(other_s, 2),
        }
        result["load_after_first"] = load_average()
        embedder.keep_vectors = False
        again = retriever.ingest([corpus], source_root=corpus)
        result["unchanged"] = {"counts": again.counts, "chunks": again.chunks_written, "seconds": round(again.seconds, 2)}
        changed = next(p for p in paths if p.suffix == ".md")
        rng = random.Random(args.seed)
        extra = ProseWriter(rng).paragraph(rng.choice(asset_catalogue(args.seed)), 5)
        changed.write_text(changed.read_text(encoding="utf-8") + "\n" + extra + "\n", encoding="utf-8")
        one = retriever.ingest([corpus], source_root=corpus)
        result["one_file_changed"] = {"counts": one.counts, "chunks": one.chunks_written, "seconds": round(one.seconds, 2)}
        stats = retriever.stats()
        result["collection_chunks"] = stats.chunks
    _release(uri)
    # The same parse + chunk stage alone (public pipeline functions), to check the split above.
    started = time.perf_counter()
    files, _ = discover([corpus])
    fingerprint = pipeline_fingerprint(config)
    parsed = sum(len(parse_records(make_task(f, corpus, fingerprint), config.chunking, config.embedder)) - 1 for f in files)
    result["parse_chunk_alone"] = {"chunks": parsed, "seconds": round(time.perf_counter() - started, 2)}
    return result


# ---- 2. search latency ---------------------------------------------------------------------------
def bench_search_size(args: argparse.Namespace, config: RetrievalConfig, embedder: TimedEmbedder, pool: np.ndarray,
                      size: int, workdir: Path) -> dict[str, Any]:
    uri = workdir / f"search_{size}.db"
    result: dict[str, Any] = {"chunks": size, "load_before": load_average()}
    if not (args.reuse_collections and uri.exists()):
        _fresh(uri)
        result["build"] = build_collection(str(uri), "bench_search", size, pool, noise=args.noise, seed=args.seed, config=config)
        result["build"]["close_drain_s"] = round(_release(uri), 2)
    started = time.perf_counter()
    with Retriever(config, collection="bench_search", uri=str(uri), embedder=embedder) as retriever:
        stats = retriever.stats()  # opens the file and loads the collection (segment indexes)
        result["open_load_s"] = round(time.perf_counter() - started, 2)
        if stats.chunks != size:
            raise RuntimeError(f"{uri} holds {stats.chunks} chunks, expected {size}; rerun without --reuse-collections")
        questions = queries(args.queries + args.warmup, args.seed)
        for question in questions[: args.warmup]:
            for mode in MODES:
                retriever.search(question, mode=mode, top_k=args.top_k)
        seconds: dict[str, list[float]] = {m: [] for m in MODES}
        embed: dict[str, list[float]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}
        for number, question in enumerate(questions[args.warmup :]):
            # Rotate the mode order per query so load spikes from other processes hit all modes alike.
            for mode in MODES[number % 3 :] + MODES[: number % 3]:
                before = len(embedder.query_seconds)
                begun, cpu_begun = time.perf_counter(), time.process_time()
                hits = retriever.search(question, mode=mode, top_k=args.top_k)
                seconds[mode].append(time.perf_counter() - begun)
                cpu[mode].append(time.process_time() - cpu_begun)
                embed[mode].append(sum(embedder.query_seconds[before:]))
                if len(hits) != args.top_k:
                    raise RuntimeError(f"{mode} search returned {len(hits)} hits, expected {args.top_k}")
    result["modes"] = {
        mode: {"end_to_end_ms": percentiles_ms(seconds[mode]),
               "milvus_ms": percentiles_ms([s - e for s, e in zip(seconds[mode], embed[mode])]),
               "process_cpu_ms": percentiles_ms(cpu[mode])}
        for mode in MODES
    }
    result["query_embedding_ms"] = percentiles_ms(embed["dense"] + embed["hybrid"])
    result["load_after"] = load_average()
    _release(uri)
    return result


def bench_unflushed(args: argparse.Namespace, config: RetrievalConfig, embedder: TimedEmbedder, pool: np.ndarray,
                    workdir: Path) -> dict[str, Any]:
    """Why ingest ends with a flush: the same small collection searched unflushed, then flushed."""
    uri = _fresh(workdir / "unflushed.db")
    size, count = args.unflushed_probe, args.unflushed_queries
    build_collection(str(uri), "bench_unflushed", size, pool, noise=args.noise, seed=args.seed + 7, config=config, flush=False)
    questions = queries(count, args.seed + 7)
    result: dict[str, Any] = {"chunks": size, "queries": count}
    with Retriever(config, collection="bench_unflushed", uri=str(uri), embedder=embedder) as retriever:
        for state in ("unflushed", "flushed"):
            if state == "flushed":
                retriever.store.flush()
                retriever.close()
                _release(uri)  # drain the background index build, as a later process would find it
            retriever.search(questions[0], mode="dense", top_k=args.top_k)  # open + load
            seconds: dict[str, list[float]] = {m: [] for m in MODES}
            for question in questions:
                for mode in MODES:
                    begun = time.perf_counter()
                    retriever.search(question, mode=mode, top_k=args.top_k)
                    seconds[mode].append(time.perf_counter() - begun)
            result[state] = {mode: percentiles_ms(values)["p50"] for mode, values in seconds.items()}
    _release(uri)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200, help="generated corpus files for the ingest benchmark")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts for the latency benchmark")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per mode and size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed queries per mode before timing")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.02, help="per-dimension sigma added to reused real embeddings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--thread-probe-queries", type=int, default=30, help="queries per thread count in the thread probe")
    parser.add_argument("--unflushed-probe", type=int, default=5000, help="chunks in the unflushed-vs-flushed comparison")
    parser.add_argument("--unflushed-queries", type=int, default=10, help="queries per mode in that comparison")
    parser.add_argument("--config", help="retrieval YAML config (default: retrieval/configs/default.yaml)")
    parser.add_argument("--workdir", default=str(REPO_ROOT / ".cache" / "bench"), help="corpus and Milvus Lite files (git-ignored)")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"), help="Markdown file to write the results into")
    parser.add_argument("--reuse-collections", action="store_true", help="reuse search_<N>.db built by an earlier run")
    parser.add_argument("--no-write", action="store_true", help="print the JSON only, leave RESULTS.md alone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    load_start = load_average()
    print(f"uptime: {uptime}", flush=True)
    begun = time.perf_counter()
    embedder = TimedEmbedder(build_embedder(config.embedder))
    model_load_s = time.perf_counter() - begun

    threads_probe = query_embedding_by_threads(embedder, args.thread_probe_queries, args.seed)
    print(f"query embedding by torch threads: {threads_probe}", flush=True)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    print(f"[1/2] ingest benchmark: {args.files} files", flush=True)
    ingest = bench_ingest(args, config, embedder, workdir)
    ingest["model_load_s"] = round(model_load_s, 2)
    print(json.dumps({k: ingest[k] for k in ("first", "unchanged", "one_file_changed")}), flush=True)
    pool = np.concatenate(embedder.vectors)
    embedder.vectors.clear()

    search = []
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        print(f"[2/2] search latency at {size:,} chunks", flush=True)
        search.append(bench_search_size(args, config, embedder, pool, size, workdir))
        print(json.dumps({m: v["end_to_end_ms"] for m, v in search[-1]["modes"].items()}), flush=True)

    print(f"flush probe: {args.unflushed_probe:,} chunks unflushed vs flushed", flush=True)
    unflushed = bench_unflushed(args, config, embedder, pool, workdir)
    print(json.dumps(unflushed), flush=True)

    load_end = load_average()
    cores = os.cpu_count() or 1
    busiest = max(load_start[0], load_end[0], *(s["load_after"][0] for s in search))
    note = (f"The 1-minute load reached {busiest} on {cores} cores (other sessions share the machine), "
            "so these numbers are pessimistic." if busiest > cores else "The machine was not overloaded.")
    command = "python benchmarks/retrieval/bench_ingest_search.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    results = {
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "environment": {"machine": machine(), "versions": versions(), "uptime_start": uptime, "load_start": load_start,
                        "load_end": load_end, "load_note": note},
        "config": {"embedder": config.embedder.model, "batch_size": config.embedder.batch_size,
                   "chunking": config.chunking.model_dump(), "torch_threads": _torch_threads(), "top_k": args.top_k, "queries": args.queries,
                   "warmup": args.warmup, **config.search.model_dump(include={"candidates", "ranker", "rrf_k"})},
        "index": index_description(embedder.dimension),
        "ingest": ingest,
        "search": search,
        "unflushed": unflushed,
        "query_embedding_threads": threads_probe,
        "total_s": round(time.perf_counter() - started, 1),
    }
    if args.no_write:
        print(json.dumps(results, indent=1))
    else:
        write_results(Path(args.results), render(results))
        print(f"wrote {args.results} ({results['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

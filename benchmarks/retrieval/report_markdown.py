"""RESULTS.md rendering for bench_ingest_search.py: Markdown tables, method notes and the raw JSON.

The benchmark owns one section of RESULTS.md between two markers, so other benchmarks (retrieval
quality, ...) can keep their own sections in the same file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

START_MARK = "<!-- bench_ingest_search:start -->"
END_MARK = "<!-- bench_ingest_search:end -->"


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(results: dict[str, Any]) -> str:
    env, ing = results["environment"], results["ingest"]
    first = ing["first"]
    lines = [
        START_MARK,
        "## Ingestion throughput and search latency (Milvus Lite)",
        "",
        f"Produced by `{results['command']}` on {results['date']} (UTC), {results['total_s']:.0f} s in all.",
        "",
        f"- Machine: {env['machine']['cpu_model']}, `nproc` = {env['machine']['nproc']}, "
        f"{env['machine']['ram_gib']} GiB RAM, Python {env['machine']['python']}, no GPU.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        f"- Embedder: `{results['config']['embedder']}` (384 dims, batch {results['config']['batch_size']}); "
        f"chunking {results['config']['chunking']}; torch intra-op threads {results['config']['torch_threads']}.",
        f"- Load average (1/5/15 min) at start {env['load_start']}, at end {env['load_end']}; "
        f"`uptime` at start: `{env['uptime_start']}`. {env['load_note']}",
        "",
        "Query embedding (one question, MiniLM) by torch thread count, measured first on this loaded machine: "
        + ", ".join(f"{n} thread(s): p50 {v['p50']} ms, p99 {v['p99']} ms" for n, v in results["query_embedding_threads"]["by_threads_ms"].items())
        + f" (load {results['query_embedding_threads']['load']}). With more runnable threads than cores, a 2-thread "
        "OpenMP team waits at each barrier for a descheduled thread; hence the thread count used below.",
        "",
        "### Ingestion (`Retriever.ingest`, local executor, fresh Milvus Lite file)",
        "",
        f"Corpus: {ing['corpus']['files']} generated files ({ing['corpus']['markdown']} Markdown manuals, "
        f"{ing['corpus']['csv']} CSV logs/catalogues, {ing['corpus']['mbytes']} MB; "
        "`benchmarks/retrieval/synthetic_corpus.py`, deterministic from the seed).",
        "",
        _row("run", "files", "chunks", "seconds", "files/s", "chunks/s"),
        _row(*["---"] * 6),
        _row("first ingest", ing["corpus"]["files"], first["chunks"], first["seconds"], first["files_per_s"], first["chunks_per_s"]),
        _row("re-ingest, unchanged", ing["corpus"]["files"], ing["unchanged"]["chunks"], ing["unchanged"]["seconds"],
             round(ing["corpus"]["files"] / max(ing["unchanged"]["seconds"], 1e-9), 1), "-"),
        _row("re-ingest, 1 file changed", ing["corpus"]["files"], ing["one_file_changed"]["chunks"], ing["one_file_changed"]["seconds"],
             "-", "-"),
        "",
        f"Where the first ingest's {first['seconds']} s went: embedding {first['embed_s']} s "
        f"({round(100 * first['embed_s'] / first['seconds'])} %, {first['embedded_texts']} chunks), "
        f"Milvus calls {first['milvus_s']} s ({round(100 * first['milvus_s'] / first['seconds'])} %: "
        + ", ".join(f"{k} {v}" for k, v in first["milvus_by_call_s"].items() if v >= 0.005)
        + f"), parse + chunk + hashing/planning {first['parse_chunk_other_s']} s. "
        f"Parse + chunk alone over the same files: {ing['parse_chunk_alone']['seconds']} s for "
        f"{ing['parse_chunk_alone']['chunks']} chunks. The ingest used {first['process_cpu_s']} s of CPU "
        f"({first['chunks_per_cpu_s']} chunks per CPU-second, i.e. per core when not shared). Re-ingest counts: unchanged run {ing['unchanged']['counts']}, "
        f"changed run {ing['one_file_changed']['counts']}.",
        "",
        "### Search latency (`Retriever.search`, top_k = %d, %d queries per mode after %d warm-up)"
        % (results["config"]["top_k"], results["config"]["queries"], results["config"]["warmup"]),
        "",
        _row("chunks", "mode", "p50 ms", "p90 ms", "p99 ms", "mean ms", "Milvus part p50 / p99 ms", "CPU ms p50 / p99"),
        _row(*["---"] * 8),
    ]
    for size in results["search"]:
        for mode, numbers in size["modes"].items():
            e2e, milvus_part = numbers["end_to_end_ms"], numbers["milvus_ms"]
            cpu = numbers["process_cpu_ms"]
            lines.append(_row(f"{size['chunks']:,}", mode, e2e["p50"], e2e["p90"], e2e["p99"], e2e["mean"],
                              f"{milvus_part['p50']} / {milvus_part['p99']}", f"{cpu['p50']} / {cpu['p99']}"))
        q = size["query_embedding_ms"]
        lines.append(_row(f"{size['chunks']:,}", "query embedding alone", q["p50"], q["p90"], q["p99"], q["mean"], "-", "-"))
    lines += [
        "",
        "End-to-end is the wall time of one `Retriever.search` call (query embedding + Milvus search + "
        "result conversion); the Milvus part subtracts the query-embedding time measured inside the same call. "
        "BM25 does not embed the query. CPU ms is the CPU time the benchmark process (which also runs the "
        "in-process Milvus Lite server) spent in that call: close to what the call would take on an idle core, "
        "since the search path is single-threaded here, whereas the wall times include waiting for the CPU "
        "behind other processes.",
        "",
        _row("chunks", "rows written/s", "write s", "flush s", "close (index build drain) s", "open + load s", "load avg before/after"),
        _row(*["---"] * 7),
    ]
    for size in results["search"]:
        build = size.get("build", {})
        lines.append(_row(f"{size['chunks']:,}", build.get("write_rows_per_s", "reused"), build.get("write_s", "-"),
                          build.get("flush_s", "-"), build.get("close_drain_s", "-"), size["open_load_s"],
                          f"{size['load_before']} / {size['load_after']}"))
    build = next((s["build"] for s in results["search"] if "build" in s), {})
    index, probe = results["index"], results["unflushed"]
    lines += [
        "",
        "How the large collections are built (`build_search_collection.py`): rows go through the project's own "
        "`DocumentWriter` and `MilvusStore` (same schema, BM25 function, indexes, manifest commit protocol and final "
        "flush as `Retriever.ingest`); only the MiniLM embedding of every chunk is skipped (100k chunks would take "
        "hours on these cores). Texts are distinct generated chunk-sized paragraphs (80-200 words) in 20-chunk "
        "documents, from the same generator as the ingest corpus, so BM25 sees realistic posting lists (frequent "
        "domain words, rare asset codes and part numbers). Dense vectors are the "
        f"{build.get('vector_pool', '?')} real MiniLM embeddings produced by the ingestion run above, reused "
        f"round-robin with Gaussian noise (sigma {build.get('noise_sigma', '?')} per dimension, mean cosine "
        f"{build.get('mean_cosine_to_pool_vector', '?')} to the source vector) and re-normalised; they do not "
        "match their texts, which does not matter for latency.",
        "",
        "Why latency does not depend on what the vectors mean: a flat (brute-force) search computes the same "
        "N x 384 inner products whatever the vectors are, and an HNSW search visits a number of nodes set by "
        "M, ef and the graph size, reading no text; the only data property that matters is the geometry "
        "(clustered real embeddings vs uniform noise), which is why real embeddings (perturbed) are used rather "
        "than uniform random vectors. Queries are real MiniLM embeddings of generated questions.",
        "",
        f"Indexes (from `retrieval/schema.py`): {index['declared']}; in Milvus Lite the dense AUTOINDEX becomes "
        f"{index['milvus_lite_dense_index']}. Hybrid = dense + BM25 branches with "
        f"{results['config']['candidates']} candidates each, fused by {results['config']['ranker']} "
        f"(k = {results['config']['rrf_k']}). Rows that were never flushed are {index['unflushed_rows']}: "
        "`Retriever.ingest` therefore flushes at its end (`MilvusStore.flush`, added with this benchmark; before, "
        f"searches in the ingesting process scanned the memtable). Measured here at {probe['chunks']:,} chunks, p50 over "
        f"{probe['queries']} queries, dense / BM25 / hybrid: unflushed {' / '.join(str(v) for v in probe['unflushed'].values())} ms, "
        f"flushed {' / '.join(str(v) for v in probe['flushed'].values())} ms.",
        "",
        "<details><summary>Raw results (JSON)</summary>",
        "",
        "```json",
        json.dumps(results, indent=1),
        "```",
        "",
        "</details>",
        END_MARK,
    ]
    return "\n".join(lines)


def write_results(path: Path, section: str) -> None:
    """Replace this benchmark's section of RESULTS.md, keeping everything else in the file."""
    text = path.read_text(encoding="utf-8") if path.exists() else (
        "# Retrieval benchmarks\n\nHeavy measurements of `retrieval/`; each section names the command that produced it.\n\n"
    )
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        text = head + section + rest.split(END_MARK, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")

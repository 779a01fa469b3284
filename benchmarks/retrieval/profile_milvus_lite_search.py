"""Where Milvus Lite spends a search's time: cProfile of dense and BM25 searches on a built collection.

    python benchmarks/retrieval/bench_ingest_search.py ...      # builds .cache/bench/search_100000.db
    python benchmarks/retrieval/profile_milvus_lite_search.py  # then this

Milvus Lite 3.x is pure Python (faiss for HNSW), running inside the caller's process, so its
search cost can be profiled directly, without the gRPC layer pymilvus adds in front of it.
Prints the CPU time per search and the functions that take it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

import numpy as np
from milvus_lite.db import MilvusLite

from retrieval.config import REPO_ROOT
from retrieval.schema import CHUNK_OUTPUT_FIELDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=str(REPO_ROOT / ".cache" / "bench" / "search_100000.db"))
    parser.add_argument("--collection", default="bench_search")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--query", default="How often should the impeller of CP-1234 be inspected?")
    args = parser.parse_args()
    if not Path(args.db).exists():
        raise SystemExit(f"{args.db} not found; run bench_ingest_search.py first")
    db = MilvusLite(args.db)
    try:
        collection = db.get_collection(args.collection)
        collection.load()
        vector = np.random.default_rng(0).normal(size=384).astype(np.float32)
        vector = (vector / np.linalg.norm(vector)).tolist()
        calls = {
            "dense": lambda: collection.search([vector], top_k=5, anns_field="dense", output_fields=CHUNK_OUTPUT_FIELDS),
            "bm25": lambda: collection.search([args.query], top_k=5, anns_field="sparse", metric_type="BM25",
                                              output_fields=CHUNK_OUTPUT_FIELDS),
        }
        for name, call in calls.items():
            call()  # warm-up (first touch of segment files)
            cpu = []
            for _ in range(args.repeats):
                started = time.process_time()
                call()
                cpu.append(time.process_time() - started)
            profile = cProfile.Profile()
            profile.runcall(call)
            text = io.StringIO()
            stats = pstats.Stats(profile, stream=text)
            stats.sort_stats("tottime").print_stats(6)
            total = max(entry[3] for entry in stats.stats.values())  # type: ignore[attr-defined]
            faiss = sum(entry[3] for key, entry in stats.stats.items() if "IndexHNSW_search" in key[2])  # type: ignore[attr-defined]
            print(f"== {name}: CPU ms per search (median of {args.repeats}): {1000 * float(np.median(cpu)):.1f}; "
                  f"under the profiler {1000 * total:.1f} ms, of which faiss HNSW search {1000 * faiss:.1f} ms")
            table = text.getvalue().split("   ncalls", 1)[1]
            print("   ncalls" + table.replace(str(Path(np.__file__).parents[1]) + "/", "").rstrip())
    finally:
        db.close()


if __name__ == "__main__":
    main()

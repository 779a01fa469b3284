"""Retrieval quality (recall@k, MRR, nDCG@10) of dense, BM25 and hybrid search on the sample industry.

The sample's QA files name each question's gold source document, which is exactly a
relevance judgement: the documents are ingested from their real files (Markdown, HTML, PDF,
CSV, JSON) the way `make demo` does, and `retrieval.evaluation.evaluate` (what
`python -m retrieval eval` runs) scores the three modes on every question. This is our own
data; no third-party retrieval set with gold relevance can be installed offline here.

    python benchmarks/retrieval/sample_quality.py [--out results/retrieval-sample] [--questions test|all]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retrieval import Retriever  # noqa: E402
from retrieval.documents import doc_id_for  # noqa: E402
from retrieval.evaluation import Dataset, evaluate, results_table  # noqa: E402

COMPANY = Path(__file__).resolve().parents[2] / "examples" / "quillfen-windworks"
MODES = ("dense", "bm25", "hybrid")
CUTOFFS = (1, 3, 4, 5, 10)  # 4 = the top_k the Serve app and the RAFT data use


def gold_dataset(qa_files: list[Path]) -> Dataset:
    """Questions -> {doc id of the gold source: 1}, keyed by the QA item's id."""
    queries, qrels = {}, {}
    for qa_file in qa_files:
        for line in qa_file.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            if item.get("source"):
                queries[item["id"]] = item["question"]
                qrels[item["id"]] = {doc_id_for(item["source"]): 1}
    return Dataset(qa_files[0], queries, qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/retrieval-sample", help="work folder (its Milvus Lite file is rebuilt)")
    parser.add_argument("--questions", choices=("test", "all"), default="all", help="held-out only, or train + held-out")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    names = ["test.jsonl"] if args.questions == "test" else ["train.jsonl", "test.jsonl"]
    dataset = gold_dataset([COMPANY / "qa" / name for name in names])
    with Retriever(collection="quillfen_quality", uri=str(out / "milvus.db")) as kb:
        report = kb.ingest([COMPANY / "docs", COMPANY / "structured"], source_root=COMPANY)
        print(report.summary())
        started = time.perf_counter()
        results = evaluate(kb, dataset, MODES, CUTOFFS)
    print(f"{len(dataset.queries)} questions ({'+'.join(names)}), {time.perf_counter() - started:.0f} s")
    print(results_table(results))


if __name__ == "__main__":
    main()

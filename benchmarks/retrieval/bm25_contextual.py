"""Does BM25 gain from contextual chunk text (document title and section before the chunk)?

The dense embedder and the reranker read each chunk as ``title / section`` + text
(``retrieval.documents.contextual_text``); Milvus' BM25 function indexes the bare text. This
measures, on a company-layout dataset's questions, BM25 over the bare chunks against BM25 over
the contextual ones, and over title + text, side by side. The chunks are the pipeline's own
(``load_document`` + ``chunk_document`` with the default config); BM25 is computed here with
Milvus' parameters (k1 = 1.2, b = 0.75, lower-cased words, the same stop words as
``retrieval.schema.BM25_ANALYZER``), since Milvus indexes one field per function: the bare-text row
is there to show it reproduces Milvus' own numbers (``real_data_quality.py``'s BM25 row).

    python benchmarks/retrieval/bm25_contextual.py ../shared/datasets/covidqa [--qa qa/train.jsonl]
"""

from __future__ import annotations

import argparse
import math
import re
from collections import Counter
from pathlib import Path

from qa import load_qa, source_matches
from retrieval.chunking import chunk_document
from retrieval.config import ChunkingConfig, EmbedderConfig
from retrieval.documents import contextual_text
from retrieval.loaders import load_document
from retrieval.schema import STOP_WORDS
from retrieval.tokenization import token_counter_for

CUTOFFS = (1, 4, 10)
_STOP = set(STOP_WORDS)


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w not in _STOP]


def bm25_rankings(texts: list[str], questions: list[str], k1: float = 1.2, b: float = 0.75) -> list[list[int]]:
    """Chunk indexes by BM25 score, best first, for each question."""
    docs = [Counter(words(t)) for t in texts]
    lengths = [sum(d.values()) for d in docs]
    average = sum(lengths) / len(lengths)
    frequency = Counter(w for d in docs for w in d)
    idf = {w: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for w, n in frequency.items()}
    rankings = []
    for question in questions:
        asked = words(question)
        scores = []
        for i, d in enumerate(docs):
            norm = k1 * (1 - b + b * lengths[i] / average)
            scores.append(sum(idf[w] * d[w] * (k1 + 1) / (d[w] + norm) for w in asked if w in d))
        rankings.append(sorted(range(len(docs)), key=lambda i: -scores[i])[: max(CUTOFFS)])
    return rankings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="company-layout folder (document folders + qa/*.jsonl)")
    parser.add_argument("--qa", default="qa/test.jsonl")
    args = parser.parse_args()
    folder = Path(args.dataset)
    counter = token_counter_for(EmbedderConfig())
    chunks = []
    folders = [p for p in folder.iterdir() if p.is_dir() and p.name != "qa" and not p.name.startswith(".")]
    for path in sorted(p for f in folders for p in f.rglob("*") if p.is_file()):  # what the pipeline ingests
        document = load_document(path)
        document.source = str(path.relative_to(folder))
        chunks += chunk_document(document, "v", ChunkingConfig(), counter)
    items = [item for item in load_qa(folder / args.qa) if item.source]
    variants = {
        "bare text (what Milvus indexes)": [c.text for c in chunks],
        "title / section + text (the embedder's)": [contextual_text(c.title, c.section, c.text) for c in chunks],
        "title + text": [contextual_text(c.title, "", c.text) for c in chunks],
    }
    print(f"{folder.name}: {len(chunks)} chunks, {len(items)} questions of {args.qa}")
    print("| BM25 over | " + " | ".join(f"hit@{k}" for k in CUTOFFS) + " |")
    print("|---|" + "---|" * len(CUTOFFS))
    for label, texts in variants.items():
        rankings = bm25_rankings(texts, [item.question for item in items])
        hits = [sum(any(source_matches(chunks[i].source, item.source) for i in ranked[:k])
                    for item, ranked in zip(items, rankings)) / len(items) for k in CUTOFFS]
        print(f"| {label} | " + " | ".join(f"{h:.3f}" for h in hits) + " |")


if __name__ == "__main__":
    main()

"""Check the Quillfen QA splits against the corpus they are about.

Why: the QA pairs are the gold standard for comparing RAG, fine-tuning and the hybrid, so a pair
whose fact is not in its source document, or a test question that leaks from train, silently
corrupts every number computed from them. This script is the gate to run after any edit.

Checks, for qa/train.jsonl and qa/test.jsonl:
- every line is a JSON object with exactly the keys id, question, answer, source, fact
  (all non-empty strings); the fact is short (at most 60 characters);
- ids are unique across both splits; no question repeats (after normalising case, spaces and
  punctuation), neither inside a split nor across splits;
- every source is a file inside this folder, and the fact occurs verbatim in the text that the
  project's own loader extracts from it (so PDF and HTML are checked as the ingester sees them;
  for CSV/JSON the checked text is the row rendering, which holds every value verbatim);
- every answer contains its fact verbatim;
- test facts are new: no test pair has the same (source, fact) as a train pair, so the test split
  measures answering from the documents, not recall of a fact seen in training.

Run from the repository root:  .venv/bin/python examples/quillfen-windworks/check_qa.py
Exit status 0 when everything holds, 1 otherwise (each problem is printed with file and line).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, so `retrieval` imports from a checkout

from retrieval.loaders import load_document  # noqa: E402 - after the path set-up

SPLITS = ("train", "test")
KEYS = {"id", "question", "answer", "source", "fact"}
MAX_FACT_CHARS = 60


def normalise(question: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())


def read_split(path: Path, problems: list[str]) -> list[dict[str, str]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.name}:{number}"
        if not line.strip():
            problems.append(f"{where}: blank line")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON ({exc.msg})")
            continue
        if not isinstance(record, dict) or set(record) != KEYS:
            problems.append(f"{where}: keys must be exactly {sorted(KEYS)}")
            continue
        if not all(isinstance(record[k], str) and record[k].strip() for k in KEYS):
            problems.append(f"{where}: every field must be a non-empty string")
            continue
        record["_where"] = where
        records.append(record)
    return records


def source_text(source: str, cache: dict[str, str | None], problems: list[str], where: str) -> str | None:
    if source not in cache:
        path = (HERE / source).resolve()
        if HERE not in path.parents or not path.is_file():
            problems.append(f"{where}: source {source!r} is not a file inside {HERE.name}/")
            cache[source] = None
        else:
            cache[source] = load_document(path).text
    return cache[source]


def check() -> int:
    problems: list[str] = []
    splits = {name: read_split(HERE / "qa" / f"{name}.jsonl", problems) for name in SPLITS}
    texts: dict[str, str | None] = {}
    ids: Counter[str] = Counter()
    questions: dict[str, str] = {}
    for name, records in splits.items():
        for record in records:
            where = record["_where"]
            ids[record["id"]] += 1
            key = normalise(record["question"])
            if key in questions:
                problems.append(f"{where}: question already asked at {questions[key]}")
            questions.setdefault(key, where)
            fact = record["fact"]
            if len(fact) > MAX_FACT_CHARS:
                problems.append(f"{where}: fact longer than {MAX_FACT_CHARS} characters")
            if fact not in record["answer"]:
                problems.append(f"{where}: answer does not contain the fact {fact!r}")
            text = source_text(record["source"], texts, problems, where)
            if text is not None and fact not in text:
                problems.append(f"{where}: fact {fact!r} not found in {record['source']}")
    problems += [f"id {key!r} used {count} times" for key, count in ids.items() if count > 1]
    train_facts = {(r["source"], r["fact"]) for r in splits["train"]}
    problems += [
        f"{r['_where']}: fact {r['fact']!r} of {r['source']} is also a train fact; ask about another fact"
        for r in splits["test"] if (r["source"], r["fact"]) in train_facts
    ]

    for name, records in splits.items():
        kinds = Counter(Path(r["source"]).suffix.lstrip(".") for r in records)
        print(f"{name}: {len(records)} pairs over {len({r['source'] for r in records})} sources "
              f"({', '.join(f'{kind} {count}' for kind, count in sorted(kinds.items()))})")
    corpus = [p for p in (HERE / "docs").rglob("*") if p.is_file()] + [p for p in (HERE / "structured").rglob("*") if p.is_file()]
    unused = sorted(str(p.relative_to(HERE)) for p in corpus if str(p.relative_to(HERE)) not in texts)
    print(f"corpus: {len(corpus)} files, {len(corpus) - len(unused)} with QA pairs"
          + (f"; without: {', '.join(unused)}" if unused else ""))
    for problem in problems:
        print("PROBLEM", problem)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(check())

"""Step 2a: training data from the collection and the training questions.

Two files: RAFT chat examples (question + gold/distractor passages -> cited answer) for the
hybrid adapter, and plain question -> answer examples for the fine-tuned-only adapter. They
are rebuilt only when their inputs change: the QA file, the documents, or the settings.

Without training questions (``qa_train: null``) the questions are built from the documents
alone (``train.synthetic``; written to ``<work_dir>/synthetic-qa.jsonl``), never from the
held-out questions: those only filter out an identical question or answer.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from fingerprint import Fingerprint, tree_files
from qa import QAItem, load_qa, write_jsonl
from retrieval import Retriever
from train.qa import build_instruction_examples
from train.raft import build_raft_examples
from train.synthetic import build_synthetic_qa

from pipeline.knowledge import knowledge_base
from pipeline.progress import say
from pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class TrainingFiles:
    raft: Path
    instruct: Path
    reused: bool


def inputs_fingerprint(settings: PipelineSettings) -> str:
    """Hash of everything the built files depend on (document bytes, QA bytes, RAFT knobs)."""
    files = [settings.company_path(settings.qa_train or settings.qa_test)]
    for root in (settings.company_path(p) for p in settings.documents):
        files += tree_files(root) if root.is_dir() else [root]
    fp = Fingerprint().files(files, root=settings.company_dir)  # names relative to the company folder
    fp.text(settings.raft.model_dump_json() + str(settings.raft_questions))
    fp.value([settings.qa_train, settings.synthetic.model_dump(), settings.retrieval])
    return str(fp)


def seeded_sample(items: list[QAItem], wanted: int | None, seed: int) -> list[QAItem]:
    """``wanted`` of the questions drawn with ``seed``, kept in file order (all of them for None).

    A sample rather than the first N: QA files tend to be written document by document, and
    the first N questions would cover only the first documents.
    """
    if wanted is None or wanted >= len(items):
        return items
    keep = set(random.Random(seed).sample(range(len(items)), wanted))
    return [item for index, item in enumerate(items) if index in keep]


def training_questions(settings: PipelineSettings, kb: Retriever) -> list[QAItem]:
    """The QA file's questions, or (``qa_train: null``) questions built from the collection."""
    if settings.qa_train:
        return load_qa(settings.company_path(settings.qa_train))
    held_out = load_qa(settings.company_path(settings.qa_test))
    items = build_synthetic_qa(kb.chunks(), settings.synthetic, exclude=held_out)
    path = write_synthetic(settings, items)
    say(f"no training questions: built {len(items)} from the documents alone ({path})")
    return items


def write_synthetic(settings: PipelineSettings, items: list[QAItem]) -> Path:
    path = settings.work / "synthetic-qa.jsonl"
    write_jsonl(path, (item.model_dump(exclude_none=True) for item in items))
    return path


def build_training_files(settings: PipelineSettings) -> TrainingFiles:
    raft_file, instruct_file = settings.work / "train-raft.jsonl", settings.work / "train-instruct.jsonl"
    stamp = settings.work / "training-data.json"
    fingerprint = inputs_fingerprint(settings)
    if raft_file.is_file() and instruct_file.is_file() and stamp.is_file():
        if json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
            say(f"reusing {raft_file} and {instruct_file} (documents, questions and settings unchanged)")
            return TrainingFiles(raft_file, instruct_file, reused=True)
    with knowledge_base(settings) as kb:
        items = training_questions(settings, kb)
        examples, stats = build_raft_examples(seeded_sample(items, settings.raft_questions, settings.raft.seed), kb, settings.raft)
    write_jsonl(raft_file, ({"messages": e.messages} for e in examples))
    write_jsonl(instruct_file, build_instruction_examples(items))
    stamp.write_text(json.dumps({"fingerprint": fingerprint, "raft": vars(stats)}, indent=2, default=str))
    say(f"RAFT data: {raft_file}: {stats.summary()}")
    say(f"instruction data: {instruct_file} ({len(items)} question -> answer examples)")
    return TrainingFiles(raft_file, instruct_file, reused=False)

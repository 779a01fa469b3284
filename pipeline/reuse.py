"""Reuse of an earlier evaluation when nothing that determines its answers has changed.

Greedy decoding with a fixed seed makes the answers a function of the served models
(base settings, adapter weights), the knowledge (documents, retrieval config), the code
that builds prompts and serves them, the questions and the eval settings. The pipeline
hashes all of that; a second run with the same hash re-scores the stored answers instead
of asking 4 x N questions again (`--reevaluate` asks anyway, e.g. for fresh latencies).
"""

from __future__ import annotations

from pathlib import Path

from fingerprint import Fingerprint, relative_name, tree_files

from pipeline.settings import PipelineSettings

# Source folders whose code shapes the answers (prompts, retrieval, generation, scoring).
CODE_DIRS = ("modeling", "retrieval", "serve", "evaluation", "qa")
SERVE_CONFIG = Path("serve/config.yaml")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Pipeline knobs that do not change an evaluation answer.
NOT_IN_ANSWERS = {"host", "port", "demo_questions", "demo_max_tokens"}
# Settings that are locations: hashed relative to the project root.
LOCATIONS = ("company_dir", "work_dir", "registry", "recipe", "milvus_uri")


def evaluation_fingerprint(settings: PipelineSettings, eval_settings: dict, root: Path = PROJECT_ROOT) -> str:
    """sha256 over everything that decides the evaluation's answers."""
    pipeline = settings.model_dump(mode="json", exclude=NOT_IN_ANSWERS)
    for key in LOCATIONS:  # where things are is not what they are: moving the checkout keeps the evaluation
        if isinstance(pipeline.get(key), str) and "://" not in pipeline[key]:
            pipeline[key] = relative_name(pipeline[key], root)
    fp = Fingerprint().value({"eval": eval_settings, "pipeline": pipeline})
    company = Path(settings.company_dir)
    fp.files([settings.company_path(settings.qa_test)], root=company)
    for document in settings.documents:
        target = settings.company_path(document)
        fp.files(tree_files(target) if target.is_dir() else [target], root=company)
    for adapter in (settings.finetuned.name, settings.hybrid.name):
        folder = Path(settings.registry) / adapter
        fp.files(tree_files(folder, {".safetensors", ".json"}) if folder.is_dir() else [], root=folder)
    fp.files([root / SERVE_CONFIG], root=root)
    for code_dir in CODE_DIRS:
        fp.files(tree_files(root / code_dir, {".py", ".yaml"}), root=root)
    return str(fp)

"""Reuse of an earlier evaluation when nothing that determines its answers has changed.

Greedy decoding with a fixed seed makes the answers a function of the served models
(base settings, adapter weights), the knowledge (documents, retrieval config), the code
that builds prompts and serves them, the questions and the eval settings. The pipeline
hashes all of that; a second run with the same hash re-scores the stored answers instead
of asking 4 x N questions again (`--reevaluate` asks anyway, e.g. for fresh latencies).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from pipeline.settings import PipelineSettings

# Source folders whose code shapes the answers (prompts, retrieval, generation, scoring).
CODE_DIRS = ("modeling", "retrieval", "serve", "evaluation", "qa")
SERVE_CONFIG = Path("serve/config.yaml")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Pipeline knobs that do not change an evaluation answer.
NOT_IN_ANSWERS = {"host", "port", "demo_questions", "demo_max_tokens"}


def _hash_files(digest: "hashlib._Hash", files: Iterable[Path], root: Path) -> None:
    for path in sorted(files):
        name = path.relative_to(root) if path.is_relative_to(root) else path
        digest.update(str(name).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def _tree(folder: Path, pattern: str = "*") -> list[Path]:
    return [p for p in folder.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts]


def evaluation_fingerprint(settings: PipelineSettings, eval_settings: dict, root: Path = PROJECT_ROOT) -> str:
    """sha256 over everything that decides the evaluation's answers."""
    digest = hashlib.sha256()
    pipeline = settings.model_dump(mode="json", exclude=NOT_IN_ANSWERS)
    digest.update(json.dumps({"eval": eval_settings, "pipeline": pipeline}, sort_keys=True).encode())
    company = Path(settings.company_dir)
    _hash_files(digest, [settings.company_path(settings.qa_test)], company)
    for document in settings.documents:
        target = settings.company_path(document)
        _hash_files(digest, _tree(target) if target.is_dir() else [target], company)
    for adapter in (settings.finetuned.name, settings.hybrid.name):
        folder = Path(settings.registry) / adapter
        _hash_files(digest, [p for p in _tree(folder) if p.suffix in {".safetensors", ".json"}], folder)
    _hash_files(digest, [root / SERVE_CONFIG], root)
    for code_dir in CODE_DIRS:
        _hash_files(digest, _tree(root / code_dir, "*.py") + _tree(root / code_dir, "*.yaml"), root)
    return "sha256:" + digest.hexdigest()

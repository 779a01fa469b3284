"""The pipeline's declarative config (``pipeline/configs/*.yaml``), validated like every recipe.

Relative paths are resolved against the repository root, whatever the working directory, so
the same file works from a fresh clone (``company_dir: ../shared/datasets/tatqa`` is the
dataset folder next to the clone); ``--set key=value`` overrides any knob (``--set eval.limit=10``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import Field, ValidationError, model_validator

from modeling.settings import StrictModel
from retrieval.config import RetrievalConfig, load_config
from retrieval.errors import ConfigError
from train.raft import RaftSettings
from train.recipe_loading import apply_override
from train.synthetic import SyntheticSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = Path(__file__).with_name("configs") / "quillfen.yaml"
PATH_FIELDS = ("company_dir", "work_dir", "registry", "recipe")


def repo_path(value: str) -> str:
    """``value`` made absolute against the repository root (already absolute: unchanged)."""
    return os.path.normpath(value if os.path.isabs(value) else REPO_ROOT / value)


class PipelineConfigError(ValueError):
    """The pipeline config does not validate; the message names the bad key."""


class AdapterPlan(StrictModel):
    """One adapter to train (or reuse): its registry name and the recipe overrides it trains with."""

    name: str
    overrides: tuple[str, ...] = Field((), description="--set style overrides applied to the recipe")


class EvalPlan(StrictModel):
    routes: tuple[str, ...] = Field(("base", "rag", "finetuned", "hybrid"), description="routes to evaluate "
                                    "(all four for a recommendation; e.g. [hybrid] to measure one adapter)")
    limit: int | None = Field(None, ge=1, description="a seeded sample of N held-out questions (None = all)")
    seed: int = Field(0, description="draws the sample")
    max_tokens: int = Field(48, ge=1, le=1024)
    concurrency: int = Field(8, ge=1, le=64, description="requests in flight (the server batches them)")
    resamples: int = Field(1000, ge=100)


class PipelineSettings(StrictModel):
    name: str = "quillfen"
    company_dir: str = "examples/quillfen-windworks"
    documents: tuple[str, ...] = Field(("docs", "structured"), description="folders/files under company_dir to ingest")
    qa_train: str | None = Field("qa/train.jsonl", description="training questions; None = build them from the "
                                 "documents alone (see `synthetic`), never from the held-out questions")
    qa_test: str = "qa/test.jsonl"
    synthetic: SyntheticSettings = SyntheticSettings()
    retrieval: dict[str, Any] = Field(
        default_factory=dict, description="retrieval config overrides by dotted key (search.ranker, rerank.enabled, "
        "...) on retrieval/configs/default.yaml: used for ingest, the training data and the Serve app alike; "
        "rerank.model may be builtin:smollm2-135m-phi3 (the offline model, as a query-likelihood reranker)",
    )
    work_dir: str = Field("data/pipeline/quillfen", description="built datasets, Milvus Lite file, results")
    collection: str = "quillfen"
    milvus_uri: str | None = Field(None, description="None = <work_dir>/milvus.db (Milvus Lite); or http://host:19530")
    registry: str = "data/adapters"
    recipe: str = "train/recipes/cpu-demo.yaml"
    finetuned: AdapterPlan = AdapterPlan(name="quillfen-ft")
    hybrid: AdapterPlan = AdapterPlan(name="quillfen-raft")
    raft: RaftSettings = RaftSettings()
    raft_questions: int | None = Field(
        None, ge=1, description="RAFT examples from a seeded sample of this many training questions (None = all): "
        "RAFT teaches reading and citing passages, which needs fewer examples than memorising facts, and each "
        "example carries a whole context, so this bounds the hybrid adapter's training time on CPU",
    )
    demo_questions: int = Field(3, ge=0, le=20, description="held-out questions shown through every route")
    demo_max_tokens: int = Field(64, ge=1, le=1024)
    eval: EvalPlan = EvalPlan()
    generator_cpus: int | None = Field(
        None, ge=1, description="cores (torch threads) of the Serve generator replica; None = all of this machine's "
        "(training is over when serving starts, and serve/config.yaml's 1 suits a shared cluster node)",
    )
    serve_overrides: dict[str, Any] = Field(
        default_factory=dict, description="serve/config.yaml `args` to override, by dotted key "
        "(e.g. generator.engine.max_batch_size); the pipeline's own collection, Milvus URI and registry always apply",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="0 = any free port")

    @model_validator(mode="after")
    def _absolute_paths(self) -> "PipelineSettings":
        for name in PATH_FIELDS:
            object.__setattr__(self, name, repo_path(getattr(self, name)))
        if self.milvus_uri and "://" not in self.milvus_uri:
            object.__setattr__(self, "milvus_uri", repo_path(self.milvus_uri))
        return self

    def company_path(self, relative: str) -> Path:
        return Path(self.company_dir) / relative

    def retrieval_config(self) -> RetrievalConfig:
        """retrieval/configs/default.yaml with this pipeline's ``retrieval`` overrides applied."""
        tree = load_config().model_dump()
        for key, value in self.retrieval.items():
            node = tree
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise PipelineConfigError(f"retrieval.{key}: no section {part!r}; sections: {', '.join(tree)}")
                node = node[part]
            if leaf not in node:
                raise PipelineConfigError(f"retrieval.{key}: unknown knob {leaf!r}; known: {', '.join(node)}")
            node[leaf] = value
        try:
            return RetrievalConfig.model_validate(tree)
        except ValueError as exc:
            raise PipelineConfigError(f"invalid retrieval overrides {self.retrieval}: {exc}") from None

    @property
    def work(self) -> Path:
        return Path(self.work_dir)

    @property
    def uri(self) -> str:
        return self.milvus_uri or str(self.work / "milvus.db")


def load_settings(path: str | Path = DEFAULT_CONFIG, overrides: Sequence[str] = ()) -> PipelineSettings:
    """Read, override and validate a pipeline config; errors name the file and the bad key."""
    path = Path(path)
    if not path.is_file():
        raise PipelineConfigError(f"pipeline config {path} does not exist; see pipeline/configs/")
    tree = yaml.safe_load(path.read_text()) or {}
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        settings = PipelineSettings.model_validate(tree)
    except ValidationError as exc:
        raise PipelineConfigError(f"invalid pipeline config {path}:\n{exc}") from None
    missing = [p for p in (settings.company_dir, settings.recipe) if not Path(p).exists()]
    questions = (settings.qa_train, settings.qa_test) if settings.qa_train else (settings.qa_test,)
    missing += [str(settings.company_path(p)) for p in (*settings.documents, *questions)
                if not settings.company_path(p).exists()]
    if missing:
        raise PipelineConfigError(f"{path}: these paths do not exist: {', '.join(missing)}")
    try:
        settings.retrieval_config()
    except ConfigError as exc:
        raise PipelineConfigError(str(exc)) from None
    return settings

"""Step 1: the company's documents into Milvus (incremental: unchanged files are skipped)."""

from __future__ import annotations

from pathlib import Path

import yaml

from modeling.builtin import resolve_model_source
from retrieval import IngestReport, RetrievalConfig, Retriever
from retrieval.render import ingest_summary, stats_text

from pipeline.progress import say
from pipeline.settings import PipelineSettings


def retrieval_config(settings: PipelineSettings) -> RetrievalConfig:
    """The pipeline's retrieval config, a ``builtin:`` reranker resolved to its local folder."""
    config = settings.retrieval_config()
    model = config.rerank.model
    if model and model.startswith("builtin:"):
        config = config.with_overrides(rerank__model=resolve_model_source(model))
    return config


def knowledge_base(settings: PipelineSettings) -> Retriever:
    """The pipeline's collection with its retrieval config (ingest, training data, demo)."""
    return Retriever(retrieval_config(settings), collection=settings.collection, uri=settings.uri)


def write_retrieval_yaml(settings: PipelineSettings) -> Path:
    """The retrieval config as a YAML file for the Serve app's ``retriever.config``."""
    path = settings.work / "retrieval.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(retrieval_config(settings).model_dump(mode="json"), sort_keys=False))
    return path


def ingest_documents(settings: PipelineSettings) -> IngestReport:
    """Ingest (sync) the configured folders; sources are recorded relative to the company folder,
    which is how the QA files name their gold sources."""
    paths = [settings.company_path(p) for p in settings.documents]
    settings.work.mkdir(parents=True, exist_ok=True)
    with knowledge_base(settings) as kb:
        report = kb.ingest(paths, sync=True, source_root=settings.company_dir, progress=True)
        say(ingest_summary(report))
        say(stats_text(kb.stats()))
    if report.errors:
        say(f"warning: {len(report.errors)} file(s) could not be ingested (listed above); the rest were")
    return report

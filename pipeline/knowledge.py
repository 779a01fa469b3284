"""Step 1: the company's documents into Milvus (incremental: unchanged files are skipped)."""

from __future__ import annotations

from retrieval import IngestReport, Retriever
from retrieval.render import ingest_summary, stats_text

from pipeline.progress import say
from pipeline.settings import PipelineSettings


def ingest_documents(settings: PipelineSettings) -> IngestReport:
    """Ingest (sync) the configured folders; sources are recorded relative to the company folder,
    which is how the QA files name their gold sources."""
    paths = [settings.company_path(p) for p in settings.documents]
    settings.work.mkdir(parents=True, exist_ok=True)
    with Retriever(collection=settings.collection, uri=settings.uri) as kb:
        report = kb.ingest(paths, sync=True, source_root=settings.company_dir, progress=True)
        say(ingest_summary(report))
        say(stats_text(kb.stats()))
    if report.errors:
        say(f"warning: {len(report.errors)} file(s) could not be ingested (listed above); the rest were")
    return report

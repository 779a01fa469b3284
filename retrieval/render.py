"""Terminal rendering for the CLI: a readable search table and the ingest/stats summaries."""

from __future__ import annotations

import shutil
import textwrap
from typing import Sequence

from retrieval.reports import CollectionStats, Hit, IngestReport


def _cell(text: str, width: int, keep_end: bool = False) -> str:
    """Fit text into a column; paths keep their end (the file name) rather than their start."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return "…" + flat[-(width - 1):] if keep_end else flat[: max(0, width - 1)] + "…"


def hits_table(hits: Sequence[Hit], width: int | None = None) -> str:
    """Rank, score, citation and a wrapped excerpt per hit, sized to the terminal."""
    if not hits:
        return "no results"
    width = width or shutil.get_terminal_size((120, 20)).columns
    cite_width = max(24, min(60, width // 3))
    text_width = max(30, width - cite_width - 18)
    lines = [f"{'#':>2}  {'score':>7}  {'source':<{cite_width}}  text", "-" * min(width, cite_width + text_width + 16)]
    for rank, hit in enumerate(hits, start=1):
        excerpt = textwrap.wrap(" ".join(hit.text.split()), text_width)[:3] or [""]
        left = [_cell(hit.citation(), cite_width, keep_end=True)]
        left += [_cell(f"§ {hit.section}", cite_width)] if hit.section else []
        for index in range(max(len(left), len(excerpt))):
            head = f"{rank:>2}  {hit.score:>7.4f}" if index == 0 else f"{'':>2}  {'':>7}"
            cite = left[index] if index < len(left) else ""
            text = excerpt[index] if index < len(excerpt) else ""
            lines.append(f"{head}  {cite:<{cite_width}}  {text}".rstrip())
    return "\n".join(lines)


def ingest_summary(report: IngestReport) -> str:
    lines = [report.summary()]
    if report.embed_nodes:
        lines.append(f"  embedded on {len(report.embed_nodes)} Ray node(s): {', '.join(n[-8:] for n in report.embed_nodes)}")
    lines += [f"  error  {r.source}: {r.error}" for r in report.errors]
    lines += [f"  empty  {r.source}: {r.error}" for r in report.files if r.status == "empty"]
    return "\n".join(lines)


def stats_text(stats: CollectionStats) -> str:
    kinds = ", ".join(f"{k or '?'}: {v}" for k, v in sorted(stats.by_file_type.items())) or "-"
    return "\n".join(
        [
            f"collection   {stats.collection}",
            f"uri          {stats.uri}",
            f"documents    {stats.documents} (incomplete: {stats.incomplete_documents})",
            f"chunks       {stats.chunks}",
            f"embedder     {stats.embedder} ({stats.dimension} dims)",
            f"file types   {kinds}",
        ]
    )

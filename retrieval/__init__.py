"""Retrieval: ingest a company's documents into Milvus and search them (dense, BM25, hybrid).

The public API lives in :mod:`retrieval.api`; this package never imports serve/, train/ or modeling/.
"""

from retrieval.api import Retriever
from retrieval.config import RetrievalConfig, load_config
from retrieval.errors import RetrievalError
from retrieval.filters import Filter
from retrieval.reports import CollectionStats, DeleteReport, FileResult, Hit, IngestReport

__all__ = [
    "Retriever", "RetrievalConfig", "load_config", "RetrievalError", "Filter",
    "Hit", "IngestReport", "FileResult", "DeleteReport", "CollectionStats",
]

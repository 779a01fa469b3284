"""Typed errors of the retrieval package.

Every error says what went wrong *and* how to fix it, because the caller is often a person at
a terminal or the serving layer turning it into an HTTP 4xx: a bare KeyError helps neither.
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class: catch this to handle every retrieval failure in one place."""


class ConfigError(RetrievalError):
    """The configuration file or an override is invalid."""


class FilterError(RetrievalError):
    """A user-supplied filter names an unknown field, an unknown operator or a bad value."""


class LoaderError(RetrievalError):
    """One file could not be read or parsed; reported per file, never fatal for a batch."""


class UnsupportedFileError(LoaderError):
    """The file's extension has no loader."""


class EmbedderError(RetrievalError):
    """The embedding model could not be loaded or the embeddings API failed."""


class StoreError(RetrievalError):
    """Milvus rejected an operation or holds a collection this package cannot use."""


class CollectionNotFoundError(StoreError):
    """Search/delete/stats on a collection that was never ingested into."""

"""Declarative configuration: YAML validated by pydantic, every knob with a default that works here.

Why pydantic: a typo in a YAML key must fail loudly at start-up ("extra fields not permitted")
instead of silently running with a default the user thought they had changed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retrieval.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "default.yaml"
DEFAULT_LITE_PATH = REPO_ROOT / "data" / "milvus.db"
URI_ENV = "RETRIEVAL_MILVUS_URI"
TOKEN_ENV = "RETRIEVAL_MILVUS_TOKEN"
SearchMode = Literal["dense", "bm25", "hybrid"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedderConfig(_Strict):
    provider: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    model: str = "bundled:all-MiniLM-L6-v2"
    batch_size: int = Field(64, ge=1)
    normalize: bool = True
    device: str = "cpu"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(60.0, gt=0)
    # Optional: ask an OpenAI-compatible API for shortened vectors (text-embedding-3 supports it).
    dimensions: int | None = None
    # Local models only: "int8" = torch dynamic int8 quantisation of the Linear layers (CPU speed-up;
    # benchmarks/retrieval/RESULTS.md compares speed and retrieval quality). Its vectors differ slightly,
    # so a collection remembers it as part of the embedder's name.
    quantize: Literal["none", "int8"] = "none"


class ChunkingConfig(_Strict):
    max_tokens: int = Field(200, ge=16)
    overlap_tokens: int = Field(40, ge=0)

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> "ChunkingConfig":
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"chunking.overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"chunking.max_tokens ({self.max_tokens})"
            )
        return self


_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")


class MilvusConfig(_Strict):
    uri: str = ""
    token: str = ""
    db_name: str = ""
    collection: str = "knowledge"

    @field_validator("collection")
    @classmethod
    def _milvus_name(cls, name: str) -> str:
        if not _COLLECTION_NAME.fullmatch(name):
            suggestion = re.sub(r"[^A-Za-z0-9_]", "_", name)
            suggestion = suggestion if re.match(r"[A-Za-z_]", suggestion) else f"_{suggestion}"
            raise ValueError(
                f"collection name {name!r} is not a Milvus collection name: use letters, digits and '_' "
                f"(up to 201, not starting with a digit), e.g. {suggestion[:201]!r}"
            )
        return name

    def resolved_uri(self) -> str:
        """The URI to connect to: explicit value, else env var, else the Lite file in data/."""
        uri = self.uri or os.environ.get(URI_ENV, "") or str(DEFAULT_LITE_PATH)
        if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
            # Milvus Lite: a local file whose folder must exist.
            path = Path(uri).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = str(path)
        return uri

    def resolved_token(self) -> str:
        return self.token or os.environ.get(TOKEN_ENV, "")


class SearchConfig(_Strict):
    mode: SearchMode = "hybrid"
    top_k: int = Field(5, ge=1, le=1000)
    candidates: int = Field(50, ge=1, le=16384)
    ranker: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.5, ge=0)
    bm25_weight: float = Field(0.5, ge=0)


class RerankConfig(_Strict):
    """Second-stage reranking (retrieval/rerank.py); off unless a model is named."""

    model: str | None = None  # a CrossEncoder / causal LM: hub id or local folder; None = no reranker
    kind: Literal["cross-encoder", "query-likelihood"] = "cross-encoder"
    enabled: bool = False  # rerank every search (what serving uses); search(rerank=True) asks per call
    candidates: int = Field(20, ge=1, le=1000)  # first-stage hits the reranker reads
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(384, ge=16)  # tokens of one (passage, question) pair; passages are cut to fit
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16"] = "float32"  # query-likelihood weights; bfloat16 ~2x faster on AVX512-BF16 CPUs

    @model_validator(mode="after")
    def _enabled_needs_model(self) -> "RerankConfig":
        if self.enabled and not self.model:
            raise ValueError("rerank.enabled is true but rerank.model is empty; name the reranker model")
        return self


class IngestConfig(_Strict):
    write_batch_chunks: int = Field(256, ge=1)
    ray_embed_actors: int = Field(2, ge=1)
    ray_actor_cpus: float = Field(0.5, gt=0)
    ray_parse_cpus: float = Field(0.25, gt=0)
    ray_batch_size: int = Field(64, ge=1)


class RetrievalConfig(_Strict):
    embedder: EmbedderConfig = EmbedderConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    milvus: MilvusConfig = MilvusConfig()
    search: SearchConfig = SearchConfig()
    rerank: RerankConfig = RerankConfig()
    ingest: IngestConfig = IngestConfig()

    def with_overrides(self, **dotted: Any) -> "RetrievalConfig":
        """Return a copy with ``section__key=value`` overrides applied (None values are ignored).

        Why: the CLI and the API both let a caller change one knob (``--uri``, ``--collection``)
        without writing a YAML file; validation still runs on the result.
        """
        data = self.model_dump()
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, field = key.partition("__")
            if section not in data or field not in data[section]:
                raise ConfigError(f"unknown config override '{key}'; use section__field, e.g. milvus__uri")
            data[section][field] = value
        return _validate(data, source="overrides")


def _validate(data: dict[str, Any], source: str) -> RetrievalConfig:
    try:
        return RetrievalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid retrieval config ({source}):\n{exc}") from exc


def load_config(path: str | Path | None = None) -> RetrievalConfig:
    """Load a YAML config (default: retrieval/configs/default.yaml) and validate it."""
    config_path = Path(path) if path else DEFAULT_CONFIG_PATH
    if not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}; pass an existing YAML file or omit --config")
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of sections, got {type(raw).__name__}")
    return _validate(raw, source=str(config_path))

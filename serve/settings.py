"""Application settings for the Serve app, validated from ``serve/config.yaml``'s ``args``.

Deployment shapes (replicas, autoscaling, CPUs/GPUs) live in the Serve config's
``deployments`` section where Ray reads them; everything the code needs (which model, which
adapter registry, which Milvus, API keys, limits) lives here.

Relative paths (adapter registry, retrieval YAML, a Milvus Lite file) are resolved against
the project root, not the current directory: a Serve replica's working directory depends on
how the cluster was started, and the same config must mean the same files under
``python -m serve``, ``serve run`` and ``serve deploy``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from modeling import ModelSettings
from modeling.engine import EngineSettings
from modeling.settings import StrictModel

API_KEYS_ENV = "EXPERT_API_KEYS"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
_REMOTE_URI_PREFIXES = ("http://", "https://", "tcp://", "unix:")


def under_project(path: str) -> str:
    """``path`` made absolute: relative paths are taken from the project root."""
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else (PROJECT_ROOT / expanded).resolve())


class GeneratorSettings(StrictModel):
    model: ModelSettings = ModelSettings()
    adapter_registry: str = Field(
        "data/adapters",
        description="folder of named LoRA adapters (relative: project root), or an object-store URI such as "
        "s3://bucket/adapters (mirrored into a local cache, checksummed, re-fetched when the bucket's copy changes)",
    )
    max_adapters_per_replica: int = Field(4, ge=1, le=64, description="LRU size of Serve's adapter multiplexing")
    engine: EngineSettings = Field(
        EngineSettings(), description="continuous batching: rows per step, tokens per step, queue bound, KV memory"
    )
    stall_timeout_s: float = Field(
        120.0, gt=0, description="health check: a replica whose engine finishes no step this long while busy is replaced"
    )
    max_tokens_limit: int = Field(1024, ge=1, le=4096, description="upper bound a request may ask for")
    default_max_tokens: int = Field(256, ge=1, le=4096)

    @field_validator("adapter_registry")
    @classmethod
    def _absolute_registry(cls, value: str) -> str:
        return value if "://" in value else under_project(value)

    @model_validator(mode="after")
    def _default_within_limit(self) -> "GeneratorSettings":
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) must not exceed max_tokens_limit ({self.max_tokens_limit})"
            )
        return self


class RetrieverSettings(StrictModel):
    config: str | None = Field(None, description="retrieval YAML (embedder, search knobs); None = its default")
    uri: str | None = Field(None, description="Milvus URI; None = the retrieval config's (Milvus Lite under data/)")
    token: str | None = None
    collection: str = "knowledge"
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(
        None, description="search mode of the RAG routes; None = the retrieval config's search.mode (so the mode "
        "measured for a corpus in its retrieval YAML is the one served, without repeating it here)")
    top_k: int = Field(4, ge=1, le=50)

    @field_validator("config")
    @classmethod
    def _absolute_config(cls, value: str | None) -> str | None:
        return under_project(value) if value else value

    @field_validator("uri")
    @classmethod
    def _absolute_lite_file(cls, value: str | None) -> str | None:
        if not value or value.startswith(_REMOTE_URI_PREFIXES):
            return value or None
        return under_project(value)


class GatewaySettings(StrictModel):
    api_keys: tuple[str, ...] = Field((), description=f"bearer tokens; empty = no auth (also ${API_KEYS_ENV})")
    max_body_bytes: int = Field(1_000_000, ge=1024)
    request_timeout_s: float = Field(
        120.0, gt=0, description="retrieval + generation of one non-streaming request; over it: 504"
    )
    stream_timeout_s: float = Field(
        280.0, gt=0, description="a stream still generating after this long is ended with an in-band timeout error "
        "(keep it below the proxy's http_options.request_timeout_s)"
    )

    def effective_api_keys(self) -> frozenset[str]:
        from_env = [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",") if k.strip()]
        return frozenset((*self.api_keys, *from_env))


class AppSettings(StrictModel):
    generator: GeneratorSettings = GeneratorSettings()
    retriever: RetrieverSettings = RetrieverSettings()
    gateway: GatewaySettings = GatewaySettings()

"""Knobs of the continuous-batching engine, with defaults that work on a 2-core CPU.

They bound the work of one decoding step (``max_batch_size`` sequences, ``max_step_tokens``
tokens), the memory the KV caches may take, and how many requests may wait; everything past
those bounds is refused (``EngineOverloadedError``) instead of queued without limit.
"""

from __future__ import annotations

from pydantic import Field

from modeling.settings import StrictModel


class EngineSettings(StrictModel):
    max_batch_size: int = Field(
        32, ge=1, le=1024, description="sequences decoded together (rows of one forward pass)"
    )
    max_step_tokens: int = Field(
        256,
        ge=16,
        le=65536,
        description="tokens one forward pass may process: every decoding row takes one, prompt chunks fill the rest "
        "(smaller = steadier inter-token latency while prompts arrive; larger = fewer, bigger steps)",
    )
    max_queued_requests: int = Field(
        64, ge=0, le=100_000, description="requests that may wait for a batch row; more are refused (HTTP 429)"
    )
    kv_cache_mb: float = Field(
        2048, gt=0, description="memory for the running sequences' KV caches; a request waits until its cache fits"
    )
    prefix_cache_mb: float = Field(
        256, ge=0, description="KV of shared prompt prefixes (system prompt, RAG instructions) kept for reuse; 0 = off"
    )
    prefix_block_tokens: int = Field(16, ge=1, le=1024, description="granularity of prefix reuse, in tokens")
    stream_interval_s: float = Field(
        0.1, ge=0.0, le=5.0,
        description="after a stream's first piece, send pieces at most this often (those decoded meanwhile are "
        "joined); 0 = one message per decoded piece",
    )
    idle_wait_s: float = Field(0.05, gt=0, le=5.0, description="how long the loop sleeps when it has no work")

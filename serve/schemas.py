"""HTTP request/response bodies: OpenAI-compatible chat completions plus the simple routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RAG_SUFFIX = "+rag"


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str
    op: str = "=="
    value: Any


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts exist for a text-only model."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ApiMessage(BaseModel):
    """A chat message as OpenAI clients send it (``content`` a string or a list of text parts)."""

    model_config = ConfigDict(extra="ignore")  # e.g. "name"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def plain(self) -> dict[str, str]:
        """The ``{"role", "content"}`` dict the model layer formats (``developer`` is OpenAI's new ``system``)."""
        text = self.content if isinstance(self.content, str) else "\n".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The OpenAI body we honour; unknown OpenAI fields (``n``, ``logprobs`` ...) are ignored.

    Retrieval is chosen per request with ``rag: true`` (``extra_body={"rag": True}`` in the
    OpenAI client) or a model name ending in ``+rag`` (``base+rag``, ``my-adapter+rag``).
    """

    model_config = ConfigDict(extra="ignore")
    model: str = "base"
    messages: list[ApiMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    rag: bool = False
    rag_top_k: int | None = Field(None, ge=1, le=50)
    rag_filters: list[Filter] = Field(default_factory=list, max_length=16)


class AskRequest(BaseModel):
    """Body of ``/rag``, ``/finetuned`` and ``/hybrid`` (``adapter`` only on the last two)."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=20_000)
    adapter: str | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    filters: list[Filter] = Field(default_factory=list, max_length=16)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=20_000)
    top_k: int | None = Field(None, ge=1, le=50)
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    filters: list[Filter] = Field(default_factory=list, max_length=16)


class Source(BaseModel):
    """A retrieved chunk behind an answer; ``ref`` is the ``[n]`` the answer cites."""

    ref: int
    chunk_id: str
    doc_id: str
    source: str
    section: str = ""
    score: float
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AskTimings(BaseModel):
    retrieval_s: float = Field(description="embedding the question and searching Milvus (0 without retrieval)")
    generation_s: float
    total_s: float


class AskResponse(BaseModel):
    """Response of ``/rag``, ``/finetuned`` and ``/hybrid``."""

    answer: str
    model: str = Field(description="the adapter that answered, or 'base'")
    adapter: str | None = Field(description="the adapter that answered (null on /rag)")
    sources: list[Source] = Field(description="the chunks the answer was generated from ([] on /finetuned)")
    finish_reason: Literal["stop", "length"]
    usage: Usage
    timings: AskTimings


class SearchResponse(BaseModel):
    results: list[Source]
    timings: dict[str, float]

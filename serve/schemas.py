"""HTTP request/response bodies: OpenAI-compatible chat completions plus the simple routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from modeling.adapters import ADAPTER_NAME_PATTERN
from retrieval.filters import INT_FIELDS, META_PREFIX, STRING_FIELDS, known_fields

RAG_SUFFIX = "+rag"
ADAPTER_NAME_SCHEMA = {"pattern": "^(?!.*\\.\\.)" + ADAPTER_NAME_PATTERN.pattern[1:]}  # what check_adapter_name accepts

def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema's "integer" is any number without a fraction (30.0 included), never a string or boolean.
# (Bounds go before the validator, or pydantic cannot write them into the JSON schema.)
_WHOLE = BeforeValidator(_whole_number)
Integer = Annotated[int, _WHOLE]
FilterWhole = Annotated[int, Field(ge=-(2**53), le=2**53), _WHOLE]  # Milvus int64 fields; exact as floats too
TokenCount = Annotated[int, Field(ge=1), _WHOLE]  # the upper bound is the server's max_tokens_limit (serve/openapi.py)
TopK = Annotated[int, Field(ge=1, le=50), _WHOLE]
Seed = Annotated[int, Field(ge=-(2**53), le=2**53, description="same seed, same sampled answer"), _WHOLE]

# Filter values as retrieval.filters accepts them; the spec says exactly which combinations work.
FilterText = Annotated[str, Field(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$", max_length=1000)]  # no control characters
FilterNumber = Annotated[float, Field(allow_inf_nan=False)]
TextField = Literal[STRING_FIELDS]  # type: ignore[valid-type]
WholeField = Literal[INT_FIELDS]  # type: ignore[valid-type]
MetaField = Annotated[str, Field(pattern=r"^meta\.[^\x00-\x1f]{1,200}$", description="meta.<column> of structured rows")]
Equality = Literal["==", "!="]
Order = Literal["<", "<=", ">", ">="]
Membership = Literal["in", "not in"]


# Request bodies are validated strictly: a JSON type the spec does not allow ("5" or 5.0 for an
# integer, 1 for a boolean) is a 422, never silently converted.
class _FilterBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextFilter(_FilterBase):
    """``source == "manuals/hx220.md"``: text fields compare for equality."""

    field: TextField
    op: Equality = "=="
    value: FilterText | FilterWhole | FilterNumber


class TextInFilter(_FilterBase):
    field: TextField
    op: Membership
    value: list[FilterText | FilterWhole | FilterNumber] = Field(min_length=1, max_length=100)


class NumberFilter(_FilterBase):
    """``page >= 3``: whole-number fields compare any way."""

    field: WholeField
    op: Equality | Order = "=="
    value: FilterWhole


class NumberInFilter(_FilterBase):
    field: WholeField
    op: Membership
    value: list[FilterWhole] = Field(min_length=1, max_length=100)


class MetaFilter(_FilterBase):
    """``meta.region == "EMEA"``, ``meta.price < 50``: JSON columns of structured rows."""

    field: MetaField
    op: Equality = "=="
    value: FilterText | FilterWhole | FilterNumber | bool


class MetaOrderFilter(_FilterBase):
    field: MetaField
    op: Order
    value: FilterWhole | FilterNumber


class MetaInFilter(_FilterBase):
    field: MetaField
    op: Membership
    value: list[FilterText | FilterWhole | FilterNumber | bool] = Field(min_length=1, max_length=100)


def _filter_kind(value: Any) -> str | None:
    """Which filter shape a body is, from its field and op, so a 422 names the one problem
    (an unknown field, an op the field cannot take, a bad value) instead of every shape's."""
    if not isinstance(value, dict):
        return None
    field, op = value.get("field"), value.get("op", "==")
    many = op in ("in", "not in")
    if field in STRING_FIELDS:
        return "text_in" if many else "text"
    if field in INT_FIELDS:
        return "number_in" if many else "number"
    if isinstance(field, str) and field.startswith(META_PREFIX):
        return "meta_in" if many else "meta_order" if op in ("<", "<=", ">", ">=") else "meta"
    return None


def _known_field(value: Any) -> Any:
    if isinstance(value, dict) and _filter_kind(value) is None and "field" in value:
        raise ValueError(f"cannot filter on {value['field']!r}; filterable fields: {', '.join(known_fields())}")
    return value


Filter = Annotated[
    Union[
        Annotated[TextFilter, Tag("text")], Annotated[TextInFilter, Tag("text_in")],
        Annotated[NumberFilter, Tag("number")], Annotated[NumberInFilter, Tag("number_in")],
        Annotated[MetaFilter, Tag("meta")], Annotated[MetaOrderFilter, Tag("meta_order")],
        Annotated[MetaInFilter, Tag("meta_in")],
    ],
    Discriminator(
        _filter_kind, custom_error_type="invalid_filter",
        custom_error_message=f"a filter is an object with field ({', '.join(known_fields())}), op and value",
    ),
    BeforeValidator(_known_field),
]


class ErrorDetail(BaseModel):
    message: str = Field(description="what went wrong and what to change")
    type: str
    code: int = Field(description="the HTTP status")


class ErrorResponse(BaseModel):
    """Every error, OpenAI-shaped (OpenAI clients raise their typed errors from it)."""

    error: ErrorDetail


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts exist for a text-only model."""

    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class ApiMessage(BaseModel):
    """A chat message as OpenAI clients send it (``content`` a string or a list of text parts)."""

    model_config = ConfigDict(extra="ignore", strict=True)  # e.g. "name"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def plain(self) -> dict[str, str]:
        """The ``{"role", "content"}`` dict the model layer formats (``developer`` is OpenAI's new ``system``)."""
        text = self.content if isinstance(self.content, str) else "\n".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The OpenAI body we honour; unknown OpenAI fields (``logprobs`` ...) are ignored.

    Retrieval is chosen per request with ``rag: true`` (``extra_body={"rag": True}`` in the
    OpenAI client) or a model name ending in ``+rag`` (``base+rag``, ``my-adapter+rag``).
    """

    model_config = ConfigDict(extra="ignore", strict=True)
    model: str = Field(
        "base", description="'base' (or the base model's id), a registered adapter, either with '+rag' appended"
    )
    messages: list[ApiMessage] = Field(
        min_length=1,
        max_length=256,
        json_schema_extra={"contains": {"type": "object", "properties": {"role": {"const": "user"}}, "required": ["role"]}},
        description="at least one of them from the user (its last one is the search query with retrieval)",
    )
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | Annotated[list[str], Field(max_length=8)] | None = Field(None, description="up to 8 strings")
    seed: Seed | None = None
    n: Annotated[int, Field(ge=1, le=1), _WHOLE] = Field(1, description="one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    rag: bool = False
    rag_top_k: TopK | None = None
    rag_filters: list[Filter] = Field(default_factory=list, max_length=16)


class _AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(min_length=1, max_length=20_000, pattern=r"\S", description="not only whitespace")
    top_k: TopK | None = None
    filters: list[Filter] = Field(default_factory=list, max_length=16)
    max_tokens: TokenCount | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: Seed | None = None


class AskRequest(_AskBody):
    """Body of ``/rag``: the base model answers from retrieved chunks (``/hybrid`` takes an adapter)."""

    @model_validator(mode="before")
    @classmethod
    def _no_adapter(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adapter" in data:
            raise ValueError("/rag answers with the base model; send requests with an adapter to /hybrid "
                             "(retrieval + adapter) or /finetuned")
        return data


class AdapterAskRequest(_AskBody):
    """Body of ``/finetuned`` and ``/hybrid``: the question plus the adapter that answers."""

    adapter: str = Field(
        description="registry name of a fine-tuned adapter (GET /v1/models)", json_schema_extra=ADAPTER_NAME_SCHEMA
    )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    query: str = Field(min_length=1, max_length=20_000, pattern=r"\S", description="not only whitespace")
    top_k: TopK | None = None
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


class ChatMessageOut(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]


class ChatCompletionResponse(BaseModel):
    """OpenAI's chat completion, plus ``sources`` when retrieval was used (``[n]`` cites ``sources[n-1]``)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    sources: list[Source] | None = Field(None, description="only when retrieval was used")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]


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

"""An OpenAPI document that tells the truth about this deployment.

FastAPI derives the spec from the request models; what only the running app knows is added
here: the ``max_tokens`` limit of this server, the model names it accepts, and bearer-token
security when API keys are configured. Every route documents every status it can answer with
the OpenAI error body (``serve/errors.py``), and 429/503 their ``Retry-After`` header.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serve.errors import OPEN_PATHS
from serve.schemas import ADAPTER_NAME_SCHEMA, RAG_SUFFIX, ErrorResponse
from serve.settings import AppSettings

_MEANING = {
    400: "malformed JSON, an adapter name that is a path, or a prompt longer than the model's context",
    401: "missing or invalid API key (only when API keys are configured)",
    404: "unknown adapter or knowledge collection",
    409: "the adapter cannot be loaded onto the served base model (trained for another base, or not safetensors)",
    413: "request body larger than the server's limit",
    422: "a field out of range or of the wrong type; the message names it",
    429: "the generator's queue is full; retry after `Retry-After` seconds",
    503: "the knowledge store or a replica is unavailable; retry",
    504: "the request ran past the server's timeout",
}
CHAT_STATUSES = (400, 401, 404, 409, 413, 422, 429, 503, 504)
SEARCH_STATUSES = (400, 401, 404, 413, 422, 503, 504)
# OpenAPI 3.1: a text/event-stream `schema` describes one event (OpenAI's chunks are JSON in `data`).
SSE_EVENT = {
    "type": "object",
    "properties": {
        "data": {"type": "string", "description": "a chat.completion.chunk, an error object, or [DONE]"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": _MEANING[status]}
        if status in (429, 503):
            out[status]["headers"] = _RETRY_AFTER
    return out


def _limit_max_tokens(schema: dict, limit: int) -> None:
    for name in ("ChatCompletionRequest", "AskRequest", "AdapterAskRequest"):
        props = schema["components"]["schemas"].get(name, {}).get("properties", {})
        for field in ("max_tokens", "max_completion_tokens"):
            for option in props.get(field, {}).get("anyOf", []):
                if option.get("type") == "integer":
                    option["maximum"] = limit


def _literal(text: str) -> str:
    """``text`` as a regex matching itself, valid in both Python and ECMAScript patterns."""
    return re.sub(r"([.^$*+?()\[\]{}|\\/])", r"\\\1", text)


def truthful_openapi(app: FastAPI, settings: AppSettings) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes,
        openapi_version=app.openapi_version,
    )
    _limit_max_tokens(schema, settings.generator.max_tokens_limit)
    adapter = ADAPTER_NAME_SCHEMA["pattern"].removeprefix("^").removesuffix("$")
    base_names = "|".join(_literal(n) for n in ("base", settings.generator.model.name_or_path))
    model = schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"]
    model["pattern"] = f"^(?:{base_names}|{adapter})(?:{_literal(RAG_SUFFIX)})?$"
    if settings.gateway.effective_api_keys():
        schema["components"].setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
        for path, operations in schema["paths"].items():
            if path not in OPEN_PATHS:
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
    return schema


def install_truthful_openapi(app: FastAPI, settings: AppSettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = truthful_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

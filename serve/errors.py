"""Map every bad input to a 4xx with a message, never a 500 or a hung request.

Errors raised inside other deployments arrive through their handles as instances of the
original class (Ray re-raises the cause), so typed model-layer errors map here directly.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeling import (
    AdapterNotFoundError,
    InvalidAdapterNameError,
    PromptTooLongError,
    UnsafeAdapterFormatError,
)
from modeling.engine import RequestTooLargeError
from modeling.errors import (
    AdapterIntegrityError,
    EngineOverloadedError,
    EngineStoppedError,
    GenerationTimeoutError,
    RegistryUnavailableError,
)
from retrieval.errors import CollectionNotFoundError, RetrievalError, StoreError
from serve.playground import ASSET_PREFIX
from serve.settings import GatewaySettings

OPEN_PATHS = frozenset({"/healthz", "/"})  # "/": the playground page, which holds no secret
OPEN_PREFIXES = (ASSET_PREFIX,)  # the playground's own script and style sheet
log = logging.getLogger("ray.serve")


@asynccontextmanager
async def original_error() -> AsyncIterator[None]:
    """Re-raise the exception a deployment raised, not Ray's wrapper around it.

    Ray can only re-create some exception classes as ``RayTaskError`` subclasses (not those
    with custom ``__init__`` signatures), so handlers would miss them; ``.cause`` is exact.
    """
    try:
        yield
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


class AdapterLoadError(Exception):
    """A registered adapter that cannot be loaded onto the served base model (409)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI-style error object, so OpenAI clients raise their usual typed errors."""
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "code": status}}, headers=headers
    )


@dataclass(frozen=True)
class Failure:
    """How one exception is answered: status, message, OpenAI error type, extra headers."""

    status: int
    message: str
    kind: str
    headers: dict[str, str] | None = None

    def response(self) -> JSONResponse:
        return error_body(self.status, self.message, self.kind, self.headers)

    def event(self) -> dict:
        """The same error as the in-band SSE event of a stream whose headers were already sent."""
        return {"error": {"message": self.message, "type": self.kind, "code": self.status}}


def _replica_lost(exc: Exception) -> str:
    return (
        "the replica handling this request stopped before it answered; it is being replaced. "
        f"Retry the request ({type(exc).__name__})"
    )


# Exception class -> (status, OpenAI error type, message from the exception). The most specific
# class in an exception's MRO wins, so e.g. CollectionNotFoundError (a StoreError) is a 404.
_FAILURES: dict[type, tuple[int, str, Callable[[Exception], str]]] = {
    AdapterNotFoundError: (
        404, "not_found_error",
        lambda e: f"adapter {e.name!r} not found; known adapters: {', '.join(e.known) or '(none)'}",
    ),
    InvalidAdapterNameError: (400, "invalid_request_error", str),
    PromptTooLongError: (400, "context_length_exceeded", str),
    RequestTooLargeError: (400, "context_length_exceeded", str),
    CollectionNotFoundError: (404, "not_found_error", str),
    StoreError: (503, "service_unavailable", lambda e: f"knowledge store unavailable: {e}"),
    RetrievalError: (422, "invalid_request_error", str),
    UnsafeAdapterFormatError: (409, "adapter_format_error", str),
    AdapterLoadError: (409, "adapter_format_error", str),
    AdapterIntegrityError: (409, "adapter_format_error", str),
    RegistryUnavailableError: (503, "service_unavailable", str),
    EngineOverloadedError: (429, "rate_limit_error", str),
    GenerationTimeoutError: (504, "timeout_error", str),
    EngineStoppedError: (503, "service_unavailable", str),
    BackPressureError: (503, "service_unavailable", lambda e: f"the server is at capacity, retry later ({e})"),
    DeploymentUnavailableError: (503, "service_unavailable", lambda e: f"a deployment is unavailable, retry later ({e})"),
    ActorDiedError: (503, "service_unavailable", _replica_lost),
    ActorUnavailableError: (503, "service_unavailable", _replica_lost),
    RayActorError: (503, "service_unavailable", _replica_lost),
}


def describe_failure(exc: BaseException) -> Failure | None:
    """The answer for a known exception (None: an unexpected error, a 500)."""
    for cls in type(exc).__mro__:
        if cls in _FAILURES:
            status, kind, message = _FAILURES[cls]
            headers = None
            if isinstance(exc, EngineOverloadedError):
                headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
            elif status == 503:
                headers = {"Retry-After": "1"}
            return Failure(status, message(exc), kind, headers)
    return None


class LimitsAndAuth:
    """Pure ASGI middleware: bearer-token auth (when keys are set) and a request body cap.

    The cap counts bytes as they arrive, so a chunked upload without Content-Length cannot
    stream an unbounded body into memory either.
    """

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.keys = [k.encode("utf-8") for k in settings.effective_api_keys()]
        self.max_body = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path, root = scope.get("path", ""), scope.get("root_path", "")
        route = path[len(root):] if root and path.startswith(root) else path  # same under any route_prefix
        if self.keys and route not in OPEN_PATHS and not route.startswith(OPEN_PREFIXES):
            scheme, _, token = headers.get("authorization", "").strip().partition(" ")
            presented = token.strip().encode("latin-1") if scheme.lower() == "bearer" else b""
            if not any(hmac.compare_digest(presented, k) for k in self.keys):
                await error_body(401, "missing or invalid API key: send 'Authorization: Bearer <key>'", "auth_error")(
                    scope, receive, send
                )
                return
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_body(413, BodyTooLarge(self.max_body).detail, "request_too_large")(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parsing passes it on as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def install_error_handling(app: FastAPI, settings: GatewaySettings) -> None:
    if getattr(app.state, "errors_installed", False):
        return
    app.state.errors_installed = True
    app.add_middleware(LimitsAndAuth, settings=settings)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_body(exc.status, exc.message, "invalid_request_error")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_body(400, "request body is not valid JSON", "invalid_request_error")
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in errors)
        return error_body(422, detail or "invalid request", "invalid_request_error")

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        failure = describe_failure(exc)
        assert failure is not None  # registered only for classes in _FAILURES
        return failure.response()

    for cls in _FAILURES:
        app.add_exception_handler(cls, _known)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = {
            404: f"no route {request.url.path}; see /docs for the API",
            405: f"{request.method} is not allowed on {request.url.path}; see /docs for the API",
        }.get(exc.status_code, str(exc.detail))
        kind = "request_too_large" if exc.status_code == 413 else "invalid_request_error"
        return error_body(exc.status_code, message, kind, getattr(exc, "headers", None))  # keeps 405's Allow

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request")
        return error_body(500, f"internal error ({type(exc).__name__}); see the Serve replica logs", "server_error")

"""The HTTP ingress: FastAPI inside Ray Serve, composing Retriever and Generator handles.

Routes: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``; simple JSON routes
``/rag``, ``/finetuned``, ``/hybrid``, ``/search``; ``/healthz``; ``/metrics`` (Prometheus,
``serve/metrics.py``); the playground page at ``/`` (``serve/playground/``). Every bad input
maps to a 4xx with a message (see ``serve/errors.py``); nothing here loads models or talks to Milvus.

Retrieval per request: ``"rag": true`` in the body, or a model name ending in ``+rag``
(``base+rag``, ``<adapter>+rag``). Answers that used retrieval carry ``sources`` (the chunks
the prompt was built from, numbered as the answer cites them) as an extra top-level field.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from modeling import Completion, GenerationParams
from modeling.rag_prompt import Passage, build_rag_messages
from serve.errors import ApiError, describe_failure, install_error_handling, original_error
from serve.generator import GenerationRequest
from serve.metrics import GatewayMetrics, RequestMetrics, cluster_metrics
from serve.openapi import CHAT_STATUSES, SEARCH_STATUSES, SSE_EVENT, error_responses, install_truthful_openapi
from serve.playground import router as playground
from serve.schemas import (
    RAG_SUFFIX,
    AdapterAskRequest,
    AskRequest,
    AskResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Health,
    ModelList,
    SearchRequest,
    SearchResponse,
    Source,
)
from serve.settings import AppSettings

app = FastAPI(
    title="phi3-expert",
    version="0.1.0",
    description="RAG, fine-tuned and hybrid answers from Phi-3; OpenAI-compatible under /v1.",
)
app.include_router(playground)
BASE_MODEL_ALIAS = "base"


def _usage(out: Completion) -> dict:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
    }


@serve.deployment(name="Gateway")
@serve.ingress(app)
class Gateway:
    def __init__(self, retriever: DeploymentHandle, generator: DeploymentHandle, settings: dict) -> None:
        self.retriever = retriever
        self.generator = generator
        self.settings = AppSettings.model_validate(settings)
        install_error_handling(app, self.settings.gateway)
        install_truthful_openapi(app, self.settings)
        self.metrics = GatewayMetrics()
        if not getattr(app.state, "metrics_installed", False):  # outermost: 401s and 413s are counted too
            app.state.metrics_installed = True
            app.add_middleware(RequestMetrics, metrics=self.metrics, routes=lambda: app.routes)

    # -- helpers ---------------------------------------------------------------------------
    def _params(
        self, max_tokens: tuple[int | None, ...], temperature: float, top_p: float, stop, seed
    ) -> GenerationParams:
        """Generation parameters; ``max_tokens`` lists the token limits a request gave (the first wins)."""
        limits = self.settings.generator
        for given in max_tokens:
            if given is not None and given > limits.max_tokens_limit:
                raise ApiError(422, f"max_tokens={given} is above this server's limit of {limits.max_tokens_limit}")
        wanted = next((t for t in max_tokens if t is not None), limits.default_max_tokens)
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        try:
            return GenerationParams(max_new_tokens=wanted, temperature=temperature, top_p=top_p, stop=stops, seed=seed)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ApiError(422, detail) from exc

    def _adapter_for(self, model: str) -> str | None:
        """``base`` or the base model's id -> None; anything else must be a registered adapter."""
        if model in (BASE_MODEL_ALIAS, self.settings.generator.model.name_or_path):
            return None
        return model

    @asynccontextmanager
    async def _deadline(self):
        """Bound retrieval + generation of one request; a request never hangs (504 instead).

        Yields a function giving the seconds left, which the Generator receives as the
        request's own deadline: past it the engine frees the request's row.
        """
        limit = self.settings.gateway.request_timeout_s
        ends = time.monotonic() + limit
        try:
            async with asyncio.timeout(limit):
                yield lambda: max(0.001, ends - time.monotonic())
        except TimeoutError:
            raise ApiError(504, f"the request took longer than {limit:g}s; ask for fewer max_tokens or retry") from None

    async def _search(self, query: str, top_k: int | None, mode: str | None, filters) -> list[Source]:
        started = time.perf_counter()
        async with original_error():
            hits = await self.retriever.search.remote(
                query,
                top_k or self.settings.retriever.top_k,
                mode or self.settings.retriever.mode,
                [f.model_dump() for f in filters],
            )
        self.metrics.searched(time.perf_counter() - started, len(hits))
        return [Source(ref=i, **hit) for i, hit in enumerate(hits, start=1)]

    async def _answer(
        self, messages: list[dict], adapter: str | None, params: GenerationParams, timeout_s: float
    ) -> Completion:
        async with original_error():
            return await self.generator.options(multiplexed_model_id=adapter or "").generate.remote(
                GenerationRequest(messages=messages, adapter=adapter, params=params, timeout_s=timeout_s)
            )

    @staticmethod
    def _rag_messages(messages: list[dict], sources: list[Source]) -> list[dict]:
        """Replace the last user turn by the RAG prompt over ``sources``; keep earlier turns."""
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        passages = [Passage(text=s.text, source=s.source, section=s.section) for s in sources]
        rag = build_rag_messages(messages[last_user]["content"], passages, **({"system": system} if system else {}))
        history = [m for m in messages[:last_user] if m["role"] != "system"]
        return [m for m in rag if m["role"] == "system"] + history + [m for m in rag if m["role"] == "user"]

    # -- routes ----------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health)
    async def healthz(self) -> dict:
        """Liveness of the HTTP ingress (no API key needed)."""
        return {"status": "ok"}

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text format: this app's and Serve's metrics from every node",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_responses(401),
        },
    )
    async def metrics_text(self) -> Response:
        """Requests, latencies, tokens, batch and queue per Generator replica, adapters, retrieval (serve/metrics.py)."""
        return Response(await cluster_metrics(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList, responses=error_responses(401, 503))
    async def models(self) -> dict:
        """The base model, every registered adapter, and each with ``+rag``."""
        created = int(time.time())
        async with original_error():
            adapters = await self.generator.adapters.remote()
        ids = [BASE_MODEL_ALIAS, *adapters]
        data = [{"id": i, "object": "model", "created": created, "owned_by": "phi3-expert"} for i in ids]
        data += [{"id": i + RAG_SUFFIX, "object": "model", "created": created, "owned_by": "phi3-expert"} for i in ids]
        return {"object": "list", "data": data}

    @app.post(
        "/v1/chat/completions",
        response_model=None,
        responses={
            200: {
                "model": ChatCompletionResponse,
                "description": "the completion, or with `stream: true` OpenAI's server-sent events",
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            },
            **error_responses(*CHAT_STATUSES),
        },
    )
    async def chat_completions(self, body: ChatCompletionRequest):
        """OpenAI-compatible chat completion over the base model or an adapter, with retrieval on request."""
        model = body.model
        use_rag = body.rag or model.endswith(RAG_SUFFIX)
        adapter = self._adapter_for(model.removesuffix(RAG_SUFFIX))
        params = self._params(
            (body.max_completion_tokens, body.max_tokens), body.temperature, body.top_p, body.stop, body.seed
        )
        messages = [m.plain() for m in body.messages]
        if not any(m["role"] == "user" for m in messages):
            raise ApiError(422, "messages must contain at least one user message")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        sources: list[Source] = []
        async with self._deadline() as time_left:
            if use_rag:
                query = next(m["content"] for m in reversed(messages) if m["role"] == "user")
                if query.strip():  # nothing to search for: the model answers without passages
                    sources = await self._search(query, body.rag_top_k, None, body.rag_filters)
                messages = self._rag_messages(messages, sources)
            if body.stream:
                request = GenerationRequest(
                    messages=messages, adapter=adapter, params=params, timeout_s=self.settings.gateway.stream_timeout_s
                )
                async with original_error():
                    await self.generator.validate.remote(request)  # 4xx now, not mid-stream
            else:
                out = await self._answer(messages, adapter, params, time_left())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                self._stream(completion_id, model, request, sources if use_rag else None, include_usage),
                media_type="text/event-stream",
            )
        response = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": out.text}, "finish_reason": out.finish_reason}
            ],
            "usage": _usage(out),
        }
        if use_rag:
            response["sources"] = [s.model_dump() for s in sources]
        return response

    async def _stream(
        self,
        completion_id: str,
        model: str,
        request: GenerationRequest,
        sources: list[Source] | None,
        include_usage: bool,
    ) -> AsyncIterator[str]:
        """OpenAI's SSE chunks; the last content chunk carries ``finish_reason`` (and ``sources`` with RAG)."""
        created = int(time.time())

        def event(choices: list[dict], **extra) -> str:
            chunk = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra,
            }
            return f"data: {json.dumps(chunk)}\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        handle = self.generator.options(multiplexed_model_id=request.adapter or "", stream=True)
        final: Completion | None = None
        try:
            async with original_error():
                async for item in handle.generate_stream.remote(request):
                    if isinstance(item, Completion):
                        final = item
                    else:
                        yield event([{"index": 0, "delta": {"content": item}, "finish_reason": None}])
        except Exception as exc:  # headers are sent: report in-band, then end the stream cleanly
            failure = describe_failure(exc)
            if failure is not None:
                error = failure.event()
            else:
                error = {"error": {"message": f"generation failed: {type(exc).__name__}: {exc}", "type": "server_error", "code": 500}}
            yield f"data: {json.dumps(error)}\n\n"
            yield "data: [DONE]\n\n"
            return
        extra = {"sources": [s.model_dump() for s in sources]} if sources is not None else {}
        finish = final.finish_reason if final else "stop"
        yield event([{"index": 0, "delta": {}, "finish_reason": finish}], **extra)
        if include_usage and final:
            yield event([], usage=_usage(final))
        yield "data: [DONE]\n\n"

    async def _ask(self, body: AskRequest | AdapterAskRequest, *, use_rag: bool) -> dict:
        adapter = getattr(body, "adapter", None)
        started = time.perf_counter()
        params = self._params((body.max_tokens,), body.temperature, body.top_p, None, body.seed)
        messages = [{"role": "user", "content": body.question}]
        sources: list[Source] = []
        async with self._deadline() as time_left:
            if use_rag:
                sources = await self._search(body.question, body.top_k, None, body.filters)
                messages = build_rag_messages(body.question, [Passage(**s.model_dump()) for s in sources])
            retrieved = time.perf_counter()
            out = await self._answer(messages, adapter, params, time_left())
        done = time.perf_counter()
        return {
            "answer": out.text,
            "model": adapter or BASE_MODEL_ALIAS,
            "adapter": adapter,
            "sources": [s.model_dump() for s in sources],
            "finish_reason": out.finish_reason,
            "usage": _usage(out),
            "timings": {
                "retrieval_s": round(retrieved - started, 4),
                "generation_s": round(done - retrieved, 4),
                "total_s": round(done - started, 4),
            },
        }

    @app.post("/rag", response_model=AskResponse, responses=error_responses(*CHAT_STATUSES))
    async def rag(self, body: AskRequest) -> dict:
        """Retrieve, then answer with the base model from the retrieved chunks (for an adapter: /hybrid)."""
        return await self._ask(body, use_rag=True)

    @app.post("/finetuned", response_model=AskResponse, responses=error_responses(*CHAT_STATUSES))
    async def finetuned(self, body: AdapterAskRequest) -> dict:
        """Answer with a fine-tuned adapter, no retrieval."""
        return await self._ask(body, use_rag=False)

    @app.post("/hybrid", response_model=AskResponse, responses=error_responses(*CHAT_STATUSES))
    async def hybrid(self, body: AdapterAskRequest) -> dict:
        """Retrieve, then answer with a fine-tuned adapter from the retrieved chunks."""
        return await self._ask(body, use_rag=True)

    @app.post("/search", response_model=SearchResponse, responses=error_responses(*SEARCH_STATUSES))
    async def search(self, body: SearchRequest) -> dict:
        """Retrieval only: the ranked chunks with their metadata."""
        started = time.perf_counter()
        async with self._deadline():
            sources = await self._search(body.query, body.top_k, body.mode, body.filters)
        return {"results": [s.model_dump() for s in sources], "timings": {"total_s": round(time.perf_counter() - started, 4)}}

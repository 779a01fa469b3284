"""The naive baseline: one Hugging Face ``generate`` per request, no batching, no Ray.

This is what a first serving attempt usually looks like (a FastAPI route around
``model.generate``); requests are serialised by a lock because a model is not thread-safe.
It loads the model, formats chats, retrieves and builds the RAG prompt through the same
packages as the Serve app (model layer, retrieval API, shared RAG prompt), with the same
generation parameters, so only the serving strategy differs.

    python benchmarks/serve/naive_server.py --port 8200 [--threads 1] [--milvus-uri F --collection C]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

from modeling import GenerationParams, ModelSettings, generate_chat, load_base_model, load_tokenizer
from modeling.rag_prompt import Passage, build_rag_messages
from retrieval.api import Retriever


class Body(BaseModel):
    messages: list[dict]
    max_tokens: int = Field(32, ge=1, le=1024)
    temperature: float = 0.0
    rag: bool = False


def build(settings: ModelSettings, retriever: Retriever | None, top_k: int, mode: str) -> FastAPI:
    app = FastAPI()
    tokenizer = load_tokenizer(settings)
    model = load_base_model(settings).eval()
    model_lock, search_lock = threading.Lock(), threading.Lock()

    def answer(body: Body) -> dict:
        started = time.perf_counter()
        messages, sources = body.messages, []
        if body.rag:
            if retriever is None:
                raise ValueError("start the naive server with --milvus-uri/--collection for rag requests")
            question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            with search_lock:
                hits = retriever.search(question, mode=mode, top_k=top_k)
            sources = [h.to_dict() for h in hits]
            messages = build_rag_messages(question, [Passage(text=h.text, source=h.source, section=h.section) for h in hits])
        params = GenerationParams(max_new_tokens=body.max_tokens, temperature=body.temperature)
        retrieved = time.perf_counter()
        with model_lock:
            (out,) = generate_chat(model, tokenizer, [messages], params)
        done = time.perf_counter()
        response = {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text}, "finish_reason": out.finish_reason}],
            "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens},
            "timings": {"retrieval_s": round(retrieved - started, 4), "generation_s": round(done - retrieved, 4)},
        }
        if body.rag:
            response["sources"] = sources
        return response

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "torch_threads": torch.get_num_threads()}

    @app.post("/v1/chat/completions")
    async def chat(body: Body) -> dict:
        return await asyncio.to_thread(answer, body)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (match the Generator replica's)")
    parser.add_argument("--milvus-uri", default=None)
    parser.add_argument("--collection", default="knowledge")
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--mode", default="hybrid")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    retriever = Retriever(collection=args.collection, uri=args.milvus_uri) if args.milvus_uri else None
    if retriever is not None:
        retriever.embedder  # noqa: B018 - load the embedder before the first request, as the Serve replica does
    uvicorn.run(build(ModelSettings(), retriever, args.top_k, args.mode), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

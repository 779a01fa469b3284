"""The ``Generator`` deployment: one base model per replica, any registered adapter per request.

* Adapters are multiplexed with Ray Serve (``serve.multiplexed``): a replica keeps an LRU of
  loaded adapters and the router prefers replicas that already hold a request's adapter.
* Concurrent requests are batched (``serve.batch``): Serve splits a batch by adapter
  (multiplexed model id) and we split it further by generation parameters, then run one
  left-padded ``generate`` per group, so several requests share each forward pass.
* Streaming requests (``generate_stream``) run one at a time, outside the batches.
* The model is not thread-safe (the active adapter is shared state), so every use of it
  holds one lock; the event loop stays free while a batch runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import torch
from ray import serve
from transformers import TextIteratorStreamer

from modeling import (
    AdapterHost,
    AdapterMismatchError,
    AdapterRegistry,
    Completion,
    GenerationParams,
    ModelLayerError,
    encode_chat,
    generate_from_ids,
    load_base_model,
    load_tokenizer,
)
from modeling.generation import check_fits, context_window
from serve.errors import AdapterLoadError
from serve.settings import GeneratorSettings


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]
    adapter: str | None
    params: GenerationParams


class _LoadedAdapter:
    """What the multiplexer caches; Serve calls ``__del__`` when its LRU evicts it."""

    def __init__(self, name: str, generator: "Generator") -> None:
        self.name = name
        self._generator = generator
        self._released = False

    def __del__(self) -> None:
        if not self._released:
            self._released = True
            with self._generator.lock:
                self._generator.host.unload(self.name)
                self._generator.adapter_stats["unloads"] += 1


class StopTrimmer:
    """Cut a text stream at the first stop string, as the non-streaming path cuts the full text.

    A stop string can arrive split over pieces, so the last ``len(longest stop) - 1``
    characters are held back until it is clear they do not start one.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.buffer += piece
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self.buffer = self.buffer[:cut], ""
            return out
        keep = len(self.buffer) - self.hold if self.hold else len(self.buffer)
        out, self.buffer = self.buffer[:keep], self.buffer[keep:]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


@serve.deployment(name="Generator")
class Generator:
    def __init__(self, settings: dict | GeneratorSettings) -> None:
        self.settings = GeneratorSettings.model_validate(settings)
        model_settings = self.settings.model
        if torch.cuda.is_available() and model_settings.device_map is None:
            # A GPU replica (num_gpus: 1 in ray_actor_options) sees exactly its GPU as cuda:0.
            model_settings = model_settings.model_copy(update={"device_map": "cuda"})
        self.tokenizer = load_tokenizer(model_settings)
        self.registry = AdapterRegistry(self.settings.adapter_registry)
        self.host = AdapterHost(load_base_model(model_settings).eval(), self.registry)
        self.lock = threading.Lock()
        self.adapter_stats = {"loads": 0, "unloads": 0, "load_seconds": 0.0}  # reported by info()

        async def load_adapter(name: str) -> _LoadedAdapter:
            await asyncio.to_thread(self._load_locked, name)
            return _LoadedAdapter(name, self)

        self._adapters = serve.multiplexed(max_num_models_per_replica=self.settings.max_adapters_per_replica)(
            load_adapter
        )
        self._batched = serve.batch(
            max_batch_size=self.settings.max_batch_size, batch_wait_timeout_s=self.settings.batch_wait_timeout_s
        )(self._generate_batch)

    def _load_locked(self, name: str) -> None:
        with self.lock:
            started = time.perf_counter()
            try:
                self.host.load(name)
                self.adapter_stats["loads"] += 1
                self.adapter_stats["load_seconds"] += time.perf_counter() - started
            except AdapterMismatchError as exc:  # found before the model was touched
                self._incompatible(name, exc)
            except ModelLayerError:
                raise
            except Exception as exc:  # anything else peft refuses
                self._incompatible(name, exc)

    def _incompatible(self, name: str, exc: Exception) -> None:
        trained_for = self.registry.metadata(name).get("base_model", "an unrecorded base model")
        raise AdapterLoadError(
            f"adapter {name!r} cannot be loaded onto the served base model "
            f"{self.settings.model.name_or_path!r} ({type(exc).__name__}: {exc}); it was trained for "
            f"{trained_for}: serve it with that base model or retrain it"
        ) from None

    # -- public methods (called through DeploymentHandles) ------------------------------
    def info(self) -> dict:
        return {
            "base_model": self.settings.model.name_or_path,
            "context_window": context_window(self.host.model),
            "adapters": self.registry.names(),
            "loaded_adapters": self.host.loaded,
            "device": str(next(self.host.model.parameters()).device),
            "torch_threads": torch.get_num_threads(),
            "adapter_stats": dict(self.adapter_stats),
        }

    def adapters(self) -> list[str]:
        return self.registry.names()

    def validate(self, request: GenerationRequest) -> None:
        """Raise the typed error a request would hit, before a stream's headers are sent."""
        self._prepare(request)

    async def generate(self, request: GenerationRequest) -> Completion:
        prompt = self._prepare(request)
        if request.adapter:
            await self._adapters(request.adapter)  # LRU bookkeeping; raises if unknown
        return await self._batched((request.adapter, prompt, request.params))

    async def generate_stream(self, request: GenerationRequest) -> AsyncIterator[str | Completion]:
        """Yield text pieces as they are generated, then the final ``Completion`` (one request, not batched)."""
        prompt = self._prepare(request)
        if request.adapter:
            await self._adapters(request.adapter)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)

        def run() -> Completion:
            try:
                with self.lock, self.host.using(request.adapter) as model:
                    (out,) = generate_from_ids(model, self.tokenizer, [prompt], request.params, streamer=streamer)
                return out
            finally:
                streamer.end()  # an error must end the stream too, or the reader below waits forever

        worker = asyncio.ensure_future(asyncio.to_thread(run))
        trimmer = StopTrimmer(request.params.stop)
        pieces = iter(streamer)
        while True:
            piece = await asyncio.to_thread(next, pieces, None)
            if piece is None:
                break
            text = trimmer.feed(piece)
            if text:
                yield text
        tail = trimmer.flush()
        if tail:
            yield tail
        yield await worker  # the Completion (finish reason, token counts); re-raises a generation error

    # -- internals -----------------------------------------------------------------------
    def _prepare(self, request: GenerationRequest) -> list[int]:
        if request.adapter:
            self.registry.path(request.adapter)  # unknown / unsafe names fail before any work
        prompt = encode_chat(self.tokenizer, request.messages)
        check_fits(self.host.model, len(prompt), request.params.max_new_tokens)
        return prompt

    async def _generate_batch(self, items: list[tuple[str | None, list[int], GenerationParams]]) -> list[Completion]:
        return await asyncio.to_thread(self._generate_groups, items)

    def _generate_groups(self, items: list[tuple[str | None, list[int], GenerationParams]]) -> list[Completion]:
        """Group a batch by (adapter, params) and run one generate() per group."""
        results: list[Completion | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, (adapter, _, params) in enumerate(items):
            groups.setdefault((adapter, params), []).append(i)
        with self.lock:
            for (adapter, params), indices in groups.items():
                with self.host.using(adapter) as model:
                    outs = generate_from_ids(model, self.tokenizer, [items[i][1] for i in indices], params)
                for i, out in zip(indices, outs):
                    results[i] = out
        return results  # type: ignore[return-value]

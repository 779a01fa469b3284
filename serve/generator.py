"""The ``Generator`` deployment: one base model per replica, any registered adapter per request.

* Generation runs in the model layer's continuous-batching engine
  (``modeling.engine.GenerationEngine``): requests join the running batch at the next
  decoding step and leave when they finish; rows of one forward pass may use different
  adapters, sampling settings and lengths; streams are rows like any other. Nothing here
  holds a lock or a thread across a generation.
* Adapters are multiplexed with Ray Serve (``serve.multiplexed``): a replica keeps an LRU of
  ``max_adapters_per_replica`` adapters and the router prefers replicas that already hold a
  request's adapter. An adapter the LRU evicts is unloaded once no running request uses it.
* A full queue is refused (``EngineOverloadedError``, HTTP 429 with Retry-After); a request
  past its deadline frees its row (HTTP 504); the replica reports its queue depth to Serve's
  autoscaler (``record_autoscaling_stats``) and fails its health check when the engine stalls.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import torch
from ray import serve

from modeling import (
    AdapterHost,
    AdapterMismatchError,
    AdapterRegistry,
    Completion,
    GenerationParams,
    ModelLayerError,
    encode_chat,
    load_base_model,
    load_tokenizer,
)
from modeling.engine import GenerationEngine
from modeling.generation import check_fits, context_window
from serve.errors import AdapterLoadError
from serve.metrics import GeneratorMetrics
from serve.settings import GeneratorSettings


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]
    adapter: str | None
    params: GenerationParams
    timeout_s: float | None = None  # the time left of the request's deadline; past it the row is freed


class _LoadedAdapter:
    """What the multiplexer caches; Serve calls ``__del__`` when its LRU evicts it."""

    def __init__(self, name: str, generator: "Generator") -> None:
        self.name = name
        self._generator = generator
        self._released = False

    def __del__(self) -> None:
        if not self._released:
            self._released = True
            self._generator.engine.release_adapter(self.name)
            self._generator.adapter_stats["unloads"] += 1


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
        self.engine = GenerationEngine(self.host, self.tokenizer, self.settings.engine)
        self.adapter_stats = {"loads": 0, "unloads": 0, "load_seconds": 0.0, "refreshes": 0}  # reported by info()
        self._versions: dict[str, str | None] = {}  # adapter -> the registry version this replica serves

        async def load_adapter(name: str) -> _LoadedAdapter:
            started = time.perf_counter()
            try:
                # Fetch a remote adapter off the engine thread; the engine then only injects it.
                await asyncio.to_thread(self.registry.path, name)
                await asyncio.wrap_future(self.engine.want_adapter(name))
            except AdapterMismatchError as exc:  # found before the model was touched
                self._incompatible(name, exc)
            except ModelLayerError:
                raise
            except Exception as exc:  # anything else peft refuses
                self._incompatible(name, exc)
            self.adapter_stats["loads"] += 1
            self.adapter_stats["load_seconds"] += time.perf_counter() - started
            self._versions[name] = self.registry.version(name)
            return _LoadedAdapter(name, self)

        self._adapters = serve.multiplexed(max_num_models_per_replica=self.settings.max_adapters_per_replica)(
            load_adapter
        )
        self.metrics = GeneratorMetrics(lambda: (self.engine.snapshot(), dict(self.adapter_stats)))  # this replica's

    def _incompatible(self, name: str, exc: Exception) -> None:
        trained_for = self.registry.metadata(name).get("base_model", "an unrecorded base model")
        raise AdapterLoadError(
            f"adapter {name!r} cannot be loaded onto the served base model "
            f"{self.settings.model.name_or_path!r} ({type(exc).__name__}: {exc}); it was trained for "
            f"{trained_for}: serve it with that base model or retrain it"
        ) from None

    # -- public methods (called through DeploymentHandles) ------------------------------
    def info(self) -> dict:
        import ray

        return {
            "pid": os.getpid(),  # for operators and fault drills: the replica's process
            "node_id": ray.get_runtime_context().get_node_id(),
            "base_model": self.settings.model.name_or_path,
            "context_window": context_window(self.host.model),
            "adapters": self.registry.names(),
            "loaded_adapters": self.host.loaded,
            "device": str(next(self.host.model.parameters()).device),
            "torch_threads": torch.get_num_threads(),
            "adapter_stats": dict(self.adapter_stats),
            "engine": self.engine.snapshot(),
        }

    def adapters(self) -> list[str]:
        return self.registry.names()

    def validate(self, request: GenerationRequest) -> None:
        """Raise the typed error a request would hit, before a stream's headers are sent."""
        self._prepare(request)

    async def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        prompt = self._prepare(request)
        if request.adapter:
            await self._adapters(request.adapter)  # LRU bookkeeping; raises if unknown
        out = await self.engine.generate(prompt, request.params, request.adapter, request.timeout_s)
        self.metrics.request_done(out, time.perf_counter() - started, stream=False)
        return out

    async def generate_stream(self, request: GenerationRequest) -> AsyncIterator[str | Completion]:
        """Text pieces as they are decoded, then the final ``Completion`` (a row of the running batch)."""
        started = time.perf_counter()
        prompt = self._prepare(request)
        if request.adapter:
            await self._adapters(request.adapter)
        async for item in self.engine.stream(prompt, request.params, request.adapter, request.timeout_s):
            if isinstance(item, Completion):
                self.metrics.request_done(item, time.perf_counter() - started, stream=True)
            yield item

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Custom metrics Serve's autoscaler receives from every replica (queue depth first)."""
        stats = self.engine.snapshot()
        return {
            "queue_depth": float(stats["waiting"]),
            "running": float(stats["running"]),
            "kv_utilization": stats["kv_used_bytes"] / max(1, stats["kv_budget_bytes"]),
        }

    def check_health(self) -> None:
        """Serve calls this periodically; a replica whose engine died or stalls is replaced."""
        if not self.engine.healthy(self.settings.stall_timeout_s):
            raise RuntimeError(
                f"the generation engine is not making progress (no step finished in {self.settings.stall_timeout_s:g}s "
                "while requests wait, or its loop died); Serve will replace this replica"
            )

    def __del__(self) -> None:
        if hasattr(self, "metrics"):
            self.metrics.stop()
        if hasattr(self, "engine"):
            self.engine.stop()

    # -- internals -----------------------------------------------------------------------
    def _refresh_if_republished(self, name: str) -> None:
        """A remote adapter published again since this replica loaded it is reloaded once no row uses it."""
        version = self.registry.version(name)
        if name in self._versions and version != self._versions[name]:
            self._versions[name] = version
            self.adapter_stats["refreshes"] += 1
            self.engine.release_adapter(name)  # the next admission loads the new copy

    def _prepare(self, request: GenerationRequest) -> list[int]:
        if request.adapter:
            self.registry.path(request.adapter)  # unknown / unsafe names fail before any work; refreshes a remote copy
            self._refresh_if_republished(request.adapter)
        prompt = encode_chat(self.tokenizer, request.messages)
        check_fits(self.host.model, len(prompt), request.params.max_new_tokens)
        return prompt

"""The continuous-batching generation engine: one loop thread per model, many requests per step.

Every step is one forward pass over a ragged batch (see ``attention.py``): each running
sequence contributes its next token, and the prompts of newly admitted requests contribute
chunks of their tokens in the room left by ``max_step_tokens`` (chunked prefill, so a long
prompt never stalls the sequences that are decoding). Requests join at the next step and
leave the step they finish, so no request waits for a whole batch to end. Rows may use
different LoRA adapters, sampling settings, stop strings and lengths.

The loop runs in its own thread; callers submit from any thread and get their results
through a sink (``AsyncioSink`` for asyncio callers: no thread is parked per request). A
caller that goes away cancels its request, and its row is freed at the next step. Work
that must touch the model itself (loading or unloading an adapter) runs on the loop thread
between two steps (:meth:`GenerationEngine.call`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from modeling.adapters import AdapterHost
from modeling.engine.adapters import LoraRows, rows_use_adapters
from modeling.engine.attention import Segment, StepLayout, use_ragged_attention
from modeling.engine.kv import SequenceKV, kv_bytes_per_token
from modeling.engine.prefix_cache import PrefixCache
from modeling.engine.request import AsyncioSink, EventSink, Sequence
from modeling.engine.sampling import RowSampler, next_tokens
from modeling.engine.settings import EngineSettings
from modeling.engine.text import TextAssembler
from modeling.errors import (
    EngineOverloadedError,
    EngineStoppedError,
    GenerationTimeoutError,
    ModelLayerError,
)
from modeling.generation import Completion, GenerationParams, check_fits, end_token_ids

log = logging.getLogger(__name__)


class RequestTooLargeError(ModelLayerError):
    """Prompt plus max_tokens need more KV cache than the engine may ever hold at once."""


@dataclass
class EngineStats:
    """Counters since start, and the current occupancy (what metrics and autoscaling read)."""

    steps: int = 0
    step_rows: int = 0  # sequences summed over steps (/ steps = the mean batch size)
    prompt_tokens: int = 0  # prompt tokens computed (not served from the prefix cache)
    prefix_hit_tokens: int = 0
    generated_tokens: int = 0
    finished: int = 0
    cancelled: int = 0
    timed_out: int = 0
    refused: int = 0
    failed: int = 0
    waiting: int = 0
    running: int = 0
    kv_used_bytes: int = 0
    kv_budget_bytes: int = 0
    last_step_rows: int = 0
    last_step_s: float = 0.0
    busy_s: float = 0.0  # time spent in steps
    adapters_loaded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class GenerationEngine:
    def __init__(
        self, host: AdapterHost, tokenizer: PreTrainedTokenizerBase, settings: EngineSettings | None = None
    ) -> None:
        self.host = host
        self.tokenizer = tokenizer
        self.settings = settings or EngineSettings()
        base = self._base_model()
        use_ragged_attention(base)
        self.eos = set(end_token_ids(base, tokenizer))
        self.device = base.get_input_embeddings().weight.device
        self.num_layers = base.config.num_hidden_layers
        self.token_bytes = kv_bytes_per_token(base)
        self.kv_budget = int(self.settings.kv_cache_mb * 2**20)
        self.lora_rows = LoraRows()
        self.prefix_cache = PrefixCache(int(self.settings.prefix_cache_mb * 2**20), self.settings.prefix_block_tokens)
        self.stats = EngineStats(kv_budget_bytes=self.kv_budget)
        self._lock = threading.Lock()  # guards _inbox, _calls, the refusal check and the adapter wishes
        self._wake = threading.Event()
        self._inbox: deque[Sequence] = deque()
        self._calls: deque[tuple[Callable[[], Any], concurrent.futures.Future]] = deque()
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._unwanted: set[str] = set()  # adapters to unload once no request uses them
        self._finish_times: deque[float] = deque(maxlen=64)
        self._stop = False
        self._error: BaseException | None = None
        self.last_progress = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="generation-engine", daemon=True)
        self._thread.start()

    # -- submitting ---------------------------------------------------------------------
    def submit(
        self,
        prompt: list[int],
        params: GenerationParams,
        sink: EventSink,
        adapter: str | None = None,
        timeout_s: float | None = None,
    ) -> Sequence:
        """Queue one request; raises at once if it can never run or the queue is full."""
        if not prompt:
            raise ModelLayerError("the prompt is empty; send at least one message with content")
        check_fits(self._base_model(), len(prompt), params.max_new_tokens)
        seq = Sequence(prompt=list(prompt), params=params, adapter=adapter, sink=sink, timeout_s=timeout_s)
        need = seq.reserved_tokens * self.token_bytes
        if need > self.kv_budget:
            raise RequestTooLargeError(
                f"prompt ({len(prompt)} tokens) plus max_tokens ({params.max_new_tokens}) need {need / 2**20:.0f} MB "
                f"of KV cache, more than this server's kv_cache_mb={self.settings.kv_cache_mb}; lower max_tokens or "
                "shorten the prompt"
            )
        with self._lock:
            self._raise_if_stopped()
            queued = len(self._inbox) + len(self._waiting)
            free_rows = max(0, self.settings.max_batch_size - len(self._running))
            if queued - free_rows >= self.settings.max_queued_requests:
                self.stats.refused += 1
                raise EngineOverloadedError(queued, self.settings.max_queued_requests, self.retry_after_s(queued))
            self._inbox.append(seq)
        self._wake.set()
        return seq

    def cancel(self, seq: Sequence) -> None:
        """Drop a request (its caller went away); its row is freed at the next step."""
        seq.cancelled = True
        self._wake.set()

    async def generate(
        self, prompt: list[int], params: GenerationParams, adapter: str | None = None, timeout_s: float | None = None
    ) -> Completion:
        """The whole answer (for asyncio callers)."""
        sink = AsyncioSink(asyncio.get_running_loop(), streaming=False)
        seq = self.submit(prompt, params, sink, adapter, timeout_s)
        try:
            item = await sink.queue.get()
        finally:
            if not seq.done:
                self.cancel(seq)
        if isinstance(item, BaseException):
            raise item
        return item

    async def stream(
        self, prompt: list[int], params: GenerationParams, adapter: str | None = None, timeout_s: float | None = None
    ) -> AsyncIterator[str | Completion]:
        """Text pieces as they are decoded, then the ``Completion``.

        The first piece goes out at once; after it, pieces are sent at most every
        ``stream_interval_s`` (those decoded meanwhile are joined), so a busy replica spends its
        time generating rather than passing one message per token through Ray and the proxy.
        """
        loop = asyncio.get_running_loop()
        sink = AsyncioSink(loop, streaming=True)
        seq = self.submit(prompt, params, sink, adapter, timeout_s)
        interval, last_sent = self.settings.stream_interval_s, None
        try:
            while True:
                items = [await sink.queue.get()]
                if interval and last_sent is not None and isinstance(items[0], str):
                    await asyncio.sleep(max(0.0, last_sent + interval - loop.time()))
                while not sink.queue.empty():
                    items.append(sink.queue.get_nowait())
                pieces = [i for i in items if isinstance(i, str)]
                if pieces:
                    yield "".join(pieces)
                    last_sent = loop.time()
                for item in items:
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, Completion):
                        yield item
                        return
        finally:
            if not seq.done:
                self.cancel(seq)

    # -- control ------------------------------------------------------------------------
    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``fn`` on the loop thread between two steps (it may change the model)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._raise_if_stopped()
            self._calls.append((fn, future))
        self._wake.set()
        return future

    def want_adapter(self, name: str) -> concurrent.futures.Future:
        """Load adapter ``name`` (between steps) and keep it until :meth:`release_adapter`."""

        def load() -> None:
            self._unwanted.discard(name)
            self.host.load(name)

        return self.call(load)

    def release_adapter(self, name: str) -> None:
        """Unload ``name`` as soon as no waiting or running request uses it."""
        with self._lock:
            self._unwanted.add(name)
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop; requests still in it fail with ``EngineStoppedError``."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout_s)

    def healthy(self, stall_s: float = 120.0) -> bool:
        """The loop thread is alive and, when it has work, finished a step within ``stall_s``."""
        if not self._thread.is_alive() or self._error is not None:
            return False
        busy = bool(self._running or self._waiting or self._inbox)
        return not busy or time.monotonic() - self.last_progress < stall_s

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self.stats.waiting = len(self._inbox) + len(self._waiting)
        self.stats.running = len(self._running)
        self.stats.prefix_hit_tokens = self.prefix_cache.hit_tokens
        self.stats.adapters_loaded = list(self.host.loaded)
        return self.stats.as_dict()

    def retry_after_s(self, queued: int) -> float:
        """How long the queue ahead of a new request takes to drain, from the recent finishing rate."""
        times = list(self._finish_times)
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
            return float(min(120, max(1, math.ceil(queued / rate))))
        return 5.0

    # -- the loop -----------------------------------------------------------------------
    def _base_model(self) -> PreTrainedModel:
        model = self.host.model
        return model.get_base_model() if isinstance(model, PeftModel) else model

    def _raise_if_stopped(self) -> None:
        if self._stop or self._error is not None:
            raise EngineStoppedError(
                "the generation engine is not running"
                + (f" (its loop failed: {type(self._error).__name__}: {self._error})" if self._error else "")
                + "; the replica must be restarted"
            )

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while not self._stop:
                    self._run_calls()
                    self._take_inbox()
                    self._drop_finished_early()
                    self._admit()
                    self._unload_unwanted()
                    if not self._running:
                        self.last_progress = time.monotonic()
                        self._wake.wait(self.settings.idle_wait_s)
                        self._wake.clear()
                        continue
                    self._step()
                    self.last_progress = time.monotonic()
        except BaseException as exc:  # the loop must never die silently: fail everything it held
            self._error = exc
            log.exception("generation engine loop failed")
        finally:
            reason = self._error or EngineStoppedError("the generation engine was stopped")
            with self._lock:
                pending = [*self._running, *self._waiting, *self._inbox]
                self._running, self._inbox = [], deque()
                self._waiting.clear()
                calls = list(self._calls)
                self._calls.clear()
            for seq in pending:
                self._release(seq)
                seq.sink.fail(EngineStoppedError(f"the generation engine stopped: {reason}"))
            for _, future in calls:
                future.set_exception(EngineStoppedError("the generation engine stopped"))

    def _run_calls(self) -> None:
        while True:
            with self._lock:
                if not self._calls:
                    return
                fn, future = self._calls.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                    future.set_exception(exc)

    def _take_inbox(self) -> None:
        with self._lock:
            while self._inbox:
                self._waiting.append(self._inbox.popleft())

    def _drop_finished_early(self) -> None:
        """Cancelled requests leave; requests past their deadline fail with a timeout."""
        now = time.monotonic()
        for queue in (self._running, self._waiting):
            for seq in [s for s in queue if s.cancelled or (s.deadline is not None and now > s.deadline)]:
                queue.remove(seq)
                self._release(seq)
                if seq.cancelled:
                    self.stats.cancelled += 1
                else:
                    self.stats.timed_out += 1
                    seq.sink.fail(GenerationTimeoutError(seq.timeout_s or 0.0, len(seq.generated)))

    def _admit(self) -> None:
        """Move waiting requests into the batch, oldest first, while rows and KV memory last."""
        while self._waiting and len(self._running) < self.settings.max_batch_size:
            seq = self._waiting[0]
            need = seq.reserved_tokens * self.token_bytes
            if self.stats.kv_used_bytes + need > self.kv_budget:
                return  # it waits for running sequences to finish (it fits alone: checked at submit)
            self._waiting.popleft()
            try:
                if seq.adapter is not None:
                    self.host.load(seq.adapter)  # normally loaded already; after an early unload, load again
            except BaseException as exc:  # noqa: BLE001 - an adapter that cannot load fails only its request
                self.stats.failed += 1
                seq.done = True
                seq.sink.fail(exc)
                continue
            seq.kv = SequenceKV(self.num_layers, seq.reserved_tokens)
            seq.reserved_bytes = need
            self.stats.kv_used_bytes += need
            seq.sampler = RowSampler(seq.params, self.device)
            seq.text = TextAssembler(self.tokenizer, seq.params.stop)
            seq.admitted_at = time.monotonic()
            self._running.append(seq)

    def _unload_unwanted(self) -> None:
        with self._lock:
            unwanted = set(self._unwanted)
        if not unwanted:
            return
        in_use = {s.adapter for s in (*self._running, *self._waiting, *self._inbox)}
        for name in unwanted - in_use:
            self.host.unload(name)
            self.lora_rows.forget()
            self.prefix_cache.drop_adapter(name)
            with self._lock:
                self._unwanted.discard(name)

    def _release(self, seq: Sequence) -> None:
        seq.done = True
        if seq.kv is not None:
            seq.kv.release()
            seq.kv = None
            self.stats.kv_used_bytes -= seq.reserved_bytes
            seq.reserved_bytes = 0

    # -- one step -----------------------------------------------------------------------
    def _plan(self) -> list[tuple[Sequence, int]]:
        """(sequence, tokens this step): every decoding row one token, prompt chunks in the room left."""
        plan = [(s, 1) for s in self._running if s.prefilled]
        room = self.settings.max_step_tokens - len(plan)
        for seq in self._running:
            if room <= 0:
                break
            if not seq.prefilled:
                if not seq.looked_up:  # as late as possible: a burst of RAG prompts admitted together
                    seq.looked_up = True  # reuses what the first of them computed in the steps before
                    seq.computed = self.prefix_cache.restore(seq.adapter, seq.prompt, seq.kv)
                take = min(len(seq.prompt) - seq.computed, room)
                plan.append((seq, take))
                room -= take
        return plan

    def _step(self) -> None:
        started = time.perf_counter()
        plan = self._plan()
        tokens: list[int] = []
        positions: list[int] = []
        adapters: list[str | None] = []
        segments: list[Segment] = []
        logit_rows: list[int] = []
        sampled: list[Sequence] = []
        for seq, count in plan:
            start = len(tokens)
            past = seq.kv.length
            if seq.prefilled:
                tokens.append(seq.generated[-1])
            else:
                tokens.extend(seq.prompt[seq.computed : seq.computed + count])
            positions.extend(range(past, past + count))
            adapters.extend([seq.adapter] * count)
            segments.append(Segment(seq.kv, start, start + count, past))
            if seq.prefilled or seq.computed + count == len(seq.prompt):
                logit_rows.append(len(tokens) - 1)
                sampled.append(seq)
        try:
            logits = self._forward(tokens, positions, adapters, StepLayout(tuple(segments)), logit_rows)
            for seq, count in plan:
                seq.kv.length += count
                if not seq.prefilled:
                    self.prefix_cache.store(seq.adapter, seq.prompt, seq.kv, since=seq.computed)  # the blocks it completed
                    seq.computed += count
                    self.stats.prompt_tokens += count
            for seq, token in zip(sampled, next_tokens(logits, [s.sampler for s in sampled])):
                self._accept(seq, token)
        except Exception as exc:  # noqa: BLE001 - fail the rows of this step, keep serving the others
            log.exception("a generation step failed; failing its %d requests", len(plan))
            for seq, _ in plan:
                if seq in self._running:
                    self._running.remove(seq)
                    self._release(seq)
                    self.stats.failed += 1
                    seq.sink.fail(exc)
            return
        self.stats.steps += 1
        self.stats.step_rows += len(plan)
        self.stats.last_step_rows = len(tokens)
        self.stats.last_step_s = time.perf_counter() - started
        self.stats.busy_s += self.stats.last_step_s

    def _forward(
        self,
        tokens: list[int],
        positions: list[int],
        adapters: list[str | None],
        layout: StepLayout,
        logit_rows: list[int],
    ) -> torch.Tensor:
        model = self.host.model
        base = self._base_model()
        use_ragged_attention(base)  # no-op unless other code switched the model's attention since the last step
        input_ids = torch.tensor(tokens, dtype=torch.long, device=self.device).view(-1, 1)
        position_ids = torch.tensor(positions, dtype=torch.long, device=self.device).view(-1, 1)
        with rows_use_adapters(model, adapters, self.lora_rows):
            hidden = base.get_decoder()(
                input_ids=input_ids, position_ids=position_ids, use_cache=False, expert_step=layout
            ).last_hidden_state
            rows = torch.tensor(logit_rows, dtype=torch.long, device=self.device)
            logits = base.get_output_embeddings()(hidden[rows, 0])
        return logits.float()

    def _accept(self, seq: Sequence, token: int) -> None:
        """Take a sequence's new token: end it on an end token, a stop string or its length limit."""
        now = time.monotonic()
        if seq.first_token_at is None:
            seq.first_token_at = now
        if token in self.eos:
            self._finish(seq, "stop")
            return
        seq.generated.append(token)
        self.stats.generated_tokens += 1
        piece = seq.text.add(token)
        if piece:
            seq.sink.piece(piece)
        if seq.text.stopped:
            self._finish(seq, "stop")
        elif len(seq.generated) >= seq.params.max_new_tokens:
            self._finish(seq, "length")

    def _finish(self, seq: Sequence, reason: str) -> None:
        self._running.remove(seq)
        self._release(seq)
        tail = seq.text.tail()
        if tail:
            seq.sink.piece(tail)
        self.stats.finished += 1
        self._finish_times.append(time.monotonic())
        queued = (seq.admitted_at or seq.arrived) - seq.arrived
        seq.sink.finish(Completion(seq.text.final(), len(seq.prompt), len(seq.generated), reason, queued))  # type: ignore[arg-type]

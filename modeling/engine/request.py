"""One request inside the engine, and how its results reach the caller.

The engine thread produces events (text pieces, the final ``Completion``, or an error); a
sink carries them to whoever waits. ``AsyncioSink`` hands them to an asyncio queue of the
caller's event loop (thread-safe), so a waiting request costs no thread.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Protocol

from modeling.engine.kv import SequenceKV
from modeling.engine.sampling import RowSampler
from modeling.engine.text import TextAssembler
from modeling.generation import Completion, GenerationParams

_ids = itertools.count(1)


class EventSink(Protocol):
    def piece(self, text: str) -> None: ...
    def finish(self, completion: Completion) -> None: ...
    def fail(self, error: BaseException) -> None: ...


class AsyncioSink:
    """Events into an ``asyncio.Queue`` owned by ``loop``; pieces only if the caller streams."""

    def __init__(self, loop: asyncio.AbstractEventLoop, streaming: bool) -> None:
        self.loop = loop
        self.streaming = streaming
        self.queue: asyncio.Queue = asyncio.Queue()

    def _put(self, item: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass

    def piece(self, text: str) -> None:
        if self.streaming:
            self._put(text)

    def finish(self, completion: Completion) -> None:
        self._put(completion)

    def fail(self, error: BaseException) -> None:
        self._put(error)


@dataclass(eq=False)
class Sequence:
    """A request's state from submission to its last token."""

    prompt: list[int]
    params: GenerationParams
    adapter: str | None
    sink: EventSink
    timeout_s: float | None
    id: int = field(default_factory=lambda: next(_ids))
    arrived: float = field(default_factory=time.monotonic)
    kv: SequenceKV | None = None  # set when admitted to the batch
    sampler: RowSampler | None = None
    text: TextAssembler | None = None
    computed: int = 0  # prompt tokens whose keys/values are cached
    looked_up: bool = False  # the prefix cache was asked for this prompt (just before its first chunk)
    generated: list[int] = field(default_factory=list)
    reserved_bytes: int = 0
    cancelled: bool = False  # set from the caller's thread; the engine drops the row at its next step
    first_token_at: float | None = None
    admitted_at: float | None = None  # when it joined the running batch
    done: bool = False

    @property
    def deadline(self) -> float | None:
        return None if self.timeout_s is None else self.arrived + self.timeout_s

    @property
    def prefilled(self) -> bool:
        return self.computed >= len(self.prompt)

    @property
    def reserved_tokens(self) -> int:
        return len(self.prompt) + self.params.max_new_tokens

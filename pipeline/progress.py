"""Printing for the pipeline: every line flushed and prefixed, stages timed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(text: str) -> None:
    for line in text.splitlines() or [""]:
        print(f"  {line}", flush=True)


@contextmanager
def stage(number: int, title: str, timings: dict[str, float]) -> Iterator[None]:
    """Print a stage header, run it, record and print how long it took."""
    print(f"\n[{number}/5] {title}", flush=True)
    started = time.perf_counter()
    yield
    timings[title] = round(time.perf_counter() - started, 1)
    print(f"  done in {timings[title]:.1f}s", flush=True)

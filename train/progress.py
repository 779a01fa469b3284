"""The progress line a run prints (step, loss, eval loss, learning rate, tokens/s, ETA)."""

from __future__ import annotations

import os
import re
import sys

# Every line a worker writes through :func:`say` starts with "[train] ".
_PROGRESS_PATTERN = r"^\[train\] "


def say(line: str) -> None:
    """Print one line from a worker exactly once.

    Ray Train patches ``print`` in workers to go both to its logger and the captured
    stdout, which shows every line twice on the driver; writing to the real stdout does not.
    """
    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


def keep_progress_lines_whole() -> None:
    """Stop the Ray driver from folding our progress lines into ``[repeated Nx across cluster]``.

    Ray deduplicates worker lines that look alike once digits are ignored when they come
    from different processes within a few seconds, and it only forgets a line when a later
    batch arrives. Every progress line looks alike, and a new worker process (the next run
    of the pipeline, a replaced worker after a failure) would have its lines folded into
    the previous process's, so the user loses the progress of the run that is going on.
    Ray's own switch is ``RAY_DEDUP_LOGS_ALLOW_REGEX``, read when Ray is first imported;
    when Ray is already imported the driver's deduplicators are extended the same way.
    """
    pattern = _PROGRESS_PATTERN
    user = os.environ.get("RAY_DEDUP_LOGS_ALLOW_REGEX")
    if user and pattern not in user:
        pattern = f"(?:{user})|(?:{_PROGRESS_PATTERN})"
    os.environ["RAY_DEDUP_LOGS_ALLOW_REGEX"] = pattern
    ray_logging = sys.modules.get("ray._private.ray_logging")
    for name in ("stdout_deduplicator", "stderr_deduplicator"):
        deduplicator = getattr(ray_logging, name, None)
        if deduplicator is None or not hasattr(deduplicator, "allow_re"):
            continue  # Ray not imported yet (the variable above applies), or its internals moved
        current = deduplicator.allow_re.pattern if deduplicator.allow_re is not None else None
        if current is None or _PROGRESS_PATTERN not in current:
            combined = _PROGRESS_PATTERN if current is None else f"(?:{current})|(?:{_PROGRESS_PATTERN})"
            deduplicator.allow_re = re.compile(combined)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(
    *,
    step: int,
    total_steps: int,
    epoch: float,
    loss: float,
    eval_loss: float | None,
    lr: float,
    tokens_per_s: float,
    eta_s: float,
) -> str:
    eval_part = f" | eval {eval_loss:.4f}" if eval_loss is not None else ""
    return (
        f"[train] step {step}/{total_steps} (epoch {epoch:.2f}) | loss {loss:.4f}{eval_part} | lr {lr:.2e} "
        f"| {tokens_per_s:,.0f} tok/s | ETA {format_duration(eta_s)}"
    )

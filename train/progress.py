"""The progress line a run prints (step, loss, eval loss, learning rate, tokens/s, ETA)."""

from __future__ import annotations

import sys

from cluster.private_ray import STATE_API_WARNING, extend_driver_log_filter

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
    """
    extend_driver_log_filter("allow", _PROGRESS_PATTERN)


def hide_state_api_warnings() -> None:
    """Drop Ray Train's "State API may be temporarily unavailable" lines (see cluster.private_ray)."""
    extend_driver_log_filter("skip", STATE_API_WARNING)


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

"""The progress line a run prints (step, loss, eval loss, learning rate, tokens/s, ETA)."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """Print one line from a worker exactly once.

    Ray Train patches ``print`` in workers to go both to its logger and the captured
    stdout, which shows every line twice on the driver; writing to the real stdout does not.
    """
    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


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

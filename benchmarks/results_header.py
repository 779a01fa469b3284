"""The opening every benchmark's RESULTS file shares: the command that made it and the machine."""

from __future__ import annotations

import os
import platform


def produced_by(command: str) -> list[str]:
    """The lines saying how to reproduce the file, from the repository root."""
    return ["Produced by (from the repository root, nothing else of ours running):", "", "```bash", command, "```", ""]


def loads(load: tuple[float, ...]) -> str:
    """A load average as ``1.2/1.3/1.0``."""
    return "/".join(f"{x:.1f}" for x in load)


def machine_line() -> str:
    """``- Machine: N CPU cores (arch), no GPU; load average `` (the caller adds the figures)."""
    return f"- Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU; load average "

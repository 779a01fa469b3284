"""Where the model layer keeps what it builds (the offline default model, exports).

One environment variable moves everything: ``EXPERT_CACHE_DIR``. Tests and the Makefile
point it inside the repository so nothing leaks into the user's home; on a Ray cluster the
default (``~/.cache/phi3-expert``) is shared by every job on a node, so the offline model
is built once per node rather than once per job.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EXPERT_CACHE_DIR"


def cache_dir() -> Path:
    """The root folder for locally built artefacts (created on demand)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "phi3-expert"
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path

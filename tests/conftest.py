"""Suite-wide settings: offline, every cache inside the repository, nothing in the user's home."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("EXPERT_CACHE_DIR", str(REPO / ".cache"))
os.environ.setdefault("HF_HOME", str(REPO / ".cache" / "huggingface"))
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Ray 2.60 turns token auth on for local clusters and writes the token to ~/.ray unless one exists;
# give it one inside the repository instead, so tests leave nothing in the home folder.
_RAY_TOKEN = Path(os.environ.setdefault("RAY_AUTH_TOKEN_PATH", str(REPO / ".cache" / "ray" / "auth_token")))
if not _RAY_TOKEN.is_file():
    _RAY_TOKEN.parent.mkdir(parents=True, exist_ok=True)
    _RAY_TOKEN.write_text(secrets.token_hex(32))

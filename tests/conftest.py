"""Suite-wide settings: offline, every cache inside the repository, nothing in the user's home."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def codeword_adapters(tmp_path_factory) -> Path:
    """A registry folder with the codeword adapters ``alpha`` (ALPHA-7) and ``bravo`` (BRAVO-3),
    trained once per session (~40 s on 2 cores): the engine and the serving tests both need them.
    Use ``codeword_registry_copy``, so a test that changes its registry changes no other's."""
    from modeling import AdapterRegistry
    from tests.serve.adapters import train_codeword_adapter

    registry = AdapterRegistry(tmp_path_factory.mktemp("codeword-adapters"))
    train_codeword_adapter(registry, "alpha", "ALPHA-7")
    train_codeword_adapter(registry, "bravo", "BRAVO-3")
    return registry.root


def codeword_registry_copy(trained: Path, folder: Path):
    """An ``AdapterRegistry`` in ``folder`` holding a copy of the session's codeword adapters."""
    from modeling import AdapterRegistry

    shutil.copytree(trained, folder, dirs_exist_ok=True)
    return AdapterRegistry(folder)

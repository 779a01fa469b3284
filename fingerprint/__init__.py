"""One way to answer "did the inputs of this artefact change?": a sha256 fingerprint.

Caches across the project (ingested document versions, the training data fingerprint an
adapter records, the pipeline's built training files, a reusable evaluation) all hash the
same kinds of inputs: settings, file contents, and the names of files inside a folder.
Names are always hashed relative to a root the caller names (never as absolute paths), so
moving or re-cloning the checkout keeps every cache valid; content is streamed, so large
documents are not read into memory at once. Depends on the standard library only, so every
package may import it.

    fp = Fingerprint().value(settings.model_dump()).files(documents, root=company_dir)
    str(fp)  # "sha256:..."
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

BLOCK = 1 << 20


def file_digest(path: str | Path) -> bytes:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.digest()


def relative_name(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` in POSIX form (with ``..`` when outside it): stable when both move."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def tree_files(folder: str | Path, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Every file under ``folder`` (sorted; ``__pycache__`` skipped), optionally only these suffixes."""
    wanted = set(suffixes) if suffixes is not None else None
    return sorted(
        p for p in Path(folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and (wanted is None or p.suffix in wanted)
    )


class Fingerprint:
    """An incremental sha256 over settings, texts and files; ``str()`` gives ``sha256:<hex>``."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def text(self, value: str) -> "Fingerprint":
        self._digest.update(value.encode())
        return self

    def value(self, value: object) -> "Fingerprint":
        """Any JSON-able value (dicts in key order, so equal settings hash equally)."""
        return self.text(json.dumps(value, sort_keys=True, default=str))

    def content(self, path: str | Path) -> "Fingerprint":
        """The file's bytes themselves, streamed into the digest."""
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(BLOCK), b""):
                self._digest.update(block)
        return self

    def file(self, path: str | Path, root: str | Path | None = None) -> "Fingerprint":
        """A file's content digest, preceded by its name relative to ``root`` when one is given."""
        if root is not None:
            self._digest.update(relative_name(path, root).encode() + b"\0")
        self._digest.update(file_digest(path))
        return self

    def files(self, paths: Iterable[str | Path], root: str | Path | None = None) -> "Fingerprint":
        """Several files: sorted by name when a ``root`` names them, else in the order given."""
        items = sorted(paths, key=lambda p: relative_name(p, root)) if root is not None else list(paths)
        for path in items:
            self.file(path, root)
        return self

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def __str__(self) -> str:
        return "sha256:" + self.hexdigest()

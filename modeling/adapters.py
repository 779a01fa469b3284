"""Saved LoRA adapters: a registry folder of named adapters, loading them for inference,
switching between them per request, and merging one into the base model for export.

Adapters are safetensors only: a pickled ``adapter_model.bin`` can execute code when
loaded, and serving loads adapters named by HTTP clients. Names are plain registry names
(no slashes, no ``..``), so a request can never reach a path outside the registry.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peft import PeftModel
from safetensors import safe_open
from transformers import PreTrainedModel

from modeling import storage
from modeling.adapter_mirror import RemoteMirror
from modeling.paths import cache_dir
from modeling.errors import (
    AdapterMismatchError,
    AdapterNotFoundError,
    InvalidAdapterNameError,
    UnsafeAdapterFormatError,
)

ADAPTER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
METADATA_FILE = "metadata.json"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def check_adapter_name(name: str) -> str:
    """Return ``name`` if it is a plain registry name, else raise ``InvalidAdapterNameError``."""
    if not isinstance(name, str) or not ADAPTER_NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidAdapterNameError(
            f"invalid adapter name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (no paths)"
        )
    return name


def check_adapter_folder(folder: Path) -> Path:
    """Refuse folders without safetensors weights; say how to convert pickled ones."""
    if not (folder / ADAPTER_CONFIG).is_file():
        raise AdapterNotFoundError(folder.name, [], str(folder.parent))
    if not (folder / ADAPTER_WEIGHTS).is_file():
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        found = f"found {', '.join(pickled)}" if pickled else "found no weights"
        raise UnsafeAdapterFormatError(
            f"adapter at {folder} has no {ADAPTER_WEIGHTS} ({found}); only safetensors adapters are "
            "loaded. Re-save it with `model.save_pretrained(path, safe_serialization=True)`."
        )
    return folder


class AdapterRegistry:
    """Named adapters: ``<root>/<name>/{adapter_config.json, adapter_model.safetensors, metadata.json}``.

    ``root`` is a folder, or an object-store URI (``s3://bucket/adapters``, ``gs://...``): then
    adapters are published to the bucket and read through a local mirror under the model
    layer's cache (``modeling/adapter_mirror.py``: fetched once, checksummed, re-fetched when the
    bucket's copy changes, checked at most every ``refresh_s``).
    """

    def __init__(self, root: str | Path, *, refresh_s: float = 30.0) -> None:
        self.mirror: RemoteMirror | None = None
        if storage.is_uri(str(root)):
            uri = str(root).rstrip("/")
            self.root = (cache_dir() / "adapter-mirror" / uri.replace("://", "/")).resolve()
            self.mirror = RemoteMirror(uri, self.root, refresh_s)
        else:
            self.root = Path(root).expanduser().resolve()

    @property
    def location(self) -> str:
        """Where the adapters live: the URI of a remote registry, else the folder."""
        return self.mirror.uri if self.mirror else str(self.root)

    def names(self) -> list[str]:
        if self.mirror:
            return self.mirror.names(lambda n: bool(ADAPTER_NAME_PATTERN.fullmatch(n)))
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / ADAPTER_CONFIG).is_file()
            and ADAPTER_NAME_PATTERN.fullmatch(p.name)
        )

    def path(self, name: str) -> Path:
        """The folder of adapter ``name``, checked to exist, be inside the registry and be safetensors."""
        check_adapter_name(name)
        if self.mirror:
            self.mirror.sync(name, self.names)
        folder = (self.root / name).resolve()
        if folder.parent != self.root or not (folder / ADAPTER_CONFIG).is_file():
            raise AdapterNotFoundError(name, self.names(), self.location)
        return check_adapter_folder(folder)

    def version(self, name: str) -> str | None:
        """The published version (manifest digest) of a remote adapter's local copy; None for a folder registry."""
        return self.mirror.version(name) if self.mirror else None

    def metadata(self, name: str) -> dict:
        file = self.path(name) / METADATA_FILE
        return json.loads(file.read_text()) if file.is_file() else {}

    def save(self, model: PeftModel, name: str, metadata: dict | None = None, *, overwrite: bool = False) -> Path:
        """Write the model's active adapter under ``name`` atomically (temp folder, then rename)."""
        staging = self._staging(name, overwrite)
        model.save_pretrained(staging, safe_serialization=True)
        nested = staging / model.active_adapter  # peft nests non-"default" adapter names
        if not (staging / ADAPTER_CONFIG).is_file() and (nested / ADAPTER_CONFIG).is_file():
            for item in nested.iterdir():
                item.rename(staging / item.name)
            nested.rmdir()
        return self._commit(staging, name, metadata, overwrite)

    def add_folder(
        self, folder: str | Path, name: str, metadata: dict | None = None, *, overwrite: bool = False
    ) -> Path:
        """Copy an adapter folder saved elsewhere (e.g. by a training worker) in under ``name``.

        Every file of ``folder`` is copied (a loss curve, say); it must hold a safetensors
        adapter. Atomic like :meth:`save`.
        """
        source = check_adapter_folder(Path(folder))
        staging = self._staging(name, overwrite)
        for item in source.iterdir():
            if item.is_file() and item.name != METADATA_FILE:
                shutil.copy2(item, staging / item.name)
        return self._commit(staging, name, metadata, overwrite)

    def _staging(self, name: str, overwrite: bool) -> Path:
        check_adapter_name(name)
        if not self.mirror and (self.root / name).exists() and not overwrite:
            raise FileExistsError(f"adapter {name!r} already exists in {self.root}; pass overwrite=True to replace it")
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))

    def _commit(self, staging: Path, name: str, metadata: dict | None, overwrite: bool) -> Path:
        """Local: rename into place. Remote: publish to the bucket (manifest last), then mirror."""
        (staging / METADATA_FILE).write_text(json.dumps(metadata or {}, indent=2, sort_keys=True, default=str))
        if self.mirror:
            try:
                self.mirror.publish(staging, name, overwrite=overwrite)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return self.path(name)
        target = self.root / name
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return target


def check_adapter_fits(model: PreTrainedModel | PeftModel, folder: Path) -> None:
    """Raise ``AdapterMismatchError`` unless every LoRA matrix in ``folder`` fits a layer of ``model``.

    ``lora_A`` is (r, in_features) and ``lora_B`` (out_features, r) of the layer it adapts;
    only tensor headers are read.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    modules = dict(base.named_modules())
    with safe_open(str(folder / ADAPTER_WEIGHTS), framework="pt") as weights:
        for key in weights.keys():
            module_path, matrix = _lora_target(key)
            if module_path is None:
                continue
            module = modules.get(module_path)
            if module is None or not hasattr(module, "in_features"):
                raise AdapterMismatchError(
                    f"adapter in {folder} adapts layer {module_path!r}, which this base model does not have"
                )
            shape = tuple(weights.get_slice(key).get_shape())
            dim, expected = (shape[1], module.in_features) if matrix == "lora_A" else (shape[0], module.out_features)
            if dim != expected:
                raise AdapterMismatchError(
                    f"adapter in {folder} does not fit this base model: {key} has shape {list(shape)}, but layer "
                    f"{module_path!r} has {expected} {'inputs' if matrix == 'lora_A' else 'outputs'}"
                )


def _lora_target(key: str) -> tuple[str | None, str]:
    """``base_model.model.<path>.lora_A.weight`` -> (``<path>``, ``lora_A``); (None, "") for other tensors."""
    for matrix in ("lora_A", "lora_B"):
        marker = f".{matrix}."
        if marker in key and key.startswith("base_model.model."):
            return key[len("base_model.model."):key.index(marker)], matrix
    return None, ""


class AdapterHost:
    """A base model plus any number of loaded adapters, one of which (or none) is active.

    Serving keeps one host per replica and loads/unloads adapters as requests name them
    (Ray Serve's multiplexing decides which stay); ``using(name)`` makes one active for the
    duration of a forward pass or ``generate`` call, ``using(None)`` runs the bare base.
    """

    def __init__(self, base_model: PreTrainedModel, registry: AdapterRegistry) -> None:
        self.registry = registry
        self.model: PreTrainedModel | PeftModel = base_model

    @property
    def loaded(self) -> list[str]:
        return sorted(self.model.peft_config) if isinstance(self.model, PeftModel) else []

    def load(self, name: str) -> None:
        if name in self.loaded:
            return
        folder = self.registry.path(name)
        # Checked before peft touches the model: a failed load would leave LoRA layers or a
        # half-registered adapter behind, and the next request would use them.
        check_adapter_fits(self.model, folder)
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name, is_trainable=False)
        self.model.eval()

    def unload(self, name: str) -> None:
        if name in self.loaded:
            if len(self.loaded) == 1:
                self.model = self.model.unload()  # back to the plain base model, weights untouched
            else:
                if self.model.active_adapter == name:
                    self.model.set_adapter(next(n for n in self.loaded if n != name))
                self.model.delete_adapter(name)

    @contextmanager
    def using(self, name: str | None) -> Iterator[PreTrainedModel | PeftModel]:
        if name is None:
            if isinstance(self.model, PeftModel):
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model
            return
        self.load(name)
        self.model.set_adapter(name)
        self.model.base_model.enable_adapter_layers()  # the serving engine switches them off while it batches
        yield self.model

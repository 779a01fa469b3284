"""An adapter registry in object storage (``s3://bucket/adapters``), mirrored into a local cache.

Every node of a cluster reads adapters from the same bucket; each keeps a local copy, fetched
once and reused until the bucket's copy changes:

* Publishing uploads the adapter's files, then ``manifest.json`` (every file's SHA-256) last,
  and removes the old manifest first: an adapter whose upload is unfinished or was interrupted
  has no manifest, and readers neither list nor load it.
* Reading compares the bucket's manifest with the local copy's (at most every ``refresh_s``
  per adapter), downloads into a staging folder when they differ, verifies every checksum and
  only then swaps the staging folder in, under a file lock (several replicas share a node's
  cache). A checksum that does not match is an error naming the file; the old copy stays.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from modeling import storage
from modeling.errors import AdapterIntegrityError, AdapterNotFoundError, RegistryUnavailableError

MANIFEST_FILE = "manifest.json"


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file directly in ``folder`` (the manifest itself excluded)."""
    out = {}
    for item in sorted(folder.iterdir()):
        if item.is_file() and item.name != MANIFEST_FILE:
            out[item.name] = hashlib.sha256(item.read_bytes()).hexdigest()
    return out


def manifest_of(folder: Path) -> dict:
    files = file_digests(folder)
    return {"files": files, "version": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]}


class RemoteMirror:
    def __init__(self, uri: str, cache: Path, refresh_s: float = 30.0) -> None:
        self.uri = uri.rstrip("/")
        self.cache = cache
        self.refresh_s = refresh_s
        self._synced: dict[str, float] = {}  # adapter -> when its manifest was last compared
        self._listing: tuple[float, list[str]] = (float("-inf"), [])
        self._bucket_checked = False

    def names(self, valid) -> list[str]:
        """Adapters in the bucket that have a manifest (i.e. were published completely)."""
        listed_at, names = self._listing
        if time.monotonic() - listed_at >= self.refresh_s:
            with self._readable():
                names = sorted(n for n in storage.subfolders(self.uri)
                               if valid(n) and storage.exists(storage.join(self.uri, n, MANIFEST_FILE)))
            self._listing = (time.monotonic(), names)
        return names

    def sync(self, name: str, known) -> Path:
        """The local copy of ``name``, fetched or refreshed from the bucket when needed."""
        local = self.cache / name
        if time.monotonic() - self._synced.get(name, float("-inf")) < self.refresh_s and local.is_dir():
            return local
        remote = storage.join(self.uri, name)
        with self._readable():
            if not storage.exists(storage.join(remote, MANIFEST_FILE)):
                self._listing = (float("-inf"), [])
                raise AdapterNotFoundError(name, known(), self.uri)
            manifest = json.loads(storage.read_text(storage.join(remote, MANIFEST_FILE)))
            with self._locked(name):
                if self._local_manifest(local) != manifest:
                    self._fetch(name, remote, manifest)
        self._synced[name] = time.monotonic()
        return local

    def version(self, name: str) -> str | None:
        manifest = self._local_manifest(self.cache / name)
        return manifest.get("version") if manifest else None

    def publish(self, folder: Path, name: str, *, overwrite: bool) -> None:
        remote = storage.join(self.uri, name)
        if storage.exists(storage.join(remote, MANIFEST_FILE)) and not overwrite:
            raise FileExistsError(f"adapter {name!r} already exists in {self.uri}; pass overwrite=True to replace it")
        manifest = manifest_of(folder)
        with tempfile.TemporaryDirectory() as tmp:
            files = Path(tmp) / name
            shutil.copytree(folder, files, ignore=shutil.ignore_patterns(MANIFEST_FILE))
            storage.delete_folder(remote)  # the old manifest goes first: readers stop trusting the old files
            storage.upload_folder(files, remote)
        storage.write_text(storage.join(remote, MANIFEST_FILE), json.dumps(manifest, indent=2))
        self._listing = (float("-inf"), [])
        self._synced.pop(name, None)

    # -- internals -----------------------------------------------------------------------
    @staticmethod
    def _local_manifest(local: Path) -> dict | None:
        file = local / MANIFEST_FILE
        return json.loads(file.read_text()) if file.is_file() else None

    def _fetch(self, name: str, remote: str, manifest: dict) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.cache))
        try:
            storage.download_folder(remote, staging)
            got = file_digests(staging)
            for file, digest in manifest["files"].items():
                if got.get(file) != digest:
                    raise AdapterIntegrityError(
                        f"adapter {name!r} in {self.uri}: {file} does not match its checksum in {MANIFEST_FILE} "
                        f"({'missing' if file not in got else 'changed'}); publish the adapter again"
                    )
            local = self.cache / name
            if local.exists():
                shutil.rmtree(local)
            staging.rename(local)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @contextmanager
    def _readable(self):
        """Storage errors (missing bucket, unreachable endpoint, credentials) as one typed error."""
        try:
            if not self._bucket_checked:
                missing = storage.bucket_missing(self.uri)
                if missing:
                    raise RegistryUnavailableError(
                        f"the adapter registry {self.uri} cannot be read: bucket {missing!r} does not exist; create it "
                        "or point adapter_registry / output.registry at an existing bucket"
                    )
                self._bucket_checked = True
            yield
        except OSError as exc:
            raise RegistryUnavailableError(
                f"the adapter registry {self.uri} cannot be read ({exc}); check that the bucket exists and that "
                "this process can reach it (AWS_ENDPOINT_URL, credentials)"
            ) from None

    @contextmanager
    def _locked(self, name: str):
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / f".{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

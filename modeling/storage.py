"""Local folders and ``s3://`` / ``gs://`` URIs behind one small interface.

Ray Train persists checkpoints through pyarrow filesystems; the run folder's bookkeeping and
the adapter registry (``modeling.adapters``) go through the same mechanism, so a cluster keeps
both its checkpoints and its adapters in object storage. pyarrow reads the usual credentials
and honours ``AWS_ENDPOINT_URL`` (an S3-compatible server instead of AWS).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in location


def absolute(location: str) -> str:
    """Local paths become absolute (Ray requires it); URIs pass through."""
    return location.rstrip("/") if is_uri(location) else str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts]) if is_uri(location) else str(Path(location, *parts))


def _fs(location: str) -> tuple[pafs.FileSystem, str]:
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), absolute(location)


def exists(location: str) -> bool:
    fs, path = _fs(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def subfolders(location: str) -> list[str]:
    """Names of the folders directly inside ``location`` (empty if it does not exist)."""
    fs, path = _fs(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def write_text(location: str, text: str) -> None:
    fs, path = _fs(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(text.encode())


def read_text(location: str) -> str:
    fs, path = _fs(location)
    with fs.open_input_stream(path) as handle:
        return handle.read().decode()


def upload_folder(local: Path, location: str) -> None:
    """Copy a local folder to ``location``, replacing what was there."""
    fs, path = _fs(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_folder(location: str, local: Path) -> None:
    """Copy every file under ``location`` into the local folder ``local`` (created)."""
    fs, path = _fs(location)
    local.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


def delete_folder(location: str) -> None:
    fs, path = _fs(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def bucket_missing(location: str) -> str | None:
    """For an object-store URI whose bucket does not exist, the bucket's name; else None."""
    if not is_uri(location):
        return None
    fs, path = _fs(location)
    bucket = path.split("/", 1)[0]
    return bucket if fs.get_file_info(bucket).type == pafs.FileType.NotFound else None

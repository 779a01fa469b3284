"""Local folders and ``s3://`` / ``gs://`` URIs behind one small interface.

Ray Train persists checkpoints through pyarrow filesystems; the run folder's bookkeeping
and a remote adapter registry go through the same mechanism, so a cluster run can keep
both its checkpoints and its adapters in object storage.
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

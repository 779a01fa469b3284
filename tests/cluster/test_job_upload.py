"""What `ray job submit --working-dir .` ships to a cluster (README, "Running on a cluster").

The jobs themselves run on a real multi-node cluster in tests/cluster/test_cluster_flow.py.
"""

from __future__ import annotations

import zipfile

from tests.conftest import REPO


def test_working_dir_upload_leaves_out_venv_caches_and_data(tmp_path):
    """What `ray job submit --working-dir .` uploads, packed by the same Ray function with the
    same excludes (Ray's defaults such as .git/.venv, plus .gitignore, honoured by default)."""
    from ray._private.runtime_env.packaging import create_package
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    package = tmp_path / "pkg.zip"

    def pack(working_dir: str, excludes: list[str] | None = None, is_file: bool = False) -> None:
        create_package(working_dir, package, include_gitignore=True, excludes=excludes)

    upload_working_dir_if_needed({"working_dir": str(REPO)}, include_gitignore=True, upload_fn=pack)
    files = [name for name in zipfile.ZipFile(package).namelist() if not name.endswith("/")]
    assert {"train", "serve", "retrieval", "modeling", "pyproject.toml"} <= {f.split("/")[0] for f in files}
    assert (REPO / ".cache").is_dir() and (REPO / ".venv").is_dir(), "the excluded folders exist here"
    shipped = [f for f in files if f.split("/")[0] in {".venv", ".cache", "data", "runs", ".git"}]
    assert not shipped, shipped[:10]
    assert package.stat().st_size < 20 * 1024**2

"""The folders are the architecture: which package may import which (checked on the source, by AST).

``serve`` composes retrieval and the model layer and must not reach into ``train``; ``retrieval``
and ``train`` know nothing of serving or of the evaluation; ``qa`` (the QA file format) and
``modeling`` import none of the packages that use them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("modeling", "retrieval", "train", "serve", "evaluation", "pipeline", "qa")
FORBIDDEN = {
    "qa": {"modeling", "retrieval", "train", "serve", "evaluation", "pipeline"},
    "modeling": {"retrieval", "train", "serve", "evaluation", "pipeline"},
    "retrieval": {"train", "serve", "evaluation", "pipeline"},
    "train": {"serve", "evaluation", "pipeline"},
    "serve": {"train", "evaluation", "pipeline"},
    "evaluation": {"train", "pipeline"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level project packages each module of ``package`` imports: {module path: {package}}."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names & set(PACKAGES)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package):
    offending = {module: sorted(names & FORBIDDEN[package])
                 for module, names in imported_packages(package).items() if names & FORBIDDEN[package]}
    assert not offending, f"{package}/ imports packages of a layer above it: {offending}"

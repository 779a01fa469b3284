"""``python -m modeling`` as users run it (subprocesses, offline)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modeling", *args], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_ask_answers_with_the_offline_phi3(builtin_dir):
    result = run_cli("ask", "What is the capital of France?", "--max-new-tokens", "16")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout.split("A:", 1)[1]


def test_unknown_adapter_exits_2_listing_known(tmp_path, builtin_dir):
    result = run_cli("ask", "hi", "--adapter", "ghost", "--registry", str(tmp_path))
    assert result.returncode == 2
    assert "adapter 'ghost' not found" in result.stderr and "known adapters" in result.stderr


def test_empty_registry_listing(tmp_path):
    result = run_cli("adapters", "--registry", str(tmp_path))
    assert result.returncode == 0 and "no adapters" in result.stdout

"""YAML config: defaults that work, loud errors for typos, URI precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.config import DEFAULT_LITE_PATH, URI_ENV, MilvusConfig, RetrievalConfig, load_config
from retrieval.errors import ConfigError


def test_default_yaml_matches_model_defaults() -> None:
    assert load_config() == RetrievalConfig()


def test_typo_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("search:\n  top_kk: 3\n")
    with pytest.raises(ConfigError, match="top_kk"):
        load_config(path)


def test_missing_file_and_bad_override() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent.yaml")
    with pytest.raises(ConfigError, match="unknown config override 'milvus__url'"):
        RetrievalConfig().with_overrides(milvus__url="x")


def test_uri_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(URI_ENV, raising=False)
    assert MilvusConfig().resolved_uri() == str(DEFAULT_LITE_PATH)
    monkeypatch.setenv(URI_ENV, str(tmp_path / "env.db"))
    assert MilvusConfig().resolved_uri() == str(tmp_path / "env.db")
    assert MilvusConfig(uri="http://milvus:19530").resolved_uri() == "http://milvus:19530"


def test_a_collection_name_milvus_refuses_says_what_to_use_instead() -> None:
    with pytest.raises(ConfigError, match="collection name 'knowledge-drill' is not a Milvus collection name.*'knowledge_drill'"):
        RetrievalConfig().with_overrides(milvus__collection="knowledge-drill")
    assert RetrievalConfig().with_overrides(milvus__collection="knowledge_drill").milvus.collection == "knowledge_drill"

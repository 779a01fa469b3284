"""Publishing a checkpoint's adapter: local registry folders and storage URIs (pyarrow, as Ray uses)."""

from __future__ import annotations

import json

import pytest

from modeling import AdapterRegistry, LoraSettings, attach_lora, load_base_model
from train.checkpoints import ADAPTER_DIR, TrainerState, save_adapter
from train.publish import build_metadata, check_output_free, publish_adapter


@pytest.fixture()
def checkpoint(tiny_recipe, tmp_path):
    recipe = tiny_recipe()
    folder = tmp_path / "checkpoint"
    save_adapter(attach_lora(load_base_model(recipe.model), LoraSettings(r=4)), folder / ADAPTER_DIR)
    state = TrainerState(step=2, history=[{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}],
                         evals=[{"step": 0, "eval_loss": 3.1}, {"step": 2, "eval_loss": 2.7}])
    return recipe, folder, state


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "file-uri"])
def test_adapter_lands_in_the_registry_with_metadata_and_loss_curve(checkpoint, tmp_path, as_uri):
    recipe, folder, state = checkpoint
    root = tmp_path / "registry"
    location = f"file://{root}" if as_uri else str(root)
    recipe = recipe.model_copy(update={"output": recipe.output.model_copy(update={"registry": location})})
    metadata = build_metadata(recipe, "sha256:abc", {"examples": 3}, {"eval_loss_end": 2.7}, started_at=0.0)
    published = publish_adapter(folder, recipe, state, metadata)
    assert published.endswith("registry/toy")
    registry = AdapterRegistry(root)  # a URI registry holds the very same folder layout
    meta = registry.metadata("toy")
    assert meta["method"] == "lora" and meta["data"]["fingerprint"] == "sha256:abc" and meta["recipe"]["seed"] == 0
    assert (registry.path("toy") / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileExistsError, match="already exists.*output.overwrite=true"):
        check_output_free(recipe)
    again = recipe.model_copy(update={"output": recipe.output.model_copy(update={"overwrite": True})})
    check_output_free(again)
    publish_adapter(folder, again, state, {**metadata, "note": "second"})
    assert json.loads((registry.path("toy") / "metadata.json").read_text())["note"] == "second"

"""LoRA attach -> train -> save -> reload -> switch -> merge round trips, and adapter safety."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Phi3Config, Phi3ForCausalLM

from modeling import (
    PHI3_LORA_TARGETS,
    AdapterHost,
    AdapterMismatchError,
    AdapterNotFoundError,
    AdapterRegistry,
    InvalidAdapterNameError,
    LoraSettings,
    ModelLayerError,
    ModelSettings,
    UnsafeAdapterFormatError,
    attach_lora,
    load_base_model,
    merge_and_export,
)


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(batch).logits


def trained_adapter(settings: ModelSettings, batch, seed: int) -> PeftModel:
    """A LoRA adapter after a few real optimizer steps (so it differs from the base)."""
    torch.manual_seed(seed)
    model = attach_lora(load_base_model(settings), LoraSettings(r=4, alpha=8, dropout=0.0))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    model.train()
    for _ in range(3):
        loss = model(batch, labels=batch).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    return model.eval()


def test_default_targets_are_phi3_projections(tiny_settings):
    model = attach_lora(load_base_model(tiny_settings), LoraSettings())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for target in PHI3_LORA_TARGETS:
        assert any(f".{target}.lora_A" in n for n in trainable), target


def test_unknown_target_names_the_real_layers(tiny_settings):
    with pytest.raises(ModelLayerError, match=r"\['q_proj'\] are not in this model.*qkv_proj"):
        attach_lora(load_base_model(tiny_settings), LoraSettings(target_modules=("q_proj",)))


def test_save_reload_switch_and_merge_round_trip(tiny_settings, batch, tmp_path):
    registry = AdapterRegistry(tmp_path / "adapters")
    base_logits = logits(load_base_model(tiny_settings), batch)
    first, second = trained_adapter(tiny_settings, batch, 1), trained_adapter(tiny_settings, batch, 2)
    want_first, want_second = logits(first, batch), logits(second, batch)
    assert not torch.allclose(want_first, base_logits, atol=1e-3)
    registry.save(first, "alpha", {"base_model": tiny_settings.name_or_path, "method": "lora"})
    registry.save(second, "beta")
    assert registry.names() == ["alpha", "beta"]
    assert registry.metadata("alpha")["method"] == "lora"
    saved = load_file(registry.path("alpha") / "adapter_model.safetensors")
    assert saved and all("lora_" in k for k in saved)

    host = AdapterHost(load_base_model(tiny_settings), registry)
    with host.using("alpha") as m:
        torch.testing.assert_close(logits(m, batch), want_first, atol=1e-5, rtol=1e-5)
    with host.using("beta") as m:
        torch.testing.assert_close(logits(m, batch), want_second, atol=1e-5, rtol=1e-5)
    with host.using(None) as m:
        torch.testing.assert_close(logits(m, batch), base_logits, atol=1e-6, rtol=1e-6)
    with host.using("alpha") as m:  # switching back is exact too
        torch.testing.assert_close(logits(m, batch), want_first, atol=1e-5, rtol=1e-5)
    assert host.loaded == ["alpha", "beta"]
    host.unload("alpha")
    host.unload("beta")
    assert host.loaded == [] and not isinstance(host.model, PeftModel)
    torch.testing.assert_close(logits(host.model, batch), base_logits, atol=1e-6, rtol=1e-6)

    exported = merge_and_export(tiny_settings, registry, "alpha", tmp_path / "merged")
    merged = load_base_model(ModelSettings(name_or_path=str(exported)))
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, batch), want_first, atol=1e-4, rtol=1e-4)
    assert (exported / "tokenizer.json").is_file() and (exported / "EXPORT_INFO.json").is_file()


def test_unknown_adapter_lists_known_ones(tiny_settings, batch, tmp_path):
    registry = AdapterRegistry(tmp_path)
    registry.save(trained_adapter(tiny_settings, batch, 3), "maintenance-v1")
    with pytest.raises(AdapterNotFoundError, match=r"adapter 'nope' not found .*known adapters: maintenance-v1"):
        registry.path("nope")
    with pytest.raises(FileExistsError):
        registry.save(trained_adapter(tiny_settings, batch, 3), "maintenance-v1")


@pytest.mark.parametrize("name", ["../etc", "a/b", "/abs", "..", ".hidden", "", "x" * 200, "a\\b", "ok\n"])
def test_adapter_names_cannot_escape_the_registry(tmp_path, name):
    with pytest.raises(InvalidAdapterNameError):
        AdapterRegistry(tmp_path).path(name)


def test_pickled_adapters_are_refused(tiny_settings, batch, tmp_path):
    registry = AdapterRegistry(tmp_path)
    folder = registry.save(trained_adapter(tiny_settings, batch, 4), "legacy")
    weights = load_file(folder / "adapter_model.safetensors")
    (folder / "adapter_model.safetensors").unlink()
    torch.save(weights, folder / "adapter_model.bin")
    with pytest.raises(UnsafeAdapterFormatError, match="found adapter_model.bin.*safe_serialization=True"):
        registry.path("legacy")
    host = AdapterHost(load_base_model(tiny_settings), registry)
    with pytest.raises(UnsafeAdapterFormatError):
        with host.using("legacy"):
            pass


def test_adapter_for_another_base_is_refused_and_leaves_the_model_untouched(tiny_settings, tiny_phi3_dir, batch, tmp_path):
    """Checked before peft injects anything: the next request must not meet half-loaded LoRA layers."""
    config = Phi3Config.from_pretrained(tiny_phi3_dir)
    config.hidden_size, config.intermediate_size = 64, 128  # same architecture and vocabulary, narrower
    Phi3ForCausalLM(config).save_pretrained(tmp_path / "narrow-base")
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.save(trained_adapter(ModelSettings(name_or_path=str(tmp_path / "narrow-base")), batch, 5), "narrow-v1")
    registry.save(trained_adapter(tiny_settings, batch, 6), "good-v1")
    host = AdapterHost(load_base_model(tiny_settings), registry)
    plain = logits(host.model, batch)

    with pytest.raises(AdapterMismatchError, match=r"does not fit this base model: .*\.lora_[AB]\.weight has shape .* but layer 'model\.layers\..*' has \d+ (inputs|outputs)"):
        host.load("narrow-v1")
    assert host.loaded == [] and not isinstance(host.model, PeftModel)
    assert not any("lora" in name for name, _ in host.model.named_modules())
    torch.testing.assert_close(logits(host.model, batch), plain)

    with host.using("good-v1") as model:
        tuned = logits(model, batch)
    with pytest.raises(AdapterMismatchError):
        host.load("narrow-v1")
    assert host.loaded == ["good-v1"]
    with host.using("good-v1") as model:
        torch.testing.assert_close(logits(model, batch), tuned)

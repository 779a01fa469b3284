"""QLoRA (NF4 + double quant) and int8 load and train with correct LoRA gradients.

Reference: an fp32 model holding exactly the dequantised weights, with the same LoRA
weights. Its LoRA gradients are what the quantised model's must be.
"""

from __future__ import annotations

import pytest
import torch
from bitsandbytes.functional import _convert_weight_packed_for_cpu, dequantize_4bit, int8_vectorwise_dequant
from bitsandbytes.nn import Linear4bit, Linear8bitLt

from modeling import LoraSettings, attach_lora, load_base_model

LORA = LoraSettings(r=4, alpha=8, dropout=0.0)


def dequantized_weights(model) -> dict[str, torch.Tensor]:
    """name -> fp32 weight of every quantised Linear, as the quantised kernels see it."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, Linear4bit):
            out[name] = dequantize_4bit(module.weight.data, module.weight.quant_state).float()
        elif isinstance(module, Linear8bitLt):
            out[name] = int8_vectorwise_dequant(module.weight.data, module.weight.SCB).float()
    return out


def reference_for(quantized_peft, settings):
    """An fp32 LoRA model with the quantised model's dequantised base weights and its LoRA weights."""
    weights = dequantized_weights(quantized_peft.base_model.model)
    reference = attach_lora(load_base_model(settings), LORA)
    modules = dict(reference.base_model.model.named_modules())
    with torch.no_grad():
        for name, w in weights.items():
            modules[name].weight.copy_(w)
        q_params = dict(quantized_peft.named_parameters())
        for name, p in reference.named_parameters():
            if "lora_" in name:
                p.copy_(q_params[name].float())
    return reference


def lora_grads(model, batch) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad()
    model(batch, labels=batch).loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def randomise_lora_b(model) -> None:
    """peft initialises lora_B to zero, which would make every lora_A gradient zero."""
    torch.manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)


def assert_grads_match(got: dict, want: dict, min_cosine: float) -> None:
    assert got.keys() == want.keys() and got
    for name in want:
        g, w = got[name].flatten().float(), want[name].flatten().float()
        assert g.abs().sum() > 0, f"{name}: zero gradient"
        cosine = torch.nn.functional.cosine_similarity(g, w, dim=0).item()
        assert cosine > min_cosine, f"{name}: cosine {cosine:.5f}"


def qlora_model(settings, batch, *, eval_forward_first: bool, repacked: bool):
    base = load_base_model(settings.model_copy(update={"quantization": "nf4"}))
    assert any(isinstance(m, Linear4bit) for m in base.modules())
    assert base.model.layers[0].self_attn.qkv_proj.weight.quant_state.nested  # double quantisation
    if eval_forward_first:  # the call order that breaks bitsandbytes on AVX512-BF16 CPUs
        base.eval()
        with torch.no_grad():
            base(batch)
    if repacked:  # the state such a forward leaves behind, reproduced on any CPU
        for module in base.modules():
            # On AVX512-BF16 CPUs the eval forward above has already repacked: packing twice
            # would build a state bitsandbytes itself never produces.
            if isinstance(module, Linear4bit) and not getattr(module.weight.quant_state, "packing_format_for_cpu", False):
                module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu(
                    module.weight.data, module.weight.quant_state
                )
        assert all(m.weight.quant_state.packing_format_for_cpu for m in base.modules() if isinstance(m, Linear4bit))
    model = attach_lora(base, LORA)
    randomise_lora_b(model)
    return model


@pytest.mark.parametrize(
    ("eval_forward_first", "repacked"), [(False, False), (True, False), (True, True)], ids=["train-first", "eval-first", "cpu-repacked"]
)
def test_qlora_nf4_gradients_match_dequantised_fp32(tiny_settings, batch, eval_forward_first, repacked):
    model = qlora_model(tiny_settings, batch, eval_forward_first=eval_forward_first, repacked=repacked)
    assert all(not m.support_avx512bf16_for_cpu for m in model.modules() if isinstance(m, Linear4bit))
    reference = reference_for(model, tiny_settings)
    got, want = lora_grads(model, batch), lora_grads(reference, batch)
    assert_grads_match(got, want, min_cosine=0.9999)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=2e-3, atol=2e-5)
    # An eval pass in the middle of training (evaluation loop) must not break the next step.
    model.eval()
    with torch.no_grad():
        model(batch)
    assert_grads_match(lora_grads(model, batch), want, min_cosine=0.9999)


def test_int8_trains_a_step_with_correct_gradients(tiny_settings, batch):
    model = attach_lora(load_base_model(tiny_settings.model_copy(update={"quantization": "int8"})), LORA)
    assert any(isinstance(m, Linear8bitLt) for m in model.modules())
    randomise_lora_b(model)
    reference = reference_for(model, tiny_settings)
    # int8 also quantises activations, so gradients agree closely but not bit for bit.
    assert_grads_match(lora_grads(model, batch), lora_grads(reference, batch), min_cosine=0.99)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(batch, labels=batch).loss
    loss.backward()
    optim.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)

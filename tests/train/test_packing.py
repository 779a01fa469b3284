"""Packing: examples share a row without seeing each other; the batch plan and loss scaling are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeling import LoraSettings, ModelSettings, attach_lora, load_base_model
from train.batching import BatchPlan, eval_batches
from train.loop import token_loss_sum
from train.packing import collate, one_per_row, pack
from train.tokenization import IGNORE_INDEX, Example


def example(length: int, seed: int, vocab: int = 4000) -> Example:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=length).astype(np.int32)
    targets = np.full(length, IGNORE_INDEX, dtype=np.int32)
    targets[length // 2 : -1] = ids[length // 2 + 1 :]  # the second half is "assistant"
    return Example(ids, targets)


@pytest.fixture(scope="module")
def tiny_model(tiny_phi3_dir):
    def load(attn: str):
        model = load_base_model(ModelSettings(name_or_path=str(tiny_phi3_dir), attn_implementation=attn))
        return model.eval()

    return load


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_logits_alone(tiny_model, attn):
    model = tiny_model(attn)
    examples = [example(n, seed) for seed, n in enumerate([37, 20, 51, 9])]
    (row,) = pack(examples, max_seq_len=128)
    assert row.num_examples == 4 and len(row) == 117
    batch = collate([row], pad_token_id=0)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        offset = 0
        for ex in examples:
            alone = model(input_ids=torch.tensor(ex.input_ids[None], dtype=torch.long), use_cache=False).logits[0]
            torch.testing.assert_close(packed[offset : offset + len(ex)], alone, rtol=1e-4, atol=1e-4)
            offset += len(ex)
        # Control: without the position restarts, later examples do see earlier ones.
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
        assert not torch.allclose(leaky[37:57], packed[37:57], atol=1e-3)


def test_padding_rows_do_not_change_real_logits(tiny_model):
    model = tiny_model("sdpa")
    short, long = example(10, 1), example(40, 2)
    batch = collate(one_per_row([short, long]), pad_token_id=0)
    assert batch["input_ids"].shape == (2, 40)
    assert (batch["targets"][0, 10:] == IGNORE_INDEX).all()
    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone = model(input_ids=torch.tensor(short.input_ids[None], dtype=torch.long), use_cache=False).logits
    torch.testing.assert_close(padded[0, :10], alone[0], rtol=1e-4, atol=1e-4)


def test_best_fit_packing_fills_rows_and_keeps_every_example():
    examples = [example(n, i) for i, n in enumerate(np.random.default_rng(0).integers(10, 200, size=300))]
    rows = pack(examples, max_seq_len=512)
    assert all(len(r) <= 512 for r in rows)
    assert sum(r.num_examples for r in rows) == 300
    assert sum(len(r) for r in rows) == sum(len(e) for e in examples)
    assert sum(len(r) for r in rows) / (len(rows) * 512) > 0.95
    assert sum(r.num_targets for r in rows) == sum(e.num_targets for e in examples)


def test_batch_plan_is_deterministic_and_splits_steps_between_workers():
    rows = pack([example(n, i) for i, n in enumerate(range(20, 120, 5))], max_seq_len=128)
    plan = BatchPlan.build(rows, micro_batch_size=2, grad_accum_steps=3, world_size=2, seed=5, epochs=3, max_steps=None)
    again = BatchPlan.build(rows, micro_batch_size=2, grad_accum_steps=3, world_size=2, seed=5, epochs=3, max_steps=None)
    assert plan.total_steps == -(-3 * len(rows) // 12)
    for step in range(plan.total_steps):
        parts = [r for rank in range(2) for mb in plan.micro_batches(step, rank) for r in mb]
        assert sorted(parts) == sorted(plan.step_rows(step))  # every row of the step, once
        assert plan.micro_batches(step, 1) == again.micro_batches(step, 1)
    first_epoch = [r for s in range(len(rows) // 12) for r in plan.step_rows(s)]
    assert len(set(first_epoch)) == len(first_epoch)  # no row repeats inside an epoch
    assert plan.micro_batches(0, 0) != BatchPlan.build(
        rows, micro_batch_size=2, grad_accum_steps=3, world_size=2, seed=6, epochs=3, max_steps=None
    ).micro_batches(0, 0)


def test_eval_batches_are_equal_in_number_on_every_worker():
    per_rank = [eval_batches(5, micro_batch_size=2, world_size=2, rank=r) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])
    counted = sorted(i for batches in per_rank for rows, counts in batches if counts for i in rows)
    assert counted == [0, 1, 2, 3, 4]


def test_loss_scaling_makes_accumulation_equal_one_big_batch(tiny_phi3_dir):
    """Per-micro-batch sums scaled by 1/step_tokens give the gradient of the global token mean."""
    torch.manual_seed(0)
    model = attach_lora(load_base_model(ModelSettings(name_or_path=str(tiny_phi3_dir))), LoraSettings(r=4, dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    rows = one_per_row([example(n, i) for i, n in enumerate([12, 30, 18, 25])])
    total = sum(r.num_targets for r in rows)

    def grads() -> dict[str, torch.Tensor]:
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    model.zero_grad()
    big = collate(rows, 0)
    (token_loss_sum(model, big) / total).backward()
    want = grads()
    model.zero_grad()
    for part in (rows[:1], rows[1:]):  # uneven micro-batches, as packing produces
        (token_loss_sum(model, collate(part, 0)) / total).backward()
    for name, grad in grads().items():
        torch.testing.assert_close(grad, want[name], rtol=1e-4, atol=1e-6)

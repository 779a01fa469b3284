"""Recipes: the shipped ones validate, and a bad key or combination is a clear error."""

from __future__ import annotations

import pytest
import torch

from train import RecipeError, load_recipe
from train.cli import main
from train.deepspeed_config import deepspeed_config
from train.recipe_loading import shipped_recipes

SHIPPED = {
    "cpu-demo.yaml",
    "phi3-mini-qlora-1gpu.yaml",
    "phi3-mini-lora-zero3-multigpu.yaml",
    "phi3-medium-qlora-zero2-multinode.yaml",
}


def test_shipped_recipes_validate():
    assert {p.name for p in shipped_recipes()} >= SHIPPED
    for path in shipped_recipes():
        recipe = load_recipe(path)
        assert recipe.output.adapter_name
    demo = load_recipe("train/recipes/cpu-demo.yaml")
    assert demo.model.name_or_path == "builtin:smollm2-135m-phi3" and demo.scaling.num_workers == 2
    assert not demo.scaling.use_gpu and demo.method == "lora" and demo.data.packing
    medium = load_recipe("train/recipes/phi3-medium-qlora-zero2-multinode.yaml")
    assert medium.method == "qlora" and medium.deepspeed.zero_stage == 2 and medium.deepspeed.offload_optimizer
    config = deepspeed_config(medium, world_size=8)
    assert config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert config["bf16"]["enabled"] and config["optimizer"]["type"] == "AdamW"
    assert config["train_batch_size"] == 2 * 4 * 8
    zero3 = load_recipe("train/recipes/phi3-mini-lora-zero3-multigpu.yaml")
    assert deepspeed_config(zero3, 4)["zero_optimization"]["stage"] == 3
    assert not deepspeed_config(demo, 2)["bf16"]["enabled"]  # fp32 on CPU


def test_qlora_under_zero3_stores_the_4bit_weights_in_the_compute_dtype():
    """ZeRO-3 shards the packed 4-bit weights as floats; elsewhere bitsandbytes' uint8 storage stays."""
    from modeling.quantization import bitsandbytes_config

    zero3 = load_recipe("train/recipes/cpu-demo.yaml", ["model.quantization=nf4", "deepspeed.zero_stage=3"])
    assert zero3.quant_storage == "float32"
    assert bitsandbytes_config(zero3.model, zero3.quant_storage).bnb_4bit_quant_storage == torch.float32
    gpu = load_recipe("train/recipes/phi3-mini-lora-zero3-multigpu.yaml",
                      ["model.quantization=nf4", "model.compute_dtype=bfloat16"])
    assert gpu.quant_storage == "bfloat16"
    zero2 = load_recipe("train/recipes/cpu-demo.yaml", ["model.quantization=nf4"])
    assert zero2.quant_storage is None and bitsandbytes_config(zero2.model).bnb_4bit_quant_storage == torch.uint8
    assert load_recipe("train/recipes/cpu-demo.yaml", ["deepspeed.zero_stage=3"]).quant_storage is None  # LoRA


def test_overrides_are_parsed_as_yaml():
    recipe = load_recipe(
        "train/recipes/cpu-demo.yaml",
        ["training.max_steps=7", "data.packing=false", "optim.lr=3e-4", "data.train_files=[a.jsonl, b.jsonl]",
         "scaling.resources_per_worker.CPU=2"],
    )
    assert recipe.training.max_steps == 7 and recipe.data.packing is False and recipe.optim.lr == 3e-4
    assert recipe.data.train_files == ("a.jsonl", "b.jsonl")
    assert recipe.scaling.resources_per_worker == {"CPU": 2.0}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["lora.rr=8"], r"lora\.rr: unknown key; allowed keys here: r, alpha, dropout"),
        (["trainig.max_steps=3"], r"trainig: unknown key; allowed keys here: description, seed, model"),
        (["training.max_steps=0"], r"training\.max_steps: Input should be greater than or equal to 1"),
        (["strategy=fsdp"], r"strategy: Input should be 'ddp' or 'deepspeed'"),
        (["output.adapter_name=../x"], r"output\.adapter_name: invalid adapter name"),
        (["model.quantization=int8"], r"int8 trains with strategy: ddp only"),
        (["deepspeed.offload_params=true"], r"offload_params needs deepspeed\.zero_stage: 3"),
        (["fault_injection.at_step=2", "fault_injection.rank=5"], r"fault_injection\.rank=5 but there are only 2 workers"),
        (["training=3"], r"training: Input should be a valid dictionary"),
        (["training.epochs.x=3"], r"training\.epochs is a value, not a section"),
        (["nonsense"], r"expected key=value"),
    ],
)
def test_bad_recipe_names_the_key(overrides, expected):
    with pytest.raises(RecipeError, match=expected):
        load_recipe("train/recipes/cpu-demo.yaml", overrides)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="shipped recipes: .*cpu-demo.yaml"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RecipeError, match="must be a mapping of sections"):
        load_recipe(bad)


def test_cli_reports_recipe_errors_with_exit_code_2(capsys):
    assert main(["--config", "train/recipes/cpu-demo.yaml", "--set", "lora.rr=8"]) == 2
    err = capsys.readouterr().err
    assert "error: invalid recipe train/recipes/cpu-demo.yaml" in err and "lora.rr: unknown key" in err
    assert main(["--config", "train/recipes/cpu-demo.yaml", "--print-recipe"]) == 0
    assert '"zero_stage": 2' in capsys.readouterr().out


def test_gpu_recipe_on_a_cpu_machine_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = main([
        "--config", "train/recipes/phi3-mini-qlora-1gpu.yaml",
        "--set", "model.name_or_path=builtin:smollm2-135m-phi3",
        "--set", f"output.run_dir={tmp_path / 'runs'}",
        "--set", f"output.registry={tmp_path / 'adapters'}",
    ])
    assert code == 2
    assert "asks for 1 workers with GPU=1 each, but" in capsys.readouterr().err

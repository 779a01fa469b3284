"""Training data: both JSONL formats, loss on assistant tokens only, clear errors for bad lines."""

from __future__ import annotations

import json

import pytest

from train import DataFormatError
from train.cli import main
from train.dataset import build_training_data
from train.records import read_records
from train.tokenization import IGNORE_INDEX, tokenize_chat

# Phi-3-mini-4k-instruct's own chat template (the offline model's tokenizer uses ChatML).
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What does HX-220 do?"},
    {"role": "assistant", "content": "It cools the oil."},
    {"role": "user", "content": "Torque?"},
    {"role": "assistant", "content": "45 Nm."},
]


def write_jsonl(path, lines) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def learned_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t in example.targets.tolist() if t != IGNORE_INDEX])


def test_only_assistant_tokens_carry_loss_chatml(builtin_tokenizer):
    ex = tokenize_chat(builtin_tokenizer, CHAT, max_seq_len=512)
    assert learned_text(builtin_tokenizer, ex) == "It cools the oil.<|im_end|>\n45 Nm.<|im_end|>\n"
    # targets are next tokens: wherever a target is set, it is the following input token
    for t in range(len(ex) - 1):
        if ex.targets[t] != IGNORE_INDEX:
            assert ex.targets[t] == ex.input_ids[t + 1]
    assert ex.targets[-1] == IGNORE_INDEX


def test_only_assistant_tokens_carry_loss_phi3_template(builtin_tokenizer):
    tokenizer = builtin_tokenizer.__class__.from_pretrained(builtin_tokenizer.name_or_path)
    tokenizer.chat_template = PHI3_TEMPLATE
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]})
    ex = tokenize_chat(tokenizer, CHAT, max_seq_len=512)
    learned = learned_text(tokenizer, ex)
    assert "It cools the oil.<|end|>" in learned and "45 Nm.<|end|>" in learned
    assert "HX-220" not in learned and "Torque" not in learned and "Be brief" not in learned


def test_truncation_keeps_targets_inside_the_window(builtin_tokenizer):
    full = tokenize_chat(builtin_tokenizer, CHAT, max_seq_len=512)
    cut = tokenize_chat(builtin_tokenizer, CHAT, max_seq_len=len(full) - 3)
    assert cut.truncated and len(cut) == len(full) - 3
    assert cut.targets[-1] == IGNORE_INDEX
    assert (cut.targets[:-1] == full.targets[: len(cut) - 1]).all()


def test_instruction_records_become_chats(tmp_path):
    path = write_jsonl(tmp_path / "i.jsonl", [
        {"instruction": "Summarise.", "input": "Long text.", "output": "Short.", "id": 7},
        {"instruction": "Say hi.", "output": "Hi.", "system": "Be kind."},
    ])
    first, second = read_records([path])
    assert first.messages == ({"role": "user", "content": "Summarise.\n\nLong text."}, {"role": "assistant", "content": "Short."})
    assert second.messages[0] == {"role": "system", "content": "Be kind."}
    assert first.where == f"{path}:1"


@pytest.mark.parametrize(
    ("line", "fmt", "expected"),
    [
        ("{not json", "auto", "not valid JSON"),
        ("[1, 2]", "auto", "expected a JSON object, got list"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "auto", "no assistant message"),
        ({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}, "auto", r"messages\[0\]: role"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "auto", "must follow a user message"),
        ({"instruction": "Do it."}, "auto", "'output' must be a non-empty string"),
        ({"question": "q", "answer": "a"}, "auto", "neither a chat nor an instruction record"),
        ({"instruction": "q", "output": "a"}, "chat", "no 'messages' key"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, fmt, expected):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = write_jsonl(tmp_path / "data.jsonl", [good, "", good, line])
    with pytest.raises(DataFormatError, match=rf"{path}:4: .*{expected}"):
        read_records([path], fmt)


def test_every_bad_line_is_listed_and_missing_files_are_named(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ["{", "[]", "{}"])
    with pytest.raises(DataFormatError, match="3 malformed line") as info:
        read_records([path])
    assert all(f"{path}:{n}" in str(info.value) for n in (1, 2, 3))
    with pytest.raises(DataFormatError, match="nope.jsonl not found"):
        read_records([str(tmp_path / "nope.jsonl")])


def test_bad_line_stops_the_cli_before_training_starts(tmp_path, tiny_phi3_dir, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    code = main([
        "--config", "train/recipes/cpu-demo.yaml",
        "--set", f"model.name_or_path={tiny_phi3_dir}",
        "--set", f"data.train_files=[{bad}]",
        "--set", f"output.run_dir={tmp_path / 'runs'}",
        "--set", f"output.registry={tmp_path / 'adapters'}",
    ])
    assert code == 2
    assert f"{bad}:1: no assistant message" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no run folder: nothing started


def test_dataset_split_packing_and_fingerprint(tiny_recipe, builtin_tokenizer, toy_data, tmp_path):
    packed = build_training_data(tiny_recipe(), builtin_tokenizer)
    assert packed.stats["examples"] == 24 and packed.stats["val_examples"] == 5
    assert len(packed.train_rows) < packed.stats["train_examples"]  # several examples per row
    assert packed.stats["row_fill"] > 0.8
    unpacked = build_training_data(tiny_recipe(data={"packing": False}), builtin_tokenizer)
    assert len(unpacked.train_rows) == 19 and all(r.num_examples == 1 for r in unpacked.train_rows)
    assert packed.fingerprint != unpacked.fingerprint
    copy = tmp_path / "copy.jsonl"
    copy.write_text(toy_data.read_text() + json.dumps({"instruction": "x", "output": "y"}) + "\n")
    changed = build_training_data(tiny_recipe(data={"train_files": [str(copy)]}), builtin_tokenizer)
    assert changed.fingerprint != packed.fingerprint
    moved = tmp_path / "elsewhere" / "codewords.jsonl"  # the same bytes under another path: the same data
    moved.parent.mkdir()
    moved.write_bytes(toy_data.read_bytes())
    assert build_training_data(tiny_recipe(data={"train_files": [str(moved)]}), builtin_tokenizer).fingerprint == packed.fingerprint


def test_examples_cut_by_the_window_are_counted_and_the_warning_names_the_length_that_fits(
        tiny_recipe, builtin_tokenizer, caplog):
    whole = build_training_data(tiny_recipe(), builtin_tokenizer)
    longest = whole.stats["longest_example_tokens"]
    assert whole.stats["truncated"] == 0 and longest <= 128
    with caplog.at_level("WARNING", logger="train.dataset"):
        cut = build_training_data(tiny_recipe(data={"max_seq_len": longest - 1}), builtin_tokenizer)
    assert cut.stats["truncated"] >= 1 and cut.stats["longest_example_tokens"] == longest
    message = next(r.getMessage() for r in caplog.records if "longer than data.max_seq_len" in r.getMessage())
    assert f"of 24 example(s) are longer than data.max_seq_len={longest - 1}" in message
    assert f"raise data.max_seq_len to {longest}" in message

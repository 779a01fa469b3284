"""Incremental text of the engine: stop strings across tokens, whitespace, multi-byte characters."""

from __future__ import annotations

import torch

from modeling.engine.sampling import RowSampler, next_tokens
from modeling.engine.text import TextAssembler
from modeling.generation import GenerationParams


def feed(tokenizer, text: str, stops: tuple[str, ...] = ()) -> tuple[list[str], TextAssembler]:
    assembler = TextAssembler(tokenizer, stops)
    pieces = []
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        pieces.append(assembler.add(token))
        if assembler.stopped:
            break
    pieces.append(assembler.tail())
    return [p for p in pieces if p], assembler


def test_pieces_concatenate_to_the_stripped_text(builtin_tokenizer):
    pieces, assembler = feed(builtin_tokenizer, "  The torque is 120 Nm.  \n")
    assert "".join(pieces) == assembler.final() == "The torque is 120 Nm."
    assert len(pieces) > 2


def test_a_stop_string_split_over_tokens_is_cut_and_never_sent(builtin_tokenizer):
    pieces, assembler = feed(builtin_tokenizer, "Step one. ###END### step two.", stops=("###END###",))
    assert assembler.stopped and "".join(pieces) == assembler.final() == "Step one."
    assert not any("#" in p for p in pieces)


def test_the_earliest_of_several_stop_strings_wins(builtin_tokenizer):
    _, assembler = feed(builtin_tokenizer, "alpha beta gamma delta", stops=("delta", "beta"))
    assert assembler.final() == "alpha"


def test_a_multibyte_character_split_over_tokens_arrives_whole(builtin_tokenizer):
    text = "Température 20 °C, naïve café ☕ ok"
    pieces, assembler = feed(builtin_tokenizer, text)
    assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces)


def test_greedy_rows_take_the_argmax_and_tiny_top_p_is_greedy():
    logits = torch.tensor([[0.1, 3.0, 0.2], [2.0, 0.0, 1.9], [0.0, 0.1, 5.0]])
    greedy = RowSampler(GenerationParams(), torch.device("cpu"))
    narrow = RowSampler(GenerationParams(temperature=1.5, top_p=0.01, seed=1), torch.device("cpu"))
    assert next_tokens(logits, [greedy, narrow, greedy]) == [1, 0, 2]


def test_a_seed_fixes_the_sampled_tokens():
    logits = torch.zeros(1, 1000)
    draws = [
        [next_tokens(logits, [s])[0] for _ in range(5)]
        for s in (RowSampler(GenerationParams(temperature=1.0, seed=3), torch.device("cpu")) for _ in range(2))
    ]
    assert draws[0] == draws[1] and len(set(draws[0])) > 1

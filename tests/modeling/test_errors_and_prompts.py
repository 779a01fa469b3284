"""Typed errors survive process boundaries (Ray pickles them) and the RAG prompt is stable."""

from __future__ import annotations

import pickle

from modeling import AdapterNotFoundError, InvalidAdapterNameError, PromptTooLongError
from modeling.rag_prompt import DEFAULT_RAG_SYSTEM, Passage, build_rag_messages


def test_errors_round_trip_through_pickle_with_their_fields():
    err = pickle.loads(pickle.dumps(AdapterNotFoundError("x", ["a", "b"], "/reg")))
    assert isinstance(err, AdapterNotFoundError) and err.known == ["a", "b"]
    assert str(err) == "adapter 'x' not found in registry /reg; known adapters: a, b"
    long = pickle.loads(pickle.dumps(PromptTooLongError(9000, 16, 8192)))
    assert (long.prompt_tokens, long.context) == (9000, 8192) and "8192" in str(long)
    assert isinstance(pickle.loads(pickle.dumps(InvalidAdapterNameError("bad"))), InvalidAdapterNameError)


def test_rag_messages_number_passages_with_their_origin():
    messages = build_rag_messages(
        "  What torque does HX-220 need? ",
        [Passage(text="Torque HX-220 bolts to 45 Nm.", source="manual.md", section="Assembly"), Passage(text="Unrelated.")],
    )
    assert messages[0] == {"role": "system", "content": DEFAULT_RAG_SYSTEM}
    assert messages[1]["content"] == (
        "Context:\n[1] (manual.md > Assembly)\nTorque HX-220 bolts to 45 Nm.\n\n[2]\nUnrelated.\n\n"
        "Question: What torque does HX-220 need?"
    )


def test_rag_messages_without_passages_or_system_are_the_plain_question():
    assert build_rag_messages("Why?", [], system=None) == [{"role": "user", "content": "Why?"}]

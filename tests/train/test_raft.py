"""RAFT and instruction data builders (train/raft.py, train/qa.py) on a real Milvus Lite collection.

What the hybrid route needs from its training data: the exact RAG prompt the server sends, the
gold passage cited by its number, distractors that really do not answer, and the gold passage
left out at the promised rate.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from modeling.rag_prompt import DEFAULT_RAG_SYSTEM, Passage, build_rag_messages, final_answer
from retrieval.api import Retriever
from qa import QAFormatError, SourceNotFoundError, load_qa, mentions, resolve_source, source_matches
from train.qa import build_instruction_examples
from train.qa import main as qa_main
from train.raft import ABSTAIN_ANSWER, RaftSettings, build_raft_examples, cite, supporting_span
from train.raft import main as raft_main
from train.records import read_records

COLLECTION = "raft_tests"
# Eight small manuals, two sections each: every QA fact occurs in exactly one chunk.
DOCS = {
    "manuals/hx220.md": "# HX-220 Heat Exchanger\n\n## Assembly\n\nTighten the HX-220 flange bolts to 45 Nm in a star pattern.\n\n"
    "## Cleaning\n\nFlush the HX-220 plates with descaler every few months using the site pump.\n",
    "manuals/pump-p9.md": "# P9 Circulation Pump\n\n## Start-up\n\nPrime the P9 pump with 2 litres of water before the first start.\n\n"
    "## Noise\n\nA rattling P9 pump usually has air in the housing; bleed it at the top screw.\n",
    "manuals/valve-v3.md": "# V3 Relief Valve\n\n## Setting\n\nThe V3 relief valve opens at 6 bar by factory setting.\n\n"
    "## Testing\n\nLift the V3 test lever once a year to check the seat moves freely.\n",
    "manuals/fan-f12.md": "# F12 Cooling Fan\n\n## Wiring\n\nThe F12 fan motor runs on 230 V single phase supply.\n\n"
    "## Bearings\n\nGrease the F12 bearings with lithium grease at each service visit.\n",
    "policies/badges.md": "# Site access\n\n## Badges\n\nLost badges are replaced by the security desk in building C.\n\n"
    "## Visitors\n\nVisitors sign in at reception and wear an orange lanyard at all times.\n",
    "policies/travel.md": "# Travel policy\n\n## Trains\n\nBook second class train tickets through the travel portal Voyo.\n\n"
    "## Hotels\n\nHotel nights are reimbursed up to 140 EUR in capital cities.\n",
    "policies/safety.md": "# Safety rules\n\n## Helmets\n\nWhite helmets are reserved for supervisors on the shop floor.\n\n"
    "## Drills\n\nFire drills take place on the first Monday of each quarter.\n",
    "archive/manuals/hx220.md": "# HX-220 (old edition)\n\n## Notes\n\nThis edition is superseded; keep it for reference only.\n",
}
QA = [
    {"id": "q1", "question": "What torque do the HX-220 flange bolts need?", "answer": "Tighten them to 45 Nm.",
     "source": "docs/manuals/hx220.md", "fact": "45 Nm"},
    {"id": "q2", "question": "How much water primes the P9 pump?", "answer": "2 litres of water.",
     "source": "manuals/pump-p9.md", "fact": "2 litres"},
    {"id": "q3", "question": "At what pressure does the V3 relief valve open?", "answer": "At 6 bar.",
     "source": "manuals/valve-v3.md", "fact": "6 bar"},
    {"id": "q4", "question": "What supply voltage does the F12 fan motor need?", "answer": "230 V single phase.",
     "source": "manuals/fan-f12.md", "fact": "230 V"},
    {"id": "q5", "question": "Who replaces lost badges?", "answer": "The security desk in building C.",
     "source": "policies/badges.md", "fact": "security desk"},
    {"id": "q6", "question": "Which portal books train tickets?", "answer": "The travel portal Voyo.",
     "source": "policies/travel.md", "fact": "Voyo"},
    {"id": "q7", "question": "Who wears white helmets?", "answer": "Supervisors on the shop floor.",
     "source": "policies/safety.md", "fact": "supervisors"},
    {"id": "q8", "question": "What colour lanyard do visitors wear?", "answer": "An orange lanyard.",
     "source": "policies/badges.md", "fact": "orange"},
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, str]:
    """Ingest DOCS into a fresh Milvus Lite file; sources are stored as ``docs/...`` paths."""
    root = tmp_path_factory.mktemp("raft")
    for name, text in DOCS.items():
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    uri = str(root / "milvus.db")
    with Retriever(collection=COLLECTION, uri=uri) as kb:
        report = kb.ingest([root / "docs"], source_root=root)
        assert not report.errors and report.chunks_written >= 15
    return root, uri


@pytest.fixture(scope="module")
def kb(corpus):
    with Retriever(collection=COLLECTION, uri=corpus[1]) as retriever:
        yield retriever


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    path = tmp_path_factory.mktemp("qa") / "qa.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QA))
    return load_qa(path)


@pytest.fixture(scope="module")
def chunks(kb) -> dict:
    """Every chunk of the collection by id (dense search with top_k above the chunk count)."""
    return {h.chunk_id: h for h in kb.search("anything", mode="dense", top_k=50)}


def passages_of(user_turn: str) -> list[str]:
    return re.split(r"\n\n(?=\[\d+\] \()", user_turn.split("\n\nQuestion: ")[0].removeprefix("Context:\n"))


# ---- the examples ----------------------------------------------------------------------------
def test_examples_are_exactly_the_servers_rag_prompt_with_a_cited_answer(kb, items, chunks):
    examples, stats = build_raft_examples(items, kb, RaftSettings(distractors=3, p_gold=1.0))
    assert stats.examples == len(items) == stats.with_gold and not stats.gold_without_fact
    by_id = {i.id: i for i in items}
    for ex in examples:
        item = by_id[ex.qa_id]
        hits = [chunks[c] for c in ex.passage_chunk_ids]
        expected = build_rag_messages(item.question, [Passage(text=h.text, source=h.source, section=h.section) for h in hits])
        assert ex.messages[:2] == expected and ex.messages[0] == {"role": "system", "content": DEFAULT_RAG_SYSTEM}
        assert ex.to_row() == {"messages": ex.messages, "qa_id": item.id, "gold_ref": ex.gold_ref}
        assert len(hits) == 4 and 1 <= ex.gold_ref <= 4
        gold = hits[ex.gold_ref - 1]
        assert source_matches(gold.source, item.source) and mentions(gold.text, item.fact)
        # the reply quotes the gold passage's span, then answers citing the passage with the fact;
        # no distractor holds the fact
        reply = ex.messages[2]["content"]
        quote, answer = re.fullmatch(r"##begin_quote## (.+) ##end_quote##\nAnswer: (.+)", reply).groups()
        assert answer == cite(item.answer, ex.gold_ref) and final_answer(reply) == answer
        assert mentions(quote, item.fact) and quote in " ".join(gold.text.split()).replace("\n", " ")
        assert re.findall(r"\[(\d+)\]", reply) == [str(ex.gold_ref)]
        assert item.fact in passages_of(ex.messages[1]["content"])[ex.gold_ref - 1]
        assert not any(mentions(h.text, item.fact) for i, h in enumerate(hits) if i != ex.gold_ref - 1)


def test_retrieval_order_is_the_servers_context_with_the_gold_at_its_rank(kb, items, chunks):
    examples, _ = build_raft_examples(items, kb, RaftSettings(distractors=2, p_gold=0.5, order="retrieval", seed=5))
    by_id = {i.id: i for i in items}
    for ex in examples:
        item = by_id[ex.qa_id]
        hits = kb.search(item.question, top_k=RaftSettings().pool_size)
        ranked = [h.chunk_id for h in hits]
        distractors = [c for i, c in enumerate(ex.passage_chunk_ids) if ex.gold_ref is None or i != ex.gold_ref - 1]
        # the question's best-ranked hits that do not state the fact, best first
        expected = [c for c in ranked if not mentions(chunks[c].text, item.fact)][: len(distractors)]
        assert distractors == expected
        if ex.gold_ref is not None and ex.passage_chunk_ids[ex.gold_ref - 1] in ranked:
            order = [ranked.index(c) for c in ex.passage_chunk_ids]
            assert order == sorted(order)  # the gold passage sits at the rank the search gives it
    shuffled, _ = build_raft_examples(items, kb, RaftSettings(distractors=2, p_gold=1.0, seed=5))
    assert {e.gold_ref for e in shuffled} != {1}  # the paper's contexts put the gold anywhere


def test_without_quotes_the_reply_is_the_cited_answer(kb, items):
    examples, _ = build_raft_examples(items, kb, RaftSettings(p_gold=1.0, quote=False))
    by_id = {i.id: i for i in items}
    assert all(e.messages[2]["content"] == cite(by_id[e.qa_id].answer, e.gold_ref) for e in examples)


def test_supporting_span_is_the_sentence_or_row_line_holding_the_fact():
    text = "Intro sentence here. The HX-220 flange bolts take 45 Nm in a cross pattern. Another sentence follows."
    assert supporting_span(text, "45 Nm", 32) == "The HX-220 flange bolts take 45 Nm in a cross pattern."
    row = "part_number: QF-1102\nname: Brake pad set\nprice_eur: 84.00"
    assert supporting_span(row, "84.00", 32, row=True) == "part_number: QF-1102; price_eur: 84.00"
    long = " ".join(f"w{n}" for n in range(100)) + " 45 Nm " + " ".join(f"v{n}" for n in range(100)) + "."
    cut = supporting_span(long, "45 Nm", 12)
    assert len(cut.split()) == 12 and "45 Nm" in cut


def test_gold_is_dropped_at_the_exact_rate_and_lands_in_every_position(kb, items):
    settings = RaftSettings(distractors=3, p_gold=0.8, copies=5, seed=7)
    examples, stats = build_raft_examples(items, kb, settings)
    assert len(examples) == 40 and stats.with_gold == 32 and stats.without_gold == 8 and stats.short_contexts == 0
    assert Counter(e.qa_id for e in examples) == {i.id: 5 for i in items}
    assert all(len(e.passage_chunk_ids) == 4 for e in examples)  # k + 1 distractors when the gold is out
    assert {e.gold_ref for e in examples if e.gold_ref} == {1, 2, 3, 4}
    dropped = [e for e in examples if e.gold_ref is None]
    assert all(e.messages[-1]["content"] == ABSTAIN_ANSWER for e in dropped)
    by_id = {i.id: i for i in items}
    for e in dropped:  # no passage states the answer, so "I do not know" is the right reply
        assert not any(mentions(p, by_id[e.qa_id].fact) for p in passages_of(e.messages[1]["content"]))
    # copies draw different distractors
    contexts = {tuple(sorted(e.passage_chunk_ids)) for e in examples if e.qa_id == "q1"}
    assert len(contexts) > 1


def test_rates_at_the_extremes_and_the_memorize_knob(kb, items):
    none, stats = build_raft_examples(items, kb, RaftSettings(p_gold=0.0, no_gold="memorize"))
    assert stats.with_gold == 0 and all(e.gold_ref is None for e in none)
    by_id = {i.id: i for i in items}
    assert all(e.messages[-1]["content"] == by_id[e.qa_id].answer for e in none)  # answered, nothing to cite
    one, _ = build_raft_examples(items, kb, RaftSettings(distractors=1, p_gold=1.0))
    assert all(len(e.passage_chunk_ids) == 2 and e.gold_ref in (1, 2) for e in one)


def test_same_seed_same_data_other_seed_other_draw(kb, items):
    settings = RaftSettings(p_gold=0.5, copies=2, seed=3)
    first, _ = build_raft_examples(items, kb, settings)
    again, _ = build_raft_examples(items, kb, settings)
    other, _ = build_raft_examples(items, kb, settings.model_copy(update={"seed": 4}))
    assert [e.messages for e in first] == [e.messages for e in again]
    assert [e.messages for e in first] != [e.messages for e in other]


def test_unknown_and_ambiguous_gold_sources_are_clear_errors(kb, items):
    unknown = items[0].model_copy(update={"source": "manuals/hx999.md"})
    with pytest.raises(SourceNotFoundError, match=r"hx999.*docs/manuals/hx220.md"):
        build_raft_examples([unknown], kb)
    ambiguous = items[0].model_copy(update={"source": "hx220.md"})
    with pytest.raises(SourceNotFoundError, match="matches 2 documents"):
        build_raft_examples([ambiguous], kb)
    assert resolve_source("manuals/a.md", ["manuals/a.md", "old/manuals/a.md"]) == "manuals/a.md"  # exact wins


def test_source_matching_is_by_whole_path_segments():
    assert source_matches("/data/docs/manuals/a.md", "manuals/a.md")
    assert source_matches("manuals/a.md", "./docs/manuals/a.md")
    assert source_matches("docs\\manuals\\a.md", "manuals/a.md")
    assert not source_matches("docs/xmanuals/a.md", "manuals/a.md")
    assert not source_matches("docs/manuals/a.md", "manuals/b.md") and not source_matches("", "a.md")


def test_mentions_is_normalised_whole_word_containment():
    assert mentions("The V3 valve opens at 6 BAR.", "6 bar") and not mentions("It opens at 16 bar.", "6 bar")
    assert mentions("Replaced by the security desk, building C", "Security Desk")
    assert not mentions("anything", "") and not mentions("anything", "the")  # nothing left to look for


def test_cite_puts_the_reference_before_the_final_stop():
    assert cite("It is 45 Nm.", 2) == "It is 45 Nm [2]."
    assert cite(" 45 Nm ", 1) == "45 Nm [1]"


# ---- QA files and instruction data ----------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "x", "question": "q?"}', "answer"),
        ('{"id": "x", "question": "", "answer": "a"}', "question"),
        ('{"id": "q1", "question": "again?", "answer": "a"}', "duplicate id 'q1' \\(first on line 1\\)"),
    ],
)
def test_malformed_qa_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n\n" + line + "\n")
    with pytest.raises(QAFormatError, match=rf"qa\.jsonl:3: .*{message}"):
        load_qa(path)


def test_qa_file_edge_cases(tmp_path):
    with pytest.raises(QAFormatError, match="not found"):
        load_qa(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(QAFormatError, match="no questions"):
        load_qa(tmp_path / "empty.jsonl")
    (tmp_path / "ok.jsonl").write_text('{"id": 7, "question": "q?", "answer": "a", "category": "extra keys are fine"}\n')
    item = load_qa(tmp_path / "ok.jsonl")[0]
    assert item.id == "7" and item.source is None and item.gold_fact == "a"


def test_instruction_examples_are_what_the_finetuned_route_sends(items, tmp_path):
    chat = build_instruction_examples(items)
    assert chat[0] == {"messages": [{"role": "user", "content": QA[0]["question"]},
                                    {"role": "assistant", "content": QA[0]["answer"]}], "qa_id": "q1"}
    assert build_instruction_examples(items, "instruction")[1] == {
        "instruction": QA[1]["question"], "output": QA[1]["answer"], "qa_id": "q2"}
    qa_path = tmp_path / "qa.jsonl"
    qa_path.write_text("".join(json.dumps(q) + "\n" for q in QA))
    assert qa_main(["--qa", str(qa_path), "--out", str(tmp_path / "out" / "instruct.jsonl"), "--format", "instruction"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "instruct.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and set(rows[0]) == {"instruction", "output", "qa_id"}
    # the trainer's reader turns them into the bare-question chat the /finetuned route sends
    records = read_records([tmp_path / "out" / "instruct.jsonl"])
    assert records[0].messages == ({"role": "user", "content": QA[0]["question"]},
                                   {"role": "assistant", "content": QA[0]["answer"]})


def test_raft_cli_writes_chat_jsonl_and_reports_bad_input(corpus, tmp_path, capsys):
    root, uri = corpus
    qa_path = tmp_path / "qa.jsonl"
    qa_path.write_text("".join(json.dumps(q) + "\n" for q in QA))
    out = tmp_path / "raft.jsonl"
    code = raft_main(["--collection", COLLECTION, "--uri", uri, "--qa", str(qa_path), "--out", str(out),
                      "--p-gold", "0.75", "--copies", "2", "--distractors", "2"])
    assert code == 0 and "16 examples (12 with the gold passage, 4 without)" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16 and all(set(r) == {"messages", "qa_id", "gold_ref"} for r in rows)
    assert all([m["role"] for m in r["messages"]] == ["system", "user", "assistant"] for r in rows)
    assert [r.messages for r in read_records([out], "chat")] == [tuple(r["messages"]) for r in rows]  # the trainer reads it
    assert all(len(passages_of(r["messages"][1]["content"])) == 3 for r in rows)

    (tmp_path / "bad.jsonl").write_text(json.dumps({**QA[0], "source": "nowhere.md"}) + "\n")
    assert raft_main(["--collection", COLLECTION, "--uri", uri, "--qa", str(tmp_path / "bad.jsonl"), "--out", str(out)]) == 2
    assert "nowhere.md" in capsys.readouterr().err and len(out.read_text().splitlines()) == 16  # old output kept
    assert raft_main(["--collection", "nope", "--uri", uri, "--qa", str(qa_path), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "x.jsonl").exists()

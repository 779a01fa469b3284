"""Training questions from documents alone (train/synthetic.py): rules, answers that the chunk
states, and no held-out question or answer in the synthetic set (on the real shared datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import load_qa, mentions, normalize_text
from retrieval.chunking import chunk_document
from retrieval.loaders import load_document
from retrieval.config import ChunkingConfig, EmbedderConfig
from retrieval.reports import Hit
from retrieval.tokenization import token_counter_for
from tests.conftest import REPO
from train.synthetic import SyntheticSettings, build_synthetic_qa, chunk_questions

SHARED = REPO.parent / "shared" / "datasets"


def hit(text: str, file_type: str = "markdown", row: int = -1, source: str = "docs/a.md") -> Hit:
    return Hit("c", "d", 0.0, text, source, "title", "", -1, row, 0, 0, len(text), file_type, {})


def test_table_row_cells_become_questions_about_the_row_key():
    made = chunk_questions(hit("part_number: QF-1102\nname: Brake pad set\nprice_eur: 84.00", "csv", row=3))
    assert ("What is the name of QF-1102?", "Brake pad set", "row") in made
    assert ("What is the price eur of QF-1102?", "84.00", "row") in made
    periods = chunk_questions(hit("Item: UK\nNote: \n2019 £m: 24.5\n2018 £m: 24.9", "csv", row=1))
    assert periods == [("What is UK for 2019 £m?", "24.5", "row"), ("What is UK for 2018 £m?", "24.9", "row")]  # empty cell skipped


def test_text_statements_and_quantities_become_extractive_questions():
    pairs = {q: a for q, a, _ in chunk_questions(hit(
        "The maximum exposure to credit risk at 31 March 2019 was £59.1m (2018: £56.5m). "
        "The genome of bovine coronavirus is about 31 kb long and it infects cattle. "
        "Outbreaks of SARS killed many; case-fatality rates ranged from 14% to 45% in the cohorts."))}
    assert pairs["What was the maximum exposure to credit risk at 31 March 2019?"] == "£59.1m"
    assert pairs["What is the genome of bovine coronavirus?"] == "about 31 kb long"  # cut at the next clause
    cloze = [q for q in pairs if "what to 45%" in q]
    assert cloze and pairs[cloze[0]] == "14%"


def test_every_answer_is_stated_by_its_chunk_and_not_given_away_by_the_question():
    text = "The pump is rated 45 Nm. The valve was Series 7. It weighs 12 kg when dry and 14 kg when filled."
    for question, answer, _ in chunk_questions(hit(text)):
        assert mentions(text, answer) and not mentions(question, answer)


def test_prose_rules_ask_definitions_causes_examples_and_names():
    made = {kind: (q, a) for q, a, kind in chunk_questions(hit(
        "Cells were infected with severe acute respiratory syndrome coronavirus (SARS-CoV) at low dose. "
        "Tuberculosis is caused by Mycobacterium tuberculosis in most patients. "
        "Bats carry respiratory viruses such as coronaviruses and paramyxoviruses in their guts. "
        "Most patients were later treated with remdesivir and ACE2 inhibitors in the clinic."))}
    assert made["definition"] == ("What does SARS-CoV stand for?", "severe acute respiratory syndrome coronavirus")
    assert made["agent"] == ("What is tuberculosis caused by?", "Mycobacterium tuberculosis in most patients")
    assert made["examples"] == ("What are examples of respiratory viruses?", "coronaviruses and paramyxoviruses")
    assert made["name"] == ("Most patients were later treated with remdesivir and what inhibitors in the clinic?", "ACE2")


def test_prose_rules_skip_statements_that_ask_nothing():
    text = ("This study was conducted in seven patients with MEWDS. "  # a subject that names nothing out of its passage
            "The samples were collected in November from the farm. "  # a verb phrase, not a value
            "The tree was drawn to scale with branch lengths. "
            "Results are shown in Table S3 for every strain. "  # a reference, not a name
            "Authors: Bouvier, Monique; Chen, Wei-Ju; Arnold, John C2.")  # metadata
    assert chunk_questions(hit(text)) == []


def test_prose_kinds_are_drawn_in_equal_shares_and_rows_keep_theirs():
    numbers = " ".join(f"Doses of drug {n} lasted for {n + 2} days in the ward." for n in range(30))
    defined = " ".join(f"We measured {w} virus antigen ({w[0].upper()}VA) in serum." for w in
                       ("alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "zeta"))
    chunks = [hit(numbers, source="docs/n.md"), hit(defined, source="docs/d.md")]
    balanced = build_synthetic_qa(chunks, SyntheticSettings(max_questions=8, per_document=50, per_chunk=20))
    kinds = [item.id.rsplit("-", 1)[1] for item in balanced]
    assert sorted(kinds) == ["definition"] * 4 + ["quantity"] * 4
    chance = build_synthetic_qa(chunks, SyntheticSettings(max_questions=8, per_document=50, per_chunk=20,
                                                          balance_kinds=False))
    assert len(chance) == 8
    rows = [hit(f"Item: Revenue {n}\n2019: {n}.5\n2018: {n}.1", "csv", row=n, source="structured/t.csv") for n in range(40)]
    mixed = build_synthetic_qa(rows + chunks, SyntheticSettings(max_questions=20, per_document=50, per_chunk=20))
    kinds = [item.id.rsplit("-", 1)[1] for item in mixed]
    assert 6 <= kinds.count("row") <= 16  # 50 row candidates of 88: their share is left to the draw
    assert abs(kinds.count("definition") - kinds.count("quantity")) <= 1


def _chunks_of(folder: Path, names: list[str]) -> list[Hit]:
    counter = token_counter_for(EmbedderConfig())
    hits = []
    for name in names:
        document = load_document(folder / name)
        document.source = name
        for c in chunk_document(document, "v", ChunkingConfig(), counter):
            hits.append(Hit(c.chunk_id, c.doc_id, 0.0, c.text, name, c.title, c.section, c.page, c.row,
                            c.chunk_index, c.start, c.end, c.file_type, c.meta))
    return hits


@pytest.mark.parametrize("dataset", ["tatqa", "covidqa"])
def test_no_held_out_question_or_answer_is_in_the_synthetic_set(dataset):
    folder = SHARED / dataset
    held_out = load_qa(folder / "qa" / "test.jsonl")
    names = sorted({item.source for item in held_out})[:12]  # the documents the held-out questions ask about
    chunks = _chunks_of(folder, names)
    items = build_synthetic_qa(chunks, SyntheticSettings(max_questions=None, per_document=50), exclude=held_out)
    assert len(items) >= 20
    by_source = {}
    for item in held_out:
        by_source.setdefault(item.source, set()).update({normalize_text(item.answer), normalize_text(item.gold_fact)})
    questions = {normalize_text(item.question) for item in held_out}
    for item in items:
        assert normalize_text(item.question) not in questions
        assert normalize_text(item.answer) not in by_source.get(item.source, set()), (item, "held-out answer")
        assert item.source in names and item.fact == item.answer
    # without the exclusion, the same documents do yield some held-out answers: the filter is what keeps them out
    unfiltered = build_synthetic_qa(chunks, SyntheticSettings(max_questions=None, per_document=50))
    assert any(normalize_text(i.answer) in by_source.get(i.source, set()) for i in unfiltered)


def test_seeded_sample_is_deterministic_and_capped():
    text = " ".join(f"The value of part {n} was {n} kg." for n in range(40))
    chunks = [hit(text, source=f"docs/{d}.md") for d in range(5)]
    first = build_synthetic_qa(chunks, SyntheticSettings(max_questions=7, per_document=3, seed=1))
    again = build_synthetic_qa(chunks, SyntheticSettings(max_questions=7, per_document=3, seed=1))
    assert first == again and len(first) == 7 and len({i.id for i in first}) == 7

"""Per-answer metrics and bootstrap statistics on hand-made cases with known values."""

from __future__ import annotations

import pytest

from evaluation.client import ReturnedSource
from evaluation.metrics import (
    abstained,
    citation_correct,
    cited_refs,
    contains_fact,
    exact_match,
    retrieval_hit,
    token_f1,
)
from evaluation.stats import bootstrap_mean, paired_difference, percentile
from train.raft import ABSTAIN_ANSWER

SOURCES = [
    ReturnedSource(1, "docs/manuals/hx220.md", "c1", "Tighten the HX-220 flange bolts to 45 Nm."),
    ReturnedSource(2, "docs/policies/badges.md", "c2", "Lost badges are replaced by the security desk."),
]


def test_exact_match_normalises_case_punctuation_articles_and_citations():
    assert exact_match("45 nm [1].", "45 Nm") == 1.0
    assert exact_match("An  apple!", "apple") == 1.0
    assert exact_match("The answer is 45 Nm [1].", "45 Nm") == 0.0


def test_token_f1_known_values():
    # prediction tokens: 45 nm in star pattern (5, "a" dropped); gold: 45 nm -> P=2/5, R=1, F1=4/7
    assert token_f1("45 Nm in a star pattern [1]", "45 Nm") == pytest.approx(4 / 7)
    assert token_f1("bolts 45", "45 Nm bolts torque") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert token_f1("nothing shared", "45 Nm") == 0.0
    assert token_f1("", "45 Nm") == 0.0 and token_f1("the", "a") == 1.0  # both empty after normalisation


def test_contains_fact_is_whole_word_and_ignores_citations():
    assert contains_fact("It opens at 6 bar[1].", "6 bar") == 1.0
    assert contains_fact("It opens at 16 bar.", "6 bar") == 0.0
    assert contains_fact("SECURITY-DESK staff", "security desk") == 0.0  # punctuation is removed, not spaced
    assert contains_fact("the Security Desk, building C", "security desk") == 1.0


def test_citations_are_parsed_in_order_and_checked_against_what_was_retrieved():
    assert cited_refs("See [2] and [1], again [2]; not [x]") == [2, 1]
    fact = "45 Nm"
    assert citation_correct("45 Nm [1].", SOURCES, fact) == 1.0
    assert citation_correct("45 Nm [2].", SOURCES, fact) == 0.0  # cites a passage without the fact
    assert citation_correct("45 Nm [2][1].", SOURCES, fact) == 1.0  # one cited passage states it
    assert citation_correct("45 Nm [1][5].", SOURCES, fact) == 0.0  # [5] was never retrieved
    assert citation_correct("45 Nm.", SOURCES, fact) == 0.0  # uncited
    assert citation_correct("45 Nm [1].", [], fact) == 0.0


def test_retrieval_hit_matches_gold_source_by_path_suffix():
    assert retrieval_hit(SOURCES, "manuals/hx220.md") == 1.0
    assert retrieval_hit(SOURCES, "manuals/pump.md") == 0.0
    assert retrieval_hit([], "manuals/hx220.md") == 0.0
    assert retrieval_hit(SOURCES, None) is None


def test_abstention_detects_the_raft_and_prompt_wordings():
    assert abstained(ABSTAIN_ANSWER) == 1.0
    assert abstained("I don't know.") == 1.0 and abstained("The context does not mention it.") == 1.0
    assert abstained("It is 45 Nm [1].") == 0.0


def test_bootstrap_interval_known_cases():
    constant = bootstrap_mean([1.0, 1.0, 1.0])
    assert (constant.mean, constant.low, constant.high, constant.n) == (1.0, 1.0, 1.0, 3)
    half = bootstrap_mean([0.0, 1.0] * 10, resamples=2000, seed=1)
    assert half.mean == 0.5 and 0.25 < half.low < 0.4 and 0.6 < half.high < 0.75  # +-1.96*sqrt(.25/20) = +-0.22
    assert bootstrap_mean([0.0, 1.0] * 10, resamples=2000, seed=1) == half  # deterministic per seed
    assert half.excludes_zero  # 0.5 +- 0.22 lies above 0
    with pytest.raises(ValueError):
        bootstrap_mean([])


def test_paired_difference_removes_question_difficulty():
    hard_and_easy = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9] * 3
    better = [x + 0.1 for x in hard_and_easy]
    d = paired_difference(better, hard_and_easy)
    assert d.mean == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    assert d.excludes_zero
    # unpaired, the two routes' intervals overlap: the pairing is what shows the win
    assert bootstrap_mean(better).low < bootstrap_mean(hard_and_easy).high
    partial = paired_difference([1.0, None, 0.0], [0.0, 1.0, None])
    assert partial.n == 1 and partial.mean == 1.0
    assert paired_difference([None], [1.0]) is None
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 0.0])


def test_percentiles():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_quoted_replies_are_scored_on_their_short_answer():
    from modeling.rag_prompt import final_answer, quoted_answer

    reply = quoted_answer("The bolts take 45 Nm in a cross pattern.", "45 Nm [2].")
    assert final_answer(reply) == "45 Nm [2]."
    assert final_answer("It is 45 Nm [1].") == "It is 45 Nm [1]."  # no quote: the whole reply
    assert final_answer("##begin_quote## The bolts take 45 Nm") == ""  # cut inside the quote: no answer yet
    wrong = quoted_answer("The bolts take 45 Nm.", "60 Nm [1].")
    assert contains_fact(final_answer(wrong), "45 Nm") == 0.0  # a quote holding the fact is not an answer

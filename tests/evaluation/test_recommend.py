"""The recommendation rule on hand-made measured numbers."""

from __future__ import annotations

import pytest

from evaluation.recommend import recommend
from evaluation.stats import Estimate

WIN = Estimate(0.3, 0.1, 0.5, 40)
TIE = Estimate(0.05, -0.1, 0.2, 40)
LOSS = Estimate(-0.3, -0.5, -0.1, 40)
SCORES = {"base": Estimate(0.2, 0.1, 0.3, 40), "rag": Estimate(0.5, 0.4, 0.6, 40),
          "finetuned": Estimate(0.4, 0.3, 0.5, 40), "hybrid": Estimate(0.7, 0.6, 0.8, 40)}


def diffs(rag_base=TIE, ft_base=TIE, hybrid_rag=TIE, hybrid_ft=TIE, hybrid_base=TIE, ft_rag=TIE):
    return {("rag", "base"): rag_base, ("finetuned", "base"): ft_base, ("hybrid", "base"): hybrid_base,
            ("finetuned", "rag"): ft_rag, ("hybrid", "rag"): hybrid_rag, ("hybrid", "finetuned"): hybrid_ft}


@pytest.mark.parametrize(
    ("measured", "data_changes", "route"),
    [
        (diffs(rag_base=WIN, ft_base=WIN, hybrid_rag=WIN, hybrid_ft=WIN, hybrid_base=WIN), False, "hybrid"),
        (diffs(rag_base=WIN, hybrid_base=WIN, hybrid_ft=WIN), False, "rag"),  # the adapter adds nothing over RAG
        (diffs(rag_base=WIN, hybrid_base=WIN), False, "rag"),
        (diffs(ft_base=WIN, hybrid_base=WIN), False, "finetuned"),
        (diffs(hybrid_rag=WIN, ft_base=TIE, rag_base=WIN), False, "hybrid"),  # the adapter adds over retrieval
        (diffs(rag_base=WIN, ft_base=WIN, hybrid_base=WIN), False, "rag"),  # ...but here it adds nothing over RAG
        (diffs(), False, "base"),
        (diffs(), True, "rag"),  # changing data forces retrieval
        (diffs(ft_base=WIN, hybrid_rag=WIN), True, "hybrid"),
    ],
)
def test_rules(measured, data_changes, route):
    assert recommend(SCORES, measured, metric="f1", data_changes=data_changes).route == route


def test_reasons_carry_the_numbers_and_the_rule():
    rec = recommend(SCORES, diffs(rag_base=WIN), metric="contains_fact")
    assert rec.route == "rag" and rec.metric == "contains_fact"
    assert "rag vs base: +0.300 contains_fact (95% CI +0.100 to +0.500, 40 questions)" in rec.reasons[0]
    assert "no measurable difference" in rec.reasons[1]
    assert rec.reasons[-1].startswith("rule: retrieval is needed; the adapter adds nothing")


def test_a_route_measurably_worse_than_another_is_never_recommended():
    # no single route beats the base model, but hybrid does: the rules alone would say "base"
    scores = {**SCORES, "base": Estimate(0.1, 0.0, 0.2, 40)}
    rec = recommend(scores, diffs(hybrid_base=WIN), metric="f1")
    assert "rule: neither retrieval nor fine-tuning beats the base model measurably" in rec.reasons[-2]
    assert rec.route == "hybrid" and "base is measurably worse than hybrid: recommending hybrid" in rec.reasons[-1]


def test_reversed_pairs_are_read_with_the_sign_flipped():
    rec = recommend(SCORES, {("base", "rag"): LOSS}, metric="f1")  # base - rag < 0  <=>  rag beats base
    assert rec.route == "rag"


def test_missing_routes_and_bad_metric():
    rec = recommend({k: v for k, v in SCORES.items() if k != "base"}, diffs(), metric="f1")
    assert rec.route is None and "base" in rec.reasons[0]
    with pytest.raises(ValueError, match="decision metric"):
        recommend(SCORES, diffs(), metric="latency")

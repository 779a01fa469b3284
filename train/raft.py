"""RAFT training data: questions answered from retrieved passages, gold mixed with distractors.

RAFT (Zhang et al., 2024, "RAFT: Adapting Language Model to Domain Specific RAG") trains the
model on the prompt it will see at inference: the question plus a handful of retrieved passages,
of which one (the "oracle") holds the answer and the rest are distractors. For a fraction
``1 - p_gold`` of the examples the oracle is left out, so the model cannot learn "the answer is
always in there" and learns to judge the passages instead. For each question this builder

1. finds the gold chunk: the chunk of the QA item's ``source`` document (any document when no
   source is given) that best matches question + answer, preferring one containing the ``fact``;
2. retrieves for the question with the same search the server runs (the retrieval config's, or
   ``--mode``), and keeps the
   hits that are not the gold chunk and do not contain the fact as distractors (an
   answer-bearing chunk is not a distractor; it would make "cite [n]" ambiguous);
3. writes ``build_rag_messages(question, passages)`` (the exact prompt of the ``/rag`` and
   ``/hybrid`` routes, ``modeling/rag_prompt.py``) and an assistant turn that answers and cites
   the gold passage as ``[n]``. With ``quote`` (default, the paper's chain of thought) the turn
   first quotes the span of the gold passage that states the fact,
   ``##begin_quote## ... ##end_quote##``, then gives ``Answer: <short answer> [n]`` on its own
   line: copying the evidence first is easier for a small model than finding and rephrasing it
   at once, and the short answer with its citation stays the last line of every reply
   (``modeling.rag_prompt.final_answer`` reads it back; the evaluation scores that part).

The passage order is a knob (``order``). ``shuffled`` (default) is the paper's: the gold
passage at a random place among distractors drawn at random from the question's hits.
``retrieval`` trains as the server serves: the distractors are the question's best-ranked hits
(with the server's reranker, when it has one), in rank order, and the gold passage sits at the
rank the search gives it. The server puts the passage that answers first more often than not
(BM25 on COVID-QA: for 91 of 152 held-out questions), which a shuffled training context never
shows the adapter.

A context always holds ``distractors + 1`` passages (gold + k distractors, or k + 1 distractors
without gold, as in the paper), so ``--distractors 3`` matches the server's default ``top_k: 4``.

Without the gold passage the assistant turn is a knob (``no_gold``):

* ``abstain`` (default): "... I do not know.", exactly what DEFAULT_RAG_SYSTEM, the system prompt
  sent with every RAG request, tells the model to do. Training on answers the prompt forbids
  would teach the adapter to ignore its instructions, and every answer it gives stays traceable
  to a cited passage, the promise of the RAG and hybrid routes.
* ``memorize``: the paper's choice: answer anyway (no citation, since no passage supports it), so
  the adapter memorises domain facts and survives retrieval misses, at the price of uncited
  answers. Use it when the questions at inference repeat the training facts.

``python -m train.raft --collection NAME --qa qa.jsonl --out raft.jsonl`` writes chat JSONL
(``{"messages": [system, user, assistant]}``) for the trainer (loss on the assistant turn).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from modeling.rag_prompt import Passage, build_rag_messages, quoted_answer
from modeling.settings import StrictModel
from retrieval.api import Retriever
from retrieval.errors import RetrievalError
from retrieval.reports import Hit
from qa import QAFormatError, QAItem, SourceNotFoundError, load_qa, mentions, normalize_text, resolve_source, write_jsonl

ABSTAIN_ANSWER = "The passages do not contain the answer, so I do not know."
NoGold = Literal["abstain", "memorize"]
ContextOrder = Literal["shuffled", "retrieval"]


class RaftSettings(StrictModel):
    distractors: int = Field(3, ge=0, le=20, description="distractor passages next to the gold one")
    p_gold: float = Field(0.8, ge=0.0, le=1.0, description="fraction of examples whose context holds the gold passage")
    seed: int = 0
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(
        None, description="search mode; None = the retrieval config's search.mode, which the server searches with")
    order: ContextOrder = Field("shuffled", description="passage order in a context: shuffled (the paper) | "
                                "retrieval (the server's: its top-ranked distractors, in rank order)")
    no_gold: NoGold = Field("abstain", description="assistant turn without the gold passage: abstain | memorize")
    copies: int = Field(1, ge=1, le=100, description="examples per question, each with its own distractor draw")
    pool_size: int = Field(12, ge=1, le=100, description="hits retrieved per question to draw distractors from")
    quote: bool = Field(True, description="quote the gold passage's supporting span before the short answer")
    quote_words: int = Field(32, ge=4, le=200, description="longest quote, in words (cut around the fact)")


@dataclass
class RaftExample:
    qa_id: str
    messages: list[dict[str, str]]
    gold_ref: int | None  # the [n] of the gold passage; None when it was left out
    passage_chunk_ids: list[str]

    def to_row(self) -> dict:
        """A training line: the trainer reads ``messages`` and ignores the rest (kept for audits)."""
        return {"messages": self.messages, "qa_id": self.qa_id, "gold_ref": self.gold_ref}


@dataclass
class RaftStats:
    examples: int = 0
    with_gold: int = 0
    without_gold: int = 0
    gold_without_fact: list[str] = field(default_factory=list)  # ids whose gold chunk lacks the literal fact
    short_contexts: int = 0  # too few distractors found to fill the context

    def summary(self) -> str:
        text = f"{self.examples} examples ({self.with_gold} with the gold passage, {self.without_gold} without)"
        if self.short_contexts:
            text += f"; {self.short_contexts} with fewer passages than asked (small collection)"
        if self.gold_without_fact:
            text += f"; gold chunk lacks the literal fact for: {', '.join(self.gold_without_fact[:10])}"
        return text


@dataclass
class _Prepared:
    item: QAItem
    gold: Hit
    pool: list[Hit]  # the question's hits that may be distractors, best first
    gold_slot: int | None  # pool hits the question's own search ranks above the gold chunk (None: gold not in its hits)


def cite(answer: str, ref: int) -> str:
    """``"It is 45 Nm."`` -> ``"It is 45 Nm [2]."``: the ``[n]`` format the RAG prompt asks for."""
    answer = answer.strip()
    if answer and answer[-1] in ".!?":
        return f"{answer[:-1]} [{ref}]{answer[-1]}"
    return f"{answer} [{ref}]"


_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


def supporting_span(text: str, fact: str, max_words: int, row: bool = False) -> str:
    """The part of a passage that states ``fact``: its sentence (a table row's label line and the
    line holding the value), cut to ``max_words`` around the fact. Falls back to the start of
    the passage when the fact is not found literally (normalisation differences)."""
    pieces = [p.strip() for p in _SENTENCE.split(text) if p.strip()]
    holding = [i for i, p in enumerate(pieces) if mentions(p, fact)]
    if not holding:
        return " ".join(" ".join(pieces).split()[:max_words])
    chosen = [pieces[0], pieces[holding[0]]] if row and holding[0] > 0 else [pieces[holding[0]]]
    words = "; ".join(chosen).split()
    if len(words) <= max_words:
        return " ".join(words)
    wanted = normalize_text(fact).split()
    first = next((i for i in range(len(words)) if normalize_text(words[i]) == (wanted[0] if wanted else "")), 0)
    start = max(0, min(first - max_words // 3, len(words) - max_words))
    return " ".join(words[start : start + max_words])


def gold_reply(item: QAItem, gold: Hit, ref: int, settings: RaftSettings) -> str:
    """The assistant turn for a context holding the gold passage as ``[ref]``."""
    answer = cite(item.answer, ref)
    if not settings.quote:
        return answer
    return quoted_answer(supporting_span(gold.text, item.gold_fact, settings.quote_words, row=gold.row >= 0), answer)


def _find_gold(item: QAItem, retriever: Retriever, settings: RaftSettings, sources: list[str]) -> tuple[Hit, bool]:
    filters = None
    if item.source:
        filters = [("source", "==", resolve_source(item.source, sources))]
    hits = retriever.search(f"{item.question}\n{item.answer}", mode=settings.mode, top_k=8, filters=filters, rerank=False)
    if not hits:
        where = f"document {item.source!r}" if item.source else "the collection"
        raise SourceNotFoundError(f"question {item.id!r}: {where} returned no chunks; is it ingested?")
    with_fact = [h for h in hits if mentions(h.text, item.gold_fact)]
    return (with_fact or hits)[0], bool(with_fact)


def _prepare(items: Sequence[QAItem], retriever: Retriever, settings: RaftSettings, stats: RaftStats) -> list[_Prepared]:
    sources = [e.source for e in retriever.documents() if e.state == "done"]
    prepared = []
    for item in items:
        gold, has_fact = _find_gold(item, retriever, settings, sources)
        if not has_fact:
            stats.gold_without_fact.append(item.id)
        # the server's search (its reranker too) when the context keeps the server's order
        rerank = None if settings.order == "retrieval" else False
        hits = retriever.search(item.question, mode=settings.mode, top_k=settings.pool_size, rerank=rerank)
        pool = [h for h in hits if h.chunk_id != gold.chunk_id and not mentions(h.text, item.gold_fact)]
        ids = [h.chunk_id for h in hits]
        pooled = {h.chunk_id for h in pool}
        gold_slot = sum(i in pooled for i in ids[: ids.index(gold.chunk_id)]) if gold.chunk_id in ids else None
        prepared.append(_Prepared(item, gold, pool, gold_slot))
    return prepared


def _distractors(p: _Prepared, needed: int, everything: list[Hit], rng: random.Random, top: bool) -> list[Hit]:
    """``needed`` distractors: this question's hits (its best ones when ``top``, else drawn at random),
    padded from other questions' hits."""
    if top:
        chosen = p.pool[:needed]
    else:
        chosen = rng.sample(p.pool, needed) if len(p.pool) >= needed else list(p.pool)
    if len(chosen) < needed:
        taken = {h.chunk_id for h in chosen} | {p.gold.chunk_id}
        spare = [h for h in everything if h.chunk_id not in taken and not mentions(h.text, p.item.gold_fact)]
        spare = list({h.chunk_id: h for h in spare}.values())
        chosen += rng.sample(spare, min(needed - len(chosen), len(spare)))
    return chosen


def build_raft_examples(
    items: Sequence[QAItem], retriever: Retriever, settings: RaftSettings | None = None
) -> tuple[list[RaftExample], RaftStats]:
    """RAFT chat examples for ``items`` over ``retriever``'s collection (deterministic per seed).

    Exactly ``round(p_gold * n)`` of the ``n = len(items) * copies`` examples hold the gold
    passage (a per-example coin would make small datasets swing far from ``p_gold``).
    """
    settings = settings or RaftSettings()
    stats = RaftStats()
    prepared = _prepare(items, retriever, settings, stats)
    everything = [h for p in prepared for h in (p.gold, *p.pool)]
    rng = random.Random(settings.seed)
    slots = [p for p in prepared for _ in range(settings.copies)]
    order = list(range(len(slots)))
    rng.shuffle(order)
    with_gold = set(order[: round(settings.p_gold * len(slots))])

    examples = []
    for index, p in enumerate(slots):
        keep_gold = index in with_gold
        needed = settings.distractors + (0 if keep_gold else 1)  # the context size never reveals the gold
        chosen = _distractors(p, needed, everything, rng, top=settings.order == "retrieval")
        stats.short_contexts += len(chosen) < needed
        if settings.order == "retrieval":
            passages = list(chosen)  # best first, as the server shows them
            if keep_gold:  # at its own rank; one the search missed goes anywhere
                slot = p.gold_slot if p.gold_slot is not None else rng.randrange(len(passages) + 1)
                passages.insert(min(slot, len(passages)), p.gold)
        else:
            passages = [*chosen, p.gold] if keep_gold else chosen
            rng.shuffle(passages)
        gold_ref = passages.index(p.gold) + 1 if keep_gold else None
        if gold_ref is not None:
            reply = gold_reply(p.item, p.gold, gold_ref, settings)
        else:
            reply = ABSTAIN_ANSWER if settings.no_gold == "abstain" else p.item.answer.strip()
        messages = build_rag_messages(
            p.item.question, [Passage(text=h.text, source=h.source, section=h.section) for h in passages]
        )
        messages.append({"role": "assistant", "content": reply})
        examples.append(RaftExample(p.item.id, messages, gold_ref, [h.chunk_id for h in passages]))
        stats.examples += 1
        stats.with_gold += keep_gold
        stats.without_gold += not keep_gold
    return examples, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.raft", description="RAFT chat data (question + gold/distractor passages -> cited answer)."
    )
    parser.add_argument("--collection", required=True, help="the Milvus collection the server retrieves from")
    parser.add_argument("--qa", required=True, help="QA JSONL: {id, question, answer, source?, fact?} per line")
    parser.add_argument("--out", required=True, help="output chat JSONL")
    parser.add_argument("--uri", default=None, help="Milvus URI (default: the retrieval config's, Milvus Lite under data/)")
    parser.add_argument("--retrieval-config", default=None, help="retrieval YAML (must name the collection's embedder)")
    defaults = RaftSettings()
    parser.add_argument("--distractors", type=int, default=defaults.distractors)
    parser.add_argument("--p-gold", type=float, default=defaults.p_gold)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default=defaults.mode,
                        help="search mode (default: the retrieval config's)")
    parser.add_argument("--order", choices=["shuffled", "retrieval"], default=defaults.order,
                        help="passage order in a context (see the module docstring)")
    parser.add_argument("--no-gold", choices=["abstain", "memorize"], default=defaults.no_gold,
                        help="answer when the gold passage is left out (see the module docstring)")
    parser.add_argument("--copies", type=int, default=defaults.copies)
    parser.add_argument("--no-quote", action="store_true", help="answer without quoting the gold span first")
    args = parser.parse_args(argv)
    try:
        settings = RaftSettings(distractors=args.distractors, p_gold=args.p_gold, seed=args.seed, mode=args.mode,
                                no_gold=args.no_gold, copies=args.copies, quote=not args.no_quote, order=args.order)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        items = load_qa(args.qa)
        kwargs = {"collection": args.collection, "uri": args.uri}
        with (Retriever.from_yaml(args.retrieval_config, **kwargs) if args.retrieval_config else Retriever(**kwargs)) as kb:
            examples, stats = build_raft_examples(items, kb, settings)
    except (QAFormatError, SourceNotFoundError, RetrievalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_jsonl(args.out, (e.to_row() for e in examples))
    print(f"wrote {args.out}: {stats.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

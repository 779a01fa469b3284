"""The one prompt format for answering from retrieved passages.

The hybrid route only works if the adapter was trained on exactly the prompt the server
sends, so the RAG endpoint, the hybrid endpoint and the RAFT training-data builder all
build their messages here. Passages are numbered ``[1]``, ``[2]`` ...; answers cite them
that way, and the caller maps numbers back to the chunks it retrieved.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

DEFAULT_RAG_SYSTEM = (
    "You are a domain expert assistant. Answer the question using only the numbered context "
    "passages. Cite the passages you used like [1]. If the passages do not contain the answer, "
    "say that you do not know."
)


class Passage(BaseModel):
    """One retrieved chunk as the model sees it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    text: str
    source: str = ""
    section: str = ""


def format_passages(passages: Sequence[Passage]) -> str:
    blocks = []
    for number, p in enumerate(passages, start=1):
        origin = " > ".join(x for x in (p.source, p.section) if x)
        header = f"[{number}] ({origin})" if origin else f"[{number}]"
        blocks.append(f"{header}\n{p.text.strip()}")
    return "\n\n".join(blocks)


def build_rag_messages(
    question: str, passages: Sequence[Passage], system: str | None = DEFAULT_RAG_SYSTEM
) -> list[dict[str, str]]:
    """System + user messages asking ``question`` over ``passages`` (no passages: plain question)."""
    messages = [{"role": "system", "content": system}] if system else []
    if passages:
        content = f"Context:\n{format_passages(passages)}\n\nQuestion: {question.strip()}"
    else:
        content = question.strip()
    messages.append({"role": "user", "content": content})
    return messages


# Answers that quote their evidence first (RAFT's chain of thought, Zhang et al., 2024): the
# adapter copies the supporting span of the cited passage between these markers, then gives the
# short answer with its citation on a line of its own. Training data is written by
# ``quoted_answer`` and answers are read back by ``final_answer``, so both sides agree.
QUOTE_BEGIN = "##begin_quote##"
QUOTE_END = "##end_quote##"
ANSWER_PREFIX = "Answer:"


def quoted_answer(quote: str, answer: str) -> str:
    """``##begin_quote## <span> ##end_quote##\\nAnswer: <answer>`` (the answer carries its ``[n]``)."""
    return f"{QUOTE_BEGIN} {' '.join(quote.split())} {QUOTE_END}\n{ANSWER_PREFIX} {answer.strip()}"


def final_answer(text: str) -> str:
    """The short answer of a reply: what follows the last quote (and ``Answer:``), else the whole reply.

    A reply that opened a quote and never closed it (cut by ``max_tokens``) has no answer yet: "".
    Replies without quotes (base model, plain RAG) are returned unchanged.
    """
    if QUOTE_END in text:
        text = text.rsplit(QUOTE_END, 1)[1]
    elif QUOTE_BEGIN in text:
        return ""
    text = text.strip()
    return text[len(ANSWER_PREFIX):].strip() if text.startswith(ANSWER_PREFIX) else text

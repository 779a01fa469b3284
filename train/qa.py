"""Plain instruction data (question -> answer) from a QA file: the fine-tuned-only route's data.

The QA format itself (``QAItem``, ``load_qa``, what "contains the fact" means) lives in the
shared ``qa`` package, which training, evaluation, retrieval quality and the pipeline all import.

``python -m train.qa --qa qa.jsonl --out instruct.jsonl`` writes chat JSONL whose user turn is
the bare question, exactly what the ``/finetuned`` route sends (no system prompt, no context).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Literal

from qa import QAFormatError, QAItem, load_qa, write_jsonl

InstructionFormat = Literal["chat", "instruction"]


def build_instruction_examples(items: Sequence[QAItem], fmt: InstructionFormat = "chat") -> list[dict]:
    """Question -> answer training rows for the fine-tuned-only route (no context, no citations).

    ``chat`` rows (``{"messages": [user, assistant]}``) carry no system turn because the
    ``/finetuned`` route sends the bare question; ``instruction`` rows are ``{instruction, output}``.
    Both carry ``qa_id`` for audits; the trainer ignores keys it does not read.
    """
    if fmt == "chat":
        return [
            {"messages": [{"role": "user", "content": item.question.strip()},
                          {"role": "assistant", "content": item.answer.strip()}], "qa_id": item.id}
            for item in items
        ]
    if fmt == "instruction":
        return [{"instruction": item.question.strip(), "output": item.answer.strip(), "qa_id": item.id} for item in items]
    raise ValueError(f"unknown instruction format {fmt!r}; use 'chat' or 'instruction'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.qa", description="Plain instruction data (question -> answer) from a QA file.")
    parser.add_argument("--qa", required=True, help="QA JSONL: {id, question, answer, source?, fact?} per line")
    parser.add_argument("--out", required=True, help="output JSONL")
    parser.add_argument("--format", choices=["chat", "instruction"], default="chat",
                        help="chat: {messages: [user, assistant]} (default); instruction: {instruction, output}")
    args = parser.parse_args(argv)
    try:
        items = load_qa(args.qa)
    except QAFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = write_jsonl(args.out, build_instruction_examples(items, args.format))
    print(f"wrote {count} {args.format} examples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Read training JSONL into chats, checking every line before any training starts.

Two line formats (``data.format: auto`` tells them apart per line):

* chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
* instruction: ``{"instruction": "...", "input": "..." (optional), "output": "...", "system": "..." (optional)}``,
  which becomes ``[system], user = instruction (+ blank line + input), assistant = output``.

Other top-level keys (ids, sources) are ignored. A malformed line is reported as
``file:line: what is wrong``; all bad lines (up to a limit) are listed at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from modeling.chat import ChatMessage
from train.errors import DataFormatError

MAX_REPORTED_ERRORS = 20
CHAT_HINT = 'expected {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
INSTRUCTION_HINT = 'expected {"instruction": "...", "input": "...", "output": "..."} ("input" and "system" optional)'


@dataclass(frozen=True)
class ChatRecord:
    """One training conversation and where it came from (``file:line``)."""

    messages: tuple[dict[str, str], ...]
    where: str


def _chat(raw: dict) -> tuple[dict[str, str], ...]:
    messages = raw["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"'messages' must be a non-empty list; {CHAT_HINT}")
    out = []
    for i, message in enumerate(messages):
        try:
            m = ChatMessage.model_validate(message)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"messages[{i}]: {problems} (each message is {{'role': system|user|assistant, 'content': str}})") from None
        out.append({"role": m.role, "content": m.content})
    roles = [m["role"] for m in out]
    if "assistant" not in roles:
        raise ValueError("no assistant message: there is nothing to learn from this line (loss is on assistant turns only)")
    if "user" not in roles[: roles.index("assistant")]:
        raise ValueError("the first assistant message must follow a user message")
    if any(not m["content"].strip() for m in out if m["role"] == "assistant"):
        raise ValueError("an assistant message is empty")
    return tuple(out)


def _instruction(raw: dict) -> tuple[dict[str, str], ...]:
    for key in ("instruction", "output"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"'{key}' must be a non-empty string; {INSTRUCTION_HINT}")
    for key in ("input", "system"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ValueError(f"'{key}' must be a string when given; {INSTRUCTION_HINT}")
    prompt = raw["instruction"].strip()
    if (raw.get("input") or "").strip():
        prompt = f"{prompt}\n\n{raw['input'].strip()}"
    messages = [{"role": "system", "content": raw["system"]}] if (raw.get("system") or "").strip() else []
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": raw["output"]}]
    return tuple(messages)


def parse_line(text: str, fmt: Literal["auto", "chat", "instruction"]) -> tuple[dict[str, str], ...]:
    """Messages of one JSONL line; raises ``ValueError`` saying what is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object") from None
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    is_chat, is_instruction = "messages" in raw, "instruction" in raw or "output" in raw
    if is_chat and is_instruction:
        raise ValueError("has both 'messages' and 'instruction'/'output'; use one format per line")
    if fmt == "chat" or (fmt == "auto" and is_chat):
        if not is_chat:
            raise ValueError(f"no 'messages' key (data.format is chat); {CHAT_HINT}")
        return _chat(raw)
    if fmt == "instruction" or is_instruction:
        return _instruction(raw)
    raise ValueError(f"neither a chat nor an instruction record (keys: {', '.join(raw) or 'none'}); {CHAT_HINT}, or {INSTRUCTION_HINT}")


def read_records(files: Sequence[str | Path], fmt: Literal["auto", "chat", "instruction"] = "auto") -> list[ChatRecord]:
    """Every conversation in ``files``, or ``DataFormatError`` listing each bad ``file:line``."""
    records: list[ChatRecord] = []
    errors: list[str] = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise DataFormatError(f"training data file {path} not found (data.train_files); paths are relative to {Path.cwd()}")
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    records.append(ChatRecord(parse_line(line, fmt), where))
                except ValueError as exc:
                    errors.append(f"{where}: {exc}")
    if errors:
        shown = "\n".join(f"  {e}" for e in errors[:MAX_REPORTED_ERRORS])
        more = f"\n  ... and {len(errors) - MAX_REPORTED_ERRORS} more" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise DataFormatError(f"{len(errors)} malformed line(s) in the training data; nothing was trained:\n{shown}{more}")
    if not records:
        raise DataFormatError(f"the training data ({', '.join(map(str, files))}) holds no examples")
    return records

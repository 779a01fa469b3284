"""From generated token ids to text: incremental, cut at stop strings, whitespace as the final text.

The streamed pieces of a request always concatenate to its final text, which is the decoded
answer cut at the first stop string and stripped: leading whitespace is never sent, trailing
whitespace is held until more text follows it, and the last ``len(longest stop) - 1``
characters are held until it is clear they do not begin a stop string. A token that ends in
the middle of a multi-byte character decodes to U+FFFD; it is held until the character is
complete.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


class TextAssembler:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: tuple[str, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.ids: list[int] = []
        self.text = ""  # everything decoded so far, cut at a stop string once one appears
        self.sent = 0  # characters of the final text already handed out as pieces
        self.stopped = False
        self._searched = 0  # decoded characters already searched for stop strings

    def add(self, token_id: int) -> str:
        """Take one generated token; return the new piece of text that is safe to send (maybe "")."""
        if self.stopped:
            return ""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""  # an incomplete character; the next token completes it
        self.text = text
        if self.stops:
            start = max(0, self._searched - self.hold)  # a stop string completed now starts here or later
            found = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
            self._searched = len(text)
            if found:
                self.text = text[: min(found)]
                self.stopped = True
                return ""  # the rest goes out through final()
        visible = self.text.lstrip()
        safe = visible[: len(visible) - self.hold] if self.hold else visible
        return self._send(safe.rstrip())

    def final(self) -> str:
        """The whole answer; :meth:`tail` is what of it has not been sent yet."""
        return self.text.strip()

    def tail(self) -> str:
        return self._send(self.final())

    def _send(self, upto: str) -> str:
        piece = upto[self.sent :]
        self.sent = max(self.sent, len(upto))
        return piece

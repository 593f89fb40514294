"""Incremental detokenization that never emits half a UTF-8 character, with stop-string handling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class IncrementalDetokenizer:
    """Turns a growing list of output token ids into text deltas.

    Text is decoded over a short window of recent tokens (so each step is O(1), not O(output)); a delta is
    emitted only once it no longer ends in an incomplete multi-byte character (U+FFFD). Stop strings end
    the text before the stop; text that could be the start of a stop string is held back until it is not.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = (), skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""  # all text decoded so far (held-back part included)
        self.emitted = 0  # characters of ``text`` already returned
        self.prefix_offset = 0
        self.read_offset = 0
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)

    def add(self, token_ids: Sequence[int]) -> str:
        """Append tokens; return the newly final text. After a stop string matched, returns ''."""
        if self.stopped:
            return ""
        self.ids.extend(token_ids)
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        full = self._decode(self.ids[self.prefix_offset :])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.text += full[len(prefix) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return self._release(final=False)

    def flush(self, keep_partial: bool = False) -> str:
        """The request finished: return whatever text is still held back. A trailing partial character
        is dropped, or with ``keep_partial`` kept as the tokenizer decodes it (U+FFFD), so that the whole
        text equals a one-shot decode of all tokens."""
        if self.stopped:
            return ""
        if keep_partial and self.read_offset < len(self.ids):
            prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
            self.text += self._decode(self.ids[self.prefix_offset :])[len(prefix) :]
            self.prefix_offset = self.read_offset = len(self.ids)
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        if self.stop:
            start = max(self.emitted - max(len(s) for s in self.stop), 0)
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.stopped = True
                self.text = self.text[: min(hits)]
                return self._take(len(self.text))
            if not final:
                return self._take(len(self.text) - self._held_back())
        return self._take(len(self.text))

    def _held_back(self) -> int:
        """Length of the longest text suffix that is a proper prefix of some stop string."""
        longest = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self.text)), longest, -1):
                if self.text.endswith(s[:k]):
                    longest = k
                    break
        return longest

    def _take(self, end: int) -> str:
        end = max(end, self.emitted)
        delta = self.text[self.emitted : end]
        self.emitted = end
        return delta

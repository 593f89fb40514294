"""Incremental detokenization that never emits half a UTF-8 character, with stop strings and patterns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from minisgl_core.text.stops import DEFAULT_REGEX_WINDOW, StopMatcher


class IncrementalDetokenizer:
    """Turns a growing list of output token ids into text deltas.

    Text is decoded over a short window of recent tokens (so each step is O(1), not O(output)); a delta is
    emitted only once it no longer ends in an incomplete multi-byte character (U+FFFD). Stop strings end
    the text before the stop; text that could be the start of a stop string is held back until it is not.
    A ``stop_regex`` match ends the text after the match (searched in the last ``regex_window`` characters).
    The cost per token does not depend on the number or length of the stop strings (:class:`StopMatcher`).
    After a stop, :attr:`matched` is the stop string or pattern that ended the text. Stops are not looked
    for in the text of the first ``min_tokens`` tokens: those are always returned whole.
    """

    def __init__(
        self, tokenizer: Any, stop: Sequence[str] = (), skip_special_tokens: bool = True,
        stop_regex: Sequence[str] = (), regex_window: int = DEFAULT_REGEX_WINDOW, min_tokens: int = 0,
    ) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.matcher = StopMatcher(stop, stop_regex, regex_window) if stop or stop_regex else None
        self.matched: str | None = None
        self.min_tokens = min_tokens
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
        matcher = self.matcher
        if matcher is not None and len(self.ids) <= self.min_tokens:
            matcher.skip(len(self.text) - matcher.pos)  # too early to stop: nothing is held back either
        elif matcher is not None:
            hit = matcher.feed(self.text[matcher.pos :])
            if hit is not None:
                self.stopped = True
                self.matched = hit.matched
                self.text = self.text[: hit.end]
                return self._take(len(self.text))
            if not final:
                return self._take(len(self.text) - matcher.held)
        return self._take(len(self.text))

    def _take(self, end: int) -> str:
        end = max(end, self.emitted)
        delta = self.text[self.emitted : end]
        self.emitted = end
        return delta

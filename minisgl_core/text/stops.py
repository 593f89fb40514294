"""Stop strings and patterns found in text that arrives piece by piece, at a cost per character independent
of the number and length of the stop strings.

Stop strings form one Aho-Corasick automaton (built once, linear in their total length); a character advances
it by amortised O(1) steps, and its state's depth is how much of the text's end could still begin a stop
string (what a stream holds back). Patterns (``stop_regex``) are compiled once and searched only in the last
``window`` characters when text arrives, all of them within ``REGEX_BUDGET_S`` per piece of text: each gets
an equal share, and a pattern that exceeds its share is dropped for the request (with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import regex

logger = logging.getLogger("minisgl.text")
DEFAULT_REGEX_WINDOW = 256
REGEX_BUDGET_S = 0.004


class StopHit(NamedTuple):
    end: int
    """Where the text ends (a stop string is cut off, a pattern's match kept)."""
    matched: str
    """The stop string or the pattern."""


class StopMatcher:
    """:meth:`feed` text; the first stop string (earliest end, then longest) or pattern match ends it.
    :attr:`held`: how many of the last characters fed could begin a stop string."""

    def __init__(self, stop: Sequence[str] = (), stop_regex: Sequence[str] = (), window: int = DEFAULT_REGEX_WINDOW):
        goto: list[dict[str, int]] = [{}]
        depth, word = [0], [""]  # word: the longest stop string ending in this state ("" = none)
        for w in stop:
            s = 0
            for ch in w:
                if ch not in goto[s]:
                    goto[s][ch] = len(goto)
                    goto.append({})
                    depth.append(depth[s] + 1)
                    word.append("")
                s = goto[s][ch]
            word[s] = w
        fail = [0] * len(goto)
        queue = list(goto[0].values())
        for s in queue:  # breadth first: a failure link is set before the children's need it
            for ch, t in goto[s].items():
                f = fail[s]
                while f and ch not in goto[f]:
                    f = fail[f]
                fail[t] = goto[f].get(ch, 0) if s else 0
                word[t] = word[t] or word[fail[t]]
                queue.append(t)
        self.goto, self.fail, self.depth, self.word = goto, fail, depth, word
        self.patterns = [(p, regex.compile(p)) for p in stop_regex if p]
        self.window = window
        self.state = self.pos = 0  # automaton state; characters fed so far
        self.tail = ""  # the last ``window`` characters, for the patterns

    @property
    def held(self) -> int:
        return self.depth[self.state]

    def skip(self, count: int) -> None:
        """Pass over the next ``count`` characters without matching them (text that may not stop the output,
        such as that of the first ``min_tokens`` tokens): matches start after them."""
        self.state, self.pos, self.tail = 0, self.pos + count, ""

    def feed(self, text: str) -> StopHit | None:
        """Advance over ``text``; the hit that ends the text, if any (then stop feeding)."""
        goto, fail, word = self.goto, self.fail, self.word
        s, hit = self.state, None
        for i, ch in enumerate(text):
            while s and ch not in goto[s]:
                s = fail[s]
            s = goto[s].get(ch, 0)
            if word[s]:
                hit = StopHit(self.pos + i + 1 - len(word[s]), word[s])
                text = text[: i + 1 - len(word[s])]  # patterns may only end before it
                break
        self.state, self.pos = s, self.pos + len(text)
        if self.patterns and text:
            self.tail = (self.tail + text)[-self.window :] if self.window > 0 else ""
            hit = self._search() or hit
        return hit

    def _search(self) -> StopHit | None:
        best: StopHit | None = None
        base = self.pos - len(self.tail)
        share = REGEX_BUDGET_S / len(self.patterns)
        for item in list(self.patterns):
            try:
                m = item[1].search(self.tail, timeout=share)
            except TimeoutError:
                logger.warning("stop_regex %r took over %.1f ms; ignored for this request", item[0][:80], share * 1e3)
                self.patterns.remove(item)
                continue
            if m is not None and (best is None or base + m.end() < best.end):
                best = StopHit(base + m.end(), item[0])
        return best

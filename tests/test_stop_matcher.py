"""StopMatcher (Aho-Corasick stop strings, windowed stop patterns) against a plain search."""

from __future__ import annotations

import random

from minisgl_core.text.stops import StopMatcher


def naive(text: str, stops: list[str]) -> tuple[int, str] | None:
    """Earliest end, then longest: (cut position, stop)."""
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0:
            key = (i + len(s), -len(s))
            if best is None or key < best[0]:
                best = (key, (i, s))
    return None if best is None else best[1]


def held(text: str, stops: list[str]) -> int:
    return max([k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])], default=0)


def test_matches_a_plain_search_piece_by_piece() -> None:
    rng = random.Random(0)
    for _ in range(400):
        stops = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 6))]
        text = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 40)))
        m = StopMatcher(stops)
        pos, hit = 0, None
        while pos < len(text) and hit is None:
            piece = text[pos : pos + rng.randint(1, 4)]
            hit = m.feed(piece)
            pos += len(piece)
            if hit is None:
                assert m.held == held(text[:pos], stops), (stops, text[:pos])
        want = naive(text[:pos], stops)
        assert (None if hit is None else (hit.end, hit.matched)) == want, (stops, text)


def test_patterns_keep_the_match_and_search_only_the_window() -> None:
    m = StopMatcher(stop_regex=[r"\d{3}"], window=8)
    assert m.feed("ab12") is None
    hit = m.feed("3xyz")
    assert hit is not None and hit.end == 5 and hit.matched == r"\d{3}"
    m = StopMatcher(stop_regex=[r"^a"], window=4)  # the window starts after text that left it
    assert m.feed("bbbb") is None and m.feed("aaaa") is not None


def test_string_before_pattern_wins() -> None:
    m = StopMatcher(["xy"], [r"z+"])
    hit = m.feed("__xy__zz")
    assert hit is not None and (hit.end, hit.matched) == (2, "xy")
    m = StopMatcher(["xy"], [r"z"])
    hit = m.feed("_z_xy")
    assert hit is not None and (hit.end, hit.matched) == (2, "z")


def test_catastrophic_pattern_is_dropped_not_run_forever() -> None:
    m = StopMatcher(stop_regex=[r"(a|aa)+$b"], window=256)
    assert m.feed("a" * 200) is None
    assert m.patterns == [] or m.feed("c") is None

"""Incremental detokenization: UTF-8 safety and stop strings across token boundaries."""

from __future__ import annotations

import pytest

from minisgl_core.testing.tiny_models import byte_tokenizer
from minisgl_core.text import IncrementalDetokenizer


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def stream(tok, text: str, stop=()) -> tuple[list[str], IncrementalDetokenizer]:
    detok = IncrementalDetokenizer(tok, stop)
    deltas = [detok.add([t]) for t in tok.encode(text, add_special_tokens=False)]
    deltas.append(detok.flush())
    return deltas, detok


def test_multibyte_characters_are_never_split(tok) -> None:
    text = "héllo wörld – 你好 🙂!"
    deltas, _ = stream(tok, text)
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert len(tok.encode("🙂", add_special_tokens=False)) == 4  # one byte per token


def test_stop_string_split_across_tokens(tok) -> None:
    deltas, detok = stream(tok, "one two STOP three", stop=["STOP"])
    assert "".join(deltas) == "one two "
    assert detok.stopped


def test_partial_stop_prefix_is_released_when_it_does_not_complete(tok) -> None:
    deltas, detok = stream(tok, "a ST b STO c", stop=["STOP"])
    assert "".join(deltas) == "a ST b STO c"
    assert not detok.stopped


def test_earliest_of_several_stops_wins(tok) -> None:
    deltas, _ = stream(tok, "xx END yy HALT", stop=["HALT", "END"])
    assert "".join(deltas) == "xx "


def test_special_tokens_skipped(tok) -> None:
    ids = tok.encode("hi", add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]
    detok = IncrementalDetokenizer(tok)
    assert detok.add(ids) + detok.flush() == "hi"


@pytest.mark.parametrize(
    ("min_tokens", "cut"), [(0, "a"), (1, "a"), (2, "abca"), (4, "abca"), (5, "abcabca"), (8, None)]
)
def test_stops_are_not_looked_for_in_the_first_min_tokens(tok, min_tokens: int, cut: str | None) -> None:
    """One token per character, "b" is tokens 2, 5 and 8: a stop in the text of the first ``min_tokens``
    tokens is passed over, a later one still ends the text (a stop string is cut, a pattern's match kept)."""
    for stops, regex in ((["b"], []), ([], ["b"])):
        detok = IncrementalDetokenizer(tok, stops, stop_regex=regex, min_tokens=min_tokens)
        text = "".join(detok.add([t]) for t in tok.encode("abcabcabc", add_special_tokens=False)) + detok.flush()
        if cut is None:
            assert (text, detok.matched) == ("abcabcabc", None)
        else:
            assert (text, detok.matched) == (cut + "b" if regex else cut, "b")

"""Server building blocks in-process: message encoding, prompt validation, detokenizer worker, status line."""

from __future__ import annotations

import msgspec
import pytest

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.detokenizer_worker import Detokenizer
from minisgl_core.server.messages import (
    TO_API,
    TO_TOKENIZER,
    DetokRequest,
    EngineInfo,
    EngineOutputs,
    EngineStats,
    TokenizeRequest,
    TokenUpdate,
    WorkerReady,
    encode,
)
from minisgl_core.server.stats_log import StatsLogger
from minisgl_core.server.tokenizer_worker import PromptError, PromptTokenizer
from minisgl_core.testing.tiny_models import byte_tokenizer


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def test_messages_round_trip_with_sampling_params() -> None:
    req = TokenizeRequest(["1", "2"], [SamplingParams(temperature=0.5, stop=["x"], seed=3)] * 2, text="hi")
    back = msgspec.msgpack.decode(encode(req), type=TO_TOKENIZER)
    assert back == req and isinstance(back.params[0], SamplingParams)
    ready = msgspec.msgpack.decode(encode(WorkerReady("engine", 7, EngineInfo(64, 100))), type=TO_API)
    assert ready.info.max_model_len == 64
    bad = encode(TokenizeRequest(["1"], [SamplingParams()], text="hi")).replace(b"temperature", b"temperaturX")
    assert msgspec.msgpack.decode(bad, type=TO_TOKENIZER).params[0].temperature == 1.0  # unknown keys ignored


def test_prompt_tokenizer_limits(tok) -> None:
    pt = PromptTokenizer(tok, EngineInfo(max_model_len=64, vocab_size=len(tok)))
    reqs = pt.build(TokenizeRequest(["a", "b"], [SamplingParams(), SamplingParams(seed=1)], text="hello"))
    assert [r.rid for r in reqs] == ["a", "b"] and reqs[0].prompt_ids == tok.encode("hello")
    assert reqs[0].params.max_tokens == 64 - 5  # no max_tokens: the rest of the context
    chat = pt.build(
        TokenizeRequest(["c"], [SamplingParams()], messages=[{"role": "user", "content": "x"}], max_tokens=2)
    )
    assert chat[0].params.max_tokens == 2 and len(chat[0].prompt_ids) > 1
    cases = [
        (TokenizeRequest(["d"], [SamplingParams()], text=""), "prompt", "empty"),
        (TokenizeRequest(["d"], [SamplingParams()], token_ids=[1] * 64), "prompt", "maximum context length"),
        (TokenizeRequest(["d"], [SamplingParams()], token_ids=[1, 2], max_tokens=63), "max_tokens", "requested 65"),
        (TokenizeRequest(["d"], [SamplingParams()], token_ids=[10**6]), "prompt", "token ids"),
    ]
    for req, param, message in cases:
        with pytest.raises(PromptError, match=message) as err:
            pt.build(req)
        assert err.value.param == param


def _run(detok: Detokenizer, rid: str, ids: list[int], finish_last: str | None = "length"):
    texts, reasons, aborts = [], [], []
    for k, t in enumerate(ids):
        reason = finish_last if k == len(ids) - 1 else None
        outs, ab = detok.process(EngineOutputs([], [TokenUpdate(rid, [t], reason)]))
        texts += [o.text for o in outs]
        reasons += [o.finish_reason for o in outs]
        aborts += ab
    return texts, reasons, aborts


def test_detokenizer_is_incremental_utf8_safe_and_stops(tok) -> None:
    text = "héllo wörld ✓ done"
    ids = tok.encode(text)
    detok = Detokenizer(tok)
    detok.process(EngineOutputs([DetokRequest("r", 3, [], True, False)], []))
    texts, reasons, aborts = _run(detok, "r", ids)
    assert "".join(texts) == text and all("\ufffd" not in t for t in texts)
    assert reasons[-1] == "length" and aborts == [] and "r" not in detok.states
    # a stop string spanning several tokens ends the request here and asks the engine to abort it
    detok.process(EngineOutputs([DetokRequest("s", 3, ["wörld"], True, False)], []))
    texts, reasons, aborts = _run(detok, "s", ids, finish_last=None)
    assert "".join(texts) == "héllo " and "stop" in reasons and aborts == ["s"]
    assert detok.states == {}  # later updates for it are dropped
    outs, _ = detok.process(EngineOutputs([], [TokenUpdate("s", [1], None)]))
    assert outs == []


def test_detokenizer_final_partial_character_matches_one_shot_decode(tok) -> None:
    ids = tok.encode("a✓")[:-1]  # cut inside the multi-byte character
    detok = Detokenizer(tok)
    detok.process(EngineOutputs([DetokRequest("r", 1, [], True, False)], []))
    texts, _, _ = _run(detok, "r", ids)
    assert "".join(texts) == tok.decode(ids)


def test_status_line() -> None:
    log = StatsLogger(interval=5.0)
    s0 = EngineStats(1, 0, 100, 90, 5, 5, 0, 0, 0, 0, 0, {"prefill": (1, 512, 0.02), "decode": (4, 4, 0.01)})
    steps = {"prefill": (3, 2560, 0.08), "mixed": (2, 300, 0.05), "decode": (14, 104, 0.04)}
    s1 = EngineStats(3, 2, 100, 50, 10, 40, 1000, 250, 2000, 0, 0, steps)
    log.start(s0)
    line = log.format(s1, 2.0)
    assert "gen throughput 1000.0 tok/s" in line and "running 3, waiting 2" in line
    assert "KV used 40.0%" in line and "prefix-cache hit rate 25.0%" in line
    assert "steps: prefill 2 x 30.0 ms (1024 tok), mixed 2 x 25.0 ms (150 tok), decode 10 x 3.0 ms (10 tok)" in line
    assert not log.due() and not StatsLogger(0).due()


def test_status_lines_keep_their_interval_through_short_idle_pauses() -> None:
    """At light load the engine idles between requests: a pause shorter than the interval does not restart
    it (session 10's 1x run logged 4 lines in 31 s at --log-interval 2), a long idle stretch does."""
    now = [0.0]
    log = StatsLogger(interval=2.0, clock=lambda: now[0])
    stats = EngineStats(1, 0, 100, 90, 5, 5, 0, 0, 0, 0, 0, {})
    log.start(stats)
    now[0] = 1.5
    log.start(stats)  # busy again after a short pause
    now[0] = 2.0
    assert log.due()
    log.log(stats)
    now[0] = 30.0  # idle for 28 s
    log.start(stats)
    now[0] = 31.0
    assert not log.due() and log.last_time == 30.0


def test_generation_coalesces_outputs_per_choice() -> None:
    import asyncio

    from minisgl_core.server.generation import Generation
    from minisgl_core.server.messages import RequestOutput
    from minisgl_core.server.metrics import Metrics

    async def run() -> list:
        gen = Generation(["a", "b"], [0, 0], Metrics(), lambda gen: None)
        gen.push(RequestOutput("a", "he", [1], None, 3, 1))
        gen.push(RequestOutput("b", "x", [9], None, 3, 1))
        gen.push(RequestOutput("a", "llo", [2, 3], "length", 3, 3))
        return await gen.next()

    outs = asyncio.run(run())
    assert [(i, o.text, o.token_ids, o.finish_reason, o.completion_tokens) for i, o in outs] == [
        (0, "hello", [1, 2, 3], "length", 3),
        (1, "x", [9], None, 1),
    ]


def test_generation_hands_out_the_acceptance_alone() -> None:
    """A stream's first event is the engine's acceptance even when tokens arrived before the handler read it
    (under load they did, and the first chunk carried them: echo and continuous usage stats saw it)."""
    import asyncio

    from minisgl_core.server.generation import Generation
    from minisgl_core.server.messages import RequestOutput
    from minisgl_core.server.metrics import Metrics

    async def run() -> list:
        gen = Generation(["a"], [0], Metrics(), lambda gen: None)
        gen.push(RequestOutput("a", "", [], None, 3, 0, prompt_text="Hi"))  # the acceptance (echoed prompt)
        gen.push(RequestOutput("a", "he", [1], None, 3, 1))
        gen.push(RequestOutput("a", "llo", [2, 3], "length", 3, 3))
        first = await asyncio.wait_for(gen.next(), 5)
        assert not gen.finished  # the request finished, but its last outputs were not handed out yet
        second = await asyncio.wait_for(gen.next(), 5)
        assert gen.finished
        return [first, second]

    first, second = asyncio.run(run())
    assert [(i, o.prompt_text, o.token_ids) for i, o in first] == [(0, "Hi", [])]
    assert [(i, o.text, o.token_ids, o.finish_reason) for i, o in second] == [(0, "hello", [1, 2, 3], "length")]

"""The offline API contract: inputs, outputs, finish reasons and clear errors."""

from __future__ import annotations

import pytest

from minisgl_core import LLM, SamplingParams

GREEDY = dict(temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def llm(tiny_qwen3) -> LLM:
    return LLM(str(tiny_qwen3.path), device="cpu", attention="torch", max_model_len=256)


def test_single_and_batched_prompts_text_and_ids(llm: LLM, tiny_qwen3) -> None:
    one = llm.generate("Hello", SamplingParams(max_tokens=8, **GREEDY))
    assert len(one) == 1 and one[0].prompt == "Hello"
    ids = llm.tokenizer.encode("Hello")
    assert one[0].prompt_token_ids == ids
    assert one[0].token_ids == tiny_qwen3.greedy(ids, 8)
    assert one[0].text == llm.tokenizer.decode(one[0].token_ids, skip_special_tokens=True)
    many = llm.generate(["Hello", [1, 2, 3], "Hi"], SamplingParams(max_tokens=8, **GREEDY))
    assert [o.token_ids for o in many] == [
        tiny_qwen3.greedy(ids, 8),
        tiny_qwen3.greedy([1, 2, 3], 8),
        tiny_qwen3.greedy(llm.tokenizer.encode("Hi"), 8),
    ]
    assert llm.generate([5, 6, 7], SamplingParams(max_tokens=4, **GREEDY))[0].prompt_token_ids == [5, 6, 7]


def test_per_prompt_sampling_params(llm: LLM) -> None:
    outs = llm.generate(["a", "b"], [SamplingParams(max_tokens=3, **GREEDY), SamplingParams(max_tokens=5, **GREEDY)])
    assert [len(o.token_ids) for o in outs] == [3, 5]
    with pytest.raises(ValueError, match="2 prompts but 1"):
        llm.generate(["a", "b"], [SamplingParams()])


def test_finish_reasons_eos_stop_token_and_length(llm: LLM, tiny_qwen3) -> None:
    prompt = [10, 20, 30, 40]
    ref = tiny_qwen3.greedy(prompt, 16)
    target = ref[5]
    first = ref.index(target)
    out = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=16, stop_token_ids=[target]))[0]
    assert out.finish_reason == "stop" and out.token_ids == ref[: first + 1]
    eos_before = llm.runtime.model_config.eos_token_ids
    llm.runtime.model_config.eos_token_ids = [target]
    try:
        stopped = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=16))[0]
        ignored = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=16, ignore_eos=True))[0]
    finally:
        llm.runtime.model_config.eos_token_ids = eos_before
    assert stopped.finish_reason == "stop" and stopped.token_ids == ref[: first + 1]
    assert ignored.finish_reason == "length" and ignored.token_ids == ref


def test_stop_strings_trim_the_text(llm: LLM) -> None:
    full = llm.generate("The", SamplingParams(max_tokens=24, **GREEDY))[0].text
    assert len(full) > 6
    stop = full[3:6]
    out = llm.generate("The", SamplingParams(max_tokens=24, stop=[stop], **GREEDY))[0]
    assert out.finish_reason == "stop"
    assert out.text == full[: full.index(stop)]


def test_max_tokens_zero_and_context_limit(llm: LLM) -> None:
    out = llm.generate("abc", SamplingParams(max_tokens=0))[0]
    assert out.token_ids == [] and out.finish_reason == "length"
    capped = llm.generate([1] * 250, SamplingParams(max_tokens=100, **GREEDY))[0]
    assert len(capped.token_ids) == 6 and capped.finish_reason == "length"


@pytest.mark.parametrize(
    "prompt, params, message",
    [
        ("", SamplingParams(), "empty"),
        ([], SamplingParams(), "no prompts"),
        ([1] * 256, SamplingParams(), "context"),
        ([1, 10**9], SamplingParams(), "token ids"),
    ],
)
def test_bad_prompts_raise_value_error(llm: LLM, prompt, params, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        llm.generate(prompt, params)
    assert llm.generate("ok", SamplingParams(max_tokens=2))[0].token_ids  # still usable


def test_negative_max_tokens_raises() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        SamplingParams(max_tokens=-1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attention": "nope"}, "Unknown attention backend 'nope'. Available: .*torch"),
        ({"cache": "nope"}, "Unknown cache policy 'nope'. Available: .*naive.*radix"),
        ({"scheduler": "nope"}, "Unknown scheduler 'nope'. Available: .*fcfs"),
        ({"page_size": 0}, "page_size"),
        ({"dtype": "float64"}, "dtype"),
        ({"bogus": 1}, "unknown EngineConfig setting 'bogus'"),
    ],
)
def test_bad_engine_arguments(tiny_qwen3, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLM(str(tiny_qwen3.path), device="cpu", **kwargs)


def test_missing_model_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a directory|could not be fetched"):
        LLM(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ValueError, match="could not be fetched from the Hugging Face hub"):
        LLM("someone/no-such-model-xyz", device="cpu")


def test_demo_model_runs_out_of_the_box() -> None:
    llm = LLM("demo", device="cpu")
    out = llm.generate("Hello", SamplingParams(max_tokens=5, temperature=0.7, seed=1))[0]
    assert len(out.token_ids) == 5
    again = llm.generate("Hello", SamplingParams(max_tokens=5, temperature=0.7, seed=1))[0]
    assert again.token_ids == out.token_ids  # seeded sampling is reproducible


def test_logprobs_and_penalties_end_to_end(llm: LLM, tiny_qwen3) -> None:
    prompt = [7, 7, 7, 9, 9, 9, 7, 7]
    plain = llm.generate(prompt, SamplingParams(max_tokens=12, logprobs=3, **GREEDY))[0]
    assert plain.token_ids == tiny_qwen3.greedy(prompt, 12)
    assert len(plain.logprobs) == 12
    for tok, lp in zip(plain.token_ids, plain.logprobs):
        assert lp.token_id == tok and len(lp.top) == 3 and lp.top[0][0] == tok and lp.logprob <= 0
        assert lp.top[0][1] >= lp.top[1][1] >= lp.top[2][1]
    penalised = llm.generate(prompt, SamplingParams(max_tokens=12, repetition_penalty=5.0, **GREEDY))[0]
    assert penalised.token_ids != plain.token_ids
    freq = llm.generate(prompt, SamplingParams(max_tokens=12, frequency_penalty=2.0, **GREEDY))[0]
    assert len(set(freq.token_ids)) >= len(set(plain.token_ids))
    assert freq.token_ids != plain.token_ids
    # a later request in the same row slot starts with clean statistics
    again = llm.generate(prompt, SamplingParams(max_tokens=12, logprobs=3, **GREEDY))[0]
    assert again.token_ids == plain.token_ids

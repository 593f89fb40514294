"""``logit_bias`` and ``min_tokens``: applied by the sampler to the rows that ask for them, in greedy and
sampled decoding, in batches mixed with unbiased requests, with and without overlap scheduling."""

from __future__ import annotations

import pytest
import torch

from minisgl_core import LLM, SamplingParams
from minisgl_core.engine.sampler import Sampler, SamplingBatch

VOCAB = 50


def sample(logits: torch.Tensor, params: list[SamplingParams], index: list[int], stops=None) -> list[int]:
    batch = SamplingBatch.build(params, index)
    if batch.any_bias:
        batch.add_bias(params, index, stops or [frozenset()] * len(params))
    return Sampler(torch.device("cpu"), 0).sample(logits, batch).tokens.tolist()


def test_unbiased_batches_build_no_bias_tensor() -> None:
    batch = SamplingBatch.build([SamplingParams(temperature=0)] * 3, [0, 0, 0])
    assert not batch.any_bias and batch.bias is None


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_bias_forces_and_bans_only_its_rows(temperature: float) -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, VOCAB) * 3
    top = logits.argmax(-1).tolist()
    params = [
        SamplingParams(temperature=temperature, logit_bias={7: 100}),
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=temperature, logit_bias={top[2]: -100}),
        SamplingParams(temperature=0.0, logit_bias={"3": 0.0}),  # JSON keys are strings
    ]
    for _ in range(20):
        out = sample(logits, params, [0] * 4)
        assert out[0] == 7 and out[1] == top[1] and out[2] != top[2] and out[3] == top[3]


def test_min_tokens_bans_stop_ids_until_reached() -> None:
    logits = torch.zeros(2, VOCAB)
    logits[:, 5] = 10.0  # token 5 (the "EOS") is by far the most likely
    params = [SamplingParams(temperature=0.0, min_tokens=3), SamplingParams(temperature=0.0)]
    stops = [frozenset({5}), frozenset({5})]
    assert sample(logits, params, [2, 2], stops) == [logits[0, :5].argmax().item(), 5]
    assert sample(logits, params, [3, 3], stops) == [5, 5]


@pytest.mark.parametrize(
    "kwargs",
    [{"logit_bias": {1: 101}}, {"logit_bias": {1: -100.5}}, {"logit_bias": {-1: 1}}, {"logit_bias": {"x": 1}},
     {"logit_bias": [1, 2]}, {"min_tokens": -1}, {"min_tokens": 9, "max_tokens": 8}],
)  # fmt: skip
def test_invalid_bias_and_min_tokens(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SamplingParams(**kwargs)


@pytest.mark.parametrize("disable_overlap", [False, True])
def test_bias_end_to_end_in_mixed_batches(tiny_qwen3, disable_overlap: bool) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", disable_overlap=disable_overlap)
    prompts = [[10, 20, 30], [11, 12], [40, 41, 42, 43], [5, 6, 7]]
    ref = [tiny_qwen3.greedy(p, 8) for p in prompts]
    banned = ref[1][0]
    params = [
        SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True, logit_bias={77: 100}),
        SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True, logit_bias={banned: -100}),
        SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True),
        SamplingParams(temperature=1.0, max_tokens=8, ignore_eos=True, logit_bias={99: 100}, seed=1),
    ]
    out = [o.token_ids for o in llm.generate(prompts, params, use_tqdm=False)]
    assert out[0] == [77] * 8 and out[3] == [99] * 8
    assert banned not in out[1] and len(out[1]) == 8
    assert out[2] == ref[2]  # the unbiased request in the same batches is untouched
    sampled = llm.generate(prompts[:1], SamplingParams(temperature=1.0, max_tokens=30, logit_bias={banned: -100}))
    assert banned not in sampled[0].token_ids
    llm.scheduler.check_memory()


@pytest.mark.parametrize("disable_overlap", [False, True])
def test_min_tokens_end_to_end(tiny_qwen3, disable_overlap: bool) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", disable_overlap=disable_overlap)
    prompt = [10, 20, 30, 40]
    ref = tiny_qwen3.greedy(prompt, 16)
    stop = ref[1]
    plain = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=16, stop_token_ids=[stop]))[0]
    assert plain.token_ids == ref[: ref.index(stop) + 1]
    held = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=16, stop_token_ids=[stop], min_tokens=6))
    assert len(held[0].token_ids) >= 6 and stop not in held[0].token_ids[:6]
    assert held[0].token_ids[:2] == ref[:1] + held[0].token_ids[1:2] and held[0].token_ids[1] != stop
    first = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=1))[0].text  # a stop string in it:
    cut = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=8, stop=[first]))[0]
    kept = llm.generate(prompt, SamplingParams(temperature=0, max_tokens=8, stop=[first], min_tokens=3))[0]
    assert cut.text == "" and kept.text.startswith(first) and len(kept.token_ids) >= 3


def test_bias_token_outside_the_vocabulary_is_refused(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch")
    with pytest.raises(ValueError, match="logit_bias"):
        llm.generate([1, 2], SamplingParams(logit_bias={10**7: 1.0}))


@pytest.mark.gpu
def test_bias_under_cuda_graphs_and_overlap(tmp_path) -> None:
    """Decode steps replay CUDA graphs and overlap stays on; biased rows obey, unbiased rows match a run
    without any biased request."""
    from minisgl_core.testing.tiny_models import save_tiny_model

    save_tiny_model(tmp_path, "qwen3", head_dim=128, num_attention_heads=4, num_key_value_heads=2)
    llm = LLM(str(tmp_path), device="cuda", dtype="bfloat16")
    assert llm.runtime.engine.graph_runner is not None
    prompts = [[i + 1, i + 2, i + 3] for i in range(8)]
    plain = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    ref = [o.token_ids for o in llm.generate(prompts, plain, use_tqdm=False)]
    params = [plain] * 8
    params[1] = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True, logit_bias={42: 100})
    params[2] = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True, logit_bias={43: 100})
    params[3] = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True, logit_bias={ref[3][0]: -100})
    params[4] = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True, logit_bias={ref[4][0]: -100})
    out = [o.token_ids for o in llm.generate(prompts, params, use_tqdm=False)]
    assert out[1] == [42] * 16 and out[2] == [43] * 16
    assert ref[3][0] not in out[3] and ref[4][0] not in out[4]
    assert [out[i] for i in (0, 5, 6, 7)] == [ref[i] for i in (0, 5, 6, 7)]

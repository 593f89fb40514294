"""The batched sampler: greedy, filters, seeds and the distribution it draws from."""

from __future__ import annotations

import pytest
import torch

from minisgl_core import SamplingParams
from minisgl_core.engine.sampler import Sampler, SamplingBatch, seeded_uniform

VOCAB = 50


def batch(params: list[SamplingParams], index: list[int] | None = None) -> SamplingBatch:
    return SamplingBatch.build(params, index or [0] * len(params))


def test_greedy_is_argmax() -> None:
    logits = torch.randn(4, VOCAB)
    out = Sampler(torch.device("cpu"), 0).sample(logits, batch([SamplingParams(temperature=0)] * 4)).tokens
    assert out.tolist() == logits.argmax(-1).tolist()


def test_top_k_1_min_p_1_and_tiny_top_p_are_greedy() -> None:
    logits = torch.randn(3, VOCAB) * 3
    params = [
        SamplingParams(temperature=1.0, top_k=1),
        SamplingParams(temperature=1.0, min_p=1.0),
        SamplingParams(temperature=1.0, top_p=1e-6),
    ]
    sampler = Sampler(torch.device("cpu"), 0)
    for _ in range(20):
        assert sampler.sample(logits, batch(params)).tokens.tolist() == logits.argmax(-1).tolist()


def test_mixed_greedy_and_sampled_rows() -> None:
    logits = torch.randn(2, VOCAB)
    params = [SamplingParams(temperature=0), SamplingParams(temperature=1.0)]
    out = Sampler(torch.device("cpu"), 0).sample(logits, batch(params)).tokens
    assert out[0].item() == logits[0].argmax().item()


def test_seeded_rows_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, VOCAB)
    seeded = SamplingParams(temperature=1.0, seed=42)
    alone = Sampler(torch.device("cpu"), 0).sample(logits, batch([seeded], [7])).tokens
    others = torch.cat([torch.randn(3, VOCAB), logits])
    params = [SamplingParams(temperature=0.8)] * 3 + [seeded]
    together = Sampler(torch.device("cpu"), 123).sample(others, batch(params, [0, 1, 2, 7])).tokens
    assert together[-1].item() == alone[0].item()


def test_seeded_noise_varies_with_seed_and_step() -> None:
    u = seeded_uniform(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 0]), 1000)
    assert ((u > 0) & (u < 1)).all()
    assert not torch.equal(u[0], u[1]) and not torch.equal(u[0], u[2])
    assert abs(u.mean().item() - 0.5) < 0.03


@pytest.mark.parametrize("seeded", [False, True])
def test_sampling_follows_the_distribution(seeded: bool) -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(4000, 1)
    params = [SamplingParams(temperature=1.0, seed=(i if seeded else None)) for i in range(4000)]
    out = Sampler(torch.device("cpu"), 0).sample(logits, batch(params)).tokens
    freq = torch.bincount(out, minlength=4).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03), freq


def test_top_p_and_top_k_restrict_support() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(2000, 1)
    sampler = Sampler(torch.device("cpu"), 0)
    out_p = sampler.sample(logits, batch([SamplingParams(temperature=1.0, top_p=0.7)] * 2000)).tokens
    assert set(out_p.tolist()) == {0, 1}
    out_k = sampler.sample(logits, batch([SamplingParams(temperature=1.0, top_k=3)] * 2000)).tokens
    assert set(out_k.tolist()) == {0, 1, 2}
    out_m = sampler.sample(logits, batch([SamplingParams(temperature=1.0, min_p=0.5)] * 2000)).tokens
    assert set(out_m.tolist()) == {0, 1}


def test_low_temperature_sharpens() -> None:
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2000, 1)
    sampler = Sampler(torch.device("cpu"), 0)
    hot = sampler.sample(logits, batch([SamplingParams(temperature=2.0)] * 2000)).tokens
    cold = sampler.sample(logits, batch([SamplingParams(temperature=0.2)] * 2000)).tokens
    assert (cold == 0).float().mean() > (hot == 0).float().mean() + 0.3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1},
        {"top_p": 0},
        {"top_p": 1.5},
        {"top_k": -2},
        {"min_p": 2},
        {"max_tokens": -1},
        {"stop": [""]},
        {"seed": 1.5},
    ],
)
def test_invalid_sampling_params(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_logprobs_of_the_raw_distribution() -> None:
    logits = torch.randn(3, VOCAB)
    params = [SamplingParams(temperature=0, logprobs=5), SamplingParams(temperature=0.5, logprobs=0), SamplingParams()]
    result = Sampler(torch.device("cpu"), 0).sample(logits, batch(params))
    expected = logits.log_softmax(-1)
    torch.testing.assert_close(result.logprobs, expected.gather(1, result.tokens[:, None])[:, 0])
    top, ids = expected[0].topk(5)
    assert result.top_ids[0].tolist() == ids.tolist()
    torch.testing.assert_close(result.top_logprobs[0], top)
    assert result.logprobs[0] == result.top_logprobs[0, 0]  # greedy picks the most likely token


def test_penalties_discourage_seen_tokens() -> None:
    from minisgl_core.engine.sampler import PenaltyState

    sampler = Sampler(torch.device("cpu"), 0)
    sampler.penalties = PenaltyState(4, VOCAB, torch.device("cpu"))
    logits = torch.zeros(3, VOCAB)
    logits[:, 7] = 2.0
    logits[:, 8] = 1.9
    sampler.penalties.reset(1, torch.tensor([7]), torch.tensor([], dtype=torch.int64))  # 7 in row 1's prompt
    sampler.penalties.reset(2, torch.tensor([1]), torch.tensor([7, 7], dtype=torch.int64))  # 7 generated twice
    params = [
        SamplingParams(temperature=0),
        SamplingParams(temperature=0, repetition_penalty=1.2),
        SamplingParams(temperature=0, frequency_penalty=0.1),
    ]
    out = sampler.sample(logits, SamplingBatch.build(params, [0, 0, 0], rows=[0, 1, 2])).tokens
    assert out.tolist() == [7, 8, 8]
    sampler.penalties.record(torch.tensor([0]), torch.tensor([7]))
    presence = [SamplingParams(temperature=0, presence_penalty=0.5)]
    assert sampler.sample(logits[:1], SamplingBatch.build(presence, [0], rows=[0])).tokens.tolist() == [8]

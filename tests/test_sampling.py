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
    out = Sampler(torch.device("cpu"), 0).sample(logits, batch([SamplingParams(temperature=0)] * 4))
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
        assert sampler.sample(logits, batch(params)).tolist() == logits.argmax(-1).tolist()


def test_mixed_greedy_and_sampled_rows() -> None:
    logits = torch.randn(2, VOCAB)
    params = [SamplingParams(temperature=0), SamplingParams(temperature=1.0)]
    out = Sampler(torch.device("cpu"), 0).sample(logits, batch(params))
    assert out[0].item() == logits[0].argmax().item()


def test_seeded_rows_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, VOCAB)
    seeded = SamplingParams(temperature=1.0, seed=42)
    alone = Sampler(torch.device("cpu"), 0).sample(logits, batch([seeded], [7]))
    others = torch.cat([torch.randn(3, VOCAB), logits])
    params = [SamplingParams(temperature=0.8)] * 3 + [seeded]
    together = Sampler(torch.device("cpu"), 123).sample(others, batch(params, [0, 1, 2, 7]))
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
    out = Sampler(torch.device("cpu"), 0).sample(logits, batch(params))
    freq = torch.bincount(out, minlength=4).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03), freq


def test_top_p_and_top_k_restrict_support() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(2000, 1)
    sampler = Sampler(torch.device("cpu"), 0)
    out_p = sampler.sample(logits, batch([SamplingParams(temperature=1.0, top_p=0.7)] * 2000))
    assert set(out_p.tolist()) == {0, 1}
    out_k = sampler.sample(logits, batch([SamplingParams(temperature=1.0, top_k=3)] * 2000))
    assert set(out_k.tolist()) == {0, 1, 2}
    out_m = sampler.sample(logits, batch([SamplingParams(temperature=1.0, min_p=0.5)] * 2000))
    assert set(out_m.tolist()) == {0, 1}


def test_low_temperature_sharpens() -> None:
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2000, 1)
    sampler = Sampler(torch.device("cpu"), 0)
    hot = sampler.sample(logits, batch([SamplingParams(temperature=2.0)] * 2000))
    cold = sampler.sample(logits, batch([SamplingParams(temperature=0.2)] * 2000))
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

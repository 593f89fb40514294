"""The conformance suites have teeth: plugins with typical bugs fail them, with messages that say what broke."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from minisgl_core import hookimpl
from minisgl_core.builtin.radix_cache import RadixCache
from minisgl_core.builtin.torch_attention import TorchAttention
from minisgl_core.contracts import SchedulingPolicy
from minisgl_core.contracts.cache import CachePolicy
from minisgl_core.plugins import register_plugin, unregister_plugin
from minisgl_core.testing import AttentionBackendSuite, CachePolicySuite, ModelPluginSuite, SchedulerSuite
from minisgl_core.testing.model_suite import Reference
from minisgl_core.testing.tiny_models import save_random_model, tiny_config


class NoPrefixAttention(TorchAttention):
    """Forgets the cached prefix in prefill: attends over the step's own tokens only."""

    def forward(self, q, k, v, layer, batch):  # noqa: ANN001, ANN201
        out, start = torch.empty_like(q), 0
        for q_len in batch.q_lens_host:
            qi, ki, vi = (t[start : start + q_len].transpose(0, 1) for t in (q, k, v))
            oi = torch.nn.functional.scaled_dot_product_attention(
                qi, ki, vi, is_causal=True, scale=layer.scale, enable_gqa=True
            )
            out[start : start + q_len] = oi.transpose(0, 1)
            start += q_len
        return out.reshape(q.shape[0], -1)


class StrayWrite(TorchAttention):
    """Attends correctly, then scribbles over the slot after each new token (another request's KV)."""

    def forward(self, q, k, v, layer, batch):  # noqa: ANN001, ANN201
        out = super().forward(q, k, v, layer, batch)
        self.pool.store(layer.layer_id, batch.out_slots + 1, torch.zeros_like(k), torch.zeros_like(v))
        return out


class IgnoresLocks(RadixCache):
    """Evicts prefixes that running requests still read."""

    def lock(self, handle):  # noqa: ANN001, ANN201
        pass

    def unlock(self, handle):  # noqa: ANN001, ANN201
        pass


class TakesEverything(RadixCache):
    """Claims every offered slot, even for tokens it already holds (a double ownership)."""

    def insert(self, token_ids, slots):  # noqa: ANN001, ANN201
        super().insert(token_ids, slots)
        return 0


class PeeksByMatching(RadixCache):
    """Peeks with the base class's default, ``match_prefix``: it refreshes recency and splits nodes."""

    def peek_prefix_len(self, token_ids):  # noqa: ANN001, ANN201
        return CachePolicy.peek_prefix_len(self, token_ids)


class Stalls(SchedulingPolicy):
    def admission_order(self, view):  # noqa: ANN001, ANN201
        return []


class NewestFirst(SchedulingPolicy):
    def admission_order(self, view):  # noqa: ANN001, ANN201
        return sorted(view.waiting, key=lambda r: -r.arrival)


class Buggy:
    @hookimpl
    def minisgl_register_attention_backends(self, register):  # noqa: ANN001, ANN201
        register("test-no-prefix", NoPrefixAttention, devices=("cpu",))
        register("test-stray-write", StrayWrite, devices=("cpu",))

    @hookimpl
    def minisgl_register_cache_policies(self, register):  # noqa: ANN001, ANN201
        register("test-ignores-locks", IgnoresLocks)
        register("test-takes-everything", TakesEverything)
        register("test-peeks-by-matching", PeeksByMatching)

    @hookimpl
    def minisgl_register_schedulers(self, register):  # noqa: ANN001, ANN201
        register("test-stalls", Stalls)
        register("test-newest-first", NewestFirst)

    @hookimpl
    def minisgl_register_models(self, register):  # noqa: ANN001, ANN201
        register("WrongRopeForCausalLM", wrong_rope_model)


def wrong_rope_model(ctx):  # noqa: ANN001, ANN201
    from minisgl_models.decoder import DecoderForCausalLM

    config = dataclasses.replace(ctx.config, rope_theta=ctx.config.rope_theta * 7)
    return DecoderForCausalLM(dataclasses.replace(ctx, config=config), qk_norm=False)


@pytest.fixture(scope="module", autouse=True)
def buggy_plugin():
    name = register_plugin(Buggy(), name="buggy-test-plugins")
    yield
    unregister_plugin(name)


def suite(base: type, **attrs: object):  # noqa: ANN201 - an instance of a throwaway subclass
    return type("Throwaway", (base,), attrs)()


def test_attention_suite_catches_a_forgotten_prefix_and_a_misplaced_store() -> None:
    forgetful = suite(AttentionBackendSuite, backend="test-no-prefix")
    forgetful.test_prefill(1, (8, 2, 64))  # fresh prompts have no prefix: this bug hides there
    with pytest.raises(AssertionError, match="mixed prefill batch, step 0"):
        forgetful.test_mixed_batch(16, (8, 2, 64))
    misplaced = suite(AttentionBackendSuite, backend="test-stray-write")
    with pytest.raises(AssertionError, match="differs from the reference at slots"):
        misplaced.test_decode(1, (4, 4, 128))


def test_cache_suite_catches_evicted_locks_and_double_ownership() -> None:
    with pytest.raises(AssertionError, match="locked prefix"):
        suite(CachePolicySuite, policy="test-ignores-locks").test_locked_prefix_survives_eviction(4)
    with pytest.raises(AssertionError, match="twice|insert returned"):
        suite(CachePolicySuite, policy="test-takes-everything").test_hits_on_shared_prefixes(1)


def test_cache_suite_catches_a_peek_that_touches_recency() -> None:
    touchy = suite(CachePolicySuite, policy="test-peeks-by-matching")
    with pytest.raises(AssertionError, match="peek_prefix_len changed what is evicted next"):
        touchy.test_peek_is_a_side_effect_free_match(4)


def test_scheduler_suite_reports_a_stall_instead_of_hanging() -> None:
    with pytest.raises(AssertionError, match="livelock"):
        suite(SchedulerSuite, scheduler="test-stalls").test_streaming_arrivals_finish(1)


def test_scheduler_suite_bounds_overtaking() -> None:
    with pytest.raises(AssertionError, match="overtaken by"):
        unfair = suite(SchedulerSuite, scheduler="test-newest-first", max_overtakes=0, max_wait_ratio=100.0)
        unfair.test_fairness_bounds()


def test_model_suite_catches_a_wrong_model(tmp_path) -> None:  # noqa: ANN001
    config = tiny_config("llama")
    config.architectures = ["WrongRopeForCausalLM"]
    reference = Reference(tmp_path, save_random_model(tmp_path, config))
    wrong = suite(ModelPluginSuite, architecture="WrongRopeForCausalLM", new_tokens=8)
    with pytest.raises(AssertionError, match="diverged from transformers"):
        wrong.test_greedy_matches_transformers(reference, "batched")

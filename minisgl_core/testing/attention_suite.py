"""Conformance suite for attention backends: every step is compared with the ``torch`` reference backend.

A backend plugin's whole test::

    import torch
    from minisgl_core.testing import AttentionBackendSuite

    class TestMyAttention(AttentionBackendSuite):
        backend = "my-attn"
        device = "cuda"
        dtype = torch.bfloat16

Each scenario lays requests out over shuffled pages of a random KV pool (:class:`PagedScene`), runs the same
steps through the backend and through the reference (in float32, over a float32 copy of the pool), and
checks the outputs (within ``atol``/``rtol``) and that the backend stored exactly the step's keys and values
at ``out_slots`` and nowhere else. Scenarios: prefill, decode, mixed prefill batches (new prompts, chunk
continuations, one-token extends, prefix-cache hits), chunked prefill after a cached prefix, each over every
page size and head layout; CUDA-graph decode through the engine's graph runner when the backend supports it;
and greedy generation of a tiny random model, which must match the reference token for token.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
import torch

from minisgl_core.contracts.attention import AttentionBackend
from minisgl_core.contracts.batch import Phase
from minisgl_core.kv import KVPool
from minisgl_core.layers.attention import AttentionLayer
from minisgl_core.plugins import ATTENTION, lookup
from minisgl_core.testing.paged_scene import Extend, PagedScene
from minisgl_core.testing.suite_base import ConformanceSuite, dtype_name

DEFAULT_TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}


class AttentionBackendSuite(ConformanceSuite):
    """Checks the backend named :attr:`backend` against :attr:`reference` (see the module docstring)."""

    backend: ClassVar[str] = ""
    """The registered name of the backend under test."""
    reference: ClassVar[str] = "torch"
    dtype: ClassVar[torch.dtype] = torch.float32
    """The KV-cache and activation dtype the backend runs in."""
    head_configs: ClassVar[tuple[tuple[int, int, int], ...]] = ((8, 2, 64), (4, 4, 128))
    """``(query heads, kv heads, head_dim)`` layouts to check (grouped-query and multi-head)."""
    atol: ClassVar[float | None] = None
    rtol: ClassVar[float | None] = None
    """Tolerances against the float32 reference; ``None`` picks one from :attr:`dtype`."""
    check_generation: ClassVar[bool] = True
    """Also generate with a tiny random model and compare tokens with the reference backend."""
    generation_model: ClassVar[dict[str, Any]] = {"head_dim": 64}
    """Config overrides of that tiny Qwen3 (4 query and 2 KV heads); head_dim 64 suits most GPU kernels."""
    params: ClassVar[dict[str, str]] = {"page_size": "page_sizes", "heads": "head_configs"}

    # -- harness ------------------------------------------------------------------------------------------

    def scene(self, page_size: int, heads: tuple[int, int, int] = (8, 2, 64), seed: int = 0) -> PagedScene:
        num_heads, num_kv_heads, head_dim = heads
        return PagedScene(
            num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim, page_size=page_size,
            dtype=self.dtype, device=self.device, seed=seed,
        )  # fmt: skip

    def create(
        self, name: str, scene: PagedScene, pool_dtype: torch.dtype | None = None
    ) -> tuple[AttentionBackend, KVPool]:
        """Instantiate backend ``name`` over ``scene`` (or over a copy of its pool in ``pool_dtype``)."""
        pool = scene.pool if pool_dtype is None else scene.pool_copy(pool_dtype)
        options = self.options if name == self.backend else None
        backend = lookup(ATTENTION, name).create(scene.context(pool, pool_dtype, options))
        assert isinstance(backend, AttentionBackend), f"factory of {name!r} returned {type(backend).__name__}"
        return backend, pool

    def tolerance(self) -> dict[str, float]:
        default = DEFAULT_TOLERANCE.get(self.dtype, 3e-2)
        atol = self.atol if self.atol is not None else default
        return {"atol": atol, "rtol": self.rtol if self.rtol is not None else default}

    def run_steps(self, scene: PagedScene, steps: list[tuple[Phase, list[Extend]]], what: str) -> None:
        """Run ``steps`` through the backend and the reference and compare every layer's output and the
        pool after each step."""
        backend, _ = self.create(self.backend, scene)
        reference, ref_pool = self.create(self.reference, scene, torch.float32)
        layers = [
            AttentionLayer(i, scene.num_heads, scene.num_kv_heads, scene.head_dim) for i in range(scene.num_layers)
        ]
        for n, (phase, extends) in enumerate(steps):
            batch = scene.batch(phase, extends)
            ref_batch = dataclasses.replace(batch)
            batch.attn, ref_batch.attn = backend, reference
            batch.kv_pool, ref_batch.kv_pool = scene.pool, ref_pool
            backend.prepare(batch)
            reference.prepare(ref_batch)
            for layer in layers:
                q, k, v = scene.qkv(batch.num_tokens)
                out = layer(q, k, v, batch)  # stores k/v into the pool, then calls the backend
                expect = layer(q.float(), k.float(), v.float(), ref_batch)
                where = f"{what}, step {n} ({phase.value}), layer {layer.layer_id}"
                assert out.shape == (batch.num_tokens, scene.num_heads * scene.head_dim), f"{where}: shape {out.shape}"
                assert out.dtype == self.dtype, f"{where}: output dtype {out.dtype}, expected {self.dtype}"
                torch.testing.assert_close(out.float(), expect, **self.tolerance(), msg=lambda m, w=where: f"{w}: {m}")
            self.assert_same_pool(scene, ref_pool, f"{what}, step {n}")

    @staticmethod
    def assert_same_pool(scene: PagedScene, ref_pool: KVPool, what: str, skip_slots: int = 0) -> None:
        """The backend stored exactly what the reference stored (``skip_slots``: ignore the first slots)."""
        for layer in range(scene.num_layers):
            for kind in ("k", "v"):
                got = getattr(scene.pool, kind)(layer)[skip_slots:].float()
                want = getattr(ref_pool, kind)(layer)[skip_slots:]
                bad = (got != want).any(dim=-1).any(dim=-1).nonzero().flatten()
                assert bad.numel() == 0, (
                    f"{what}: layer {layer} {kind.upper()} differs from the reference at slots "
                    f"{(bad[:8] + skip_slots).tolist()} (stored at the wrong place, or not exactly as given)"
                )

    # -- scenarios ------------------------------------------------------------------------------------------

    def test_registered_for_device(self) -> None:
        entry = lookup(ATTENTION, self.backend)
        devices = entry.metadata.get("devices", ("cuda",))
        assert torch.device(self.device).type in devices, f"{self.backend!r} registered for {devices}"

    def test_prefill(self, page_size: int, heads: tuple[int, int, int]) -> None:
        scene = self.scene(page_size, heads)
        extends = [Extend(scene.request(n), 0, n) for n in (1, 7, 33, 70, 130)]
        self.run_steps(scene, [(Phase.PREFILL, extends)], "prefill of new prompts")

    def test_decode(self, page_size: int, heads: tuple[int, int, int]) -> None:
        scene = self.scene(page_size, heads)
        reqs = [(scene.request(n), n) for n in (1, 6, 17, 40, 129, 200)]
        steps = [
            (Phase.DECODE, [Extend(r, n - 1, n) for r, n in reqs]),
            (Phase.DECODE, [Extend(r, n, n + 1) for r, n in reqs]),  # crosses page boundaries
            (Phase.DECODE, [Extend(r, n + 1, n + 2) for r, n in reqs[1:4]]),  # a smaller batch
        ]
        self.run_steps(scene, steps, "decode")

    def test_mixed_batch(self, page_size: int, heads: tuple[int, int, int]) -> None:
        scene = self.scene(page_size, heads)
        shared = max(32 // page_size, 1) * page_size
        donor = scene.request(shared + 8)  # computed earlier; its prefix sits in the prefix cache
        hit = scene.request(shared + 9, share=donor, shared_len=shared)
        full_hit = scene.request(shared + 1, share=donor, shared_len=shared)
        new, chunk, one = scene.request(20), scene.request(29), scene.request(31)
        step = [
            Extend(new, 0, 20),  # a new prompt
            Extend(chunk, 13, 29),  # the next chunk of a prompt, not page-aligned
            Extend(one, 30, 31),  # a one-token extend (the last token of a prompt)
            Extend(hit, shared, shared + 9),  # the rest of a prompt after a prefix-cache hit
            Extend(full_hit, shared, shared + 1),  # a hit covering all but the last token
        ]
        decode = [Extend(e.req, e.end, e.end + 1) for e in step]
        self.run_steps(scene, [(Phase.PREFILL, step), (Phase.DECODE, decode)], "mixed prefill batch")

    def test_chunked_prefill_with_prefix(self, page_size: int, heads: tuple[int, int, int]) -> None:
        scene = self.scene(page_size, heads)
        shared = max(32 // page_size, 1) * page_size
        donor = scene.request(shared + 5)
        cached = scene.request(shared + 37, share=donor, shared_len=shared)
        fresh = scene.request(45)
        bounds = [(shared, shared + 16, 0, 16), (shared + 16, shared + 32, 16, 32), (shared + 32, shared + 37, 32, 45)]
        steps = [(Phase.PREFILL, [Extend(cached, a, b), Extend(fresh, c, d)]) for a, b, c, d in bounds]
        steps += [
            (Phase.DECODE, [Extend(cached, shared + 37 + i, shared + 38 + i), Extend(fresh, 45 + i, 46 + i)])
            for i in range(2)
        ]
        self.run_steps(scene, steps, "chunked prefill after a cached prefix")

    def test_cuda_graph_decode(self, page_size: int) -> None:
        """Decode replayed through the engine's CUDA-graph runner (padded batches) matches the reference."""
        scene = self.scene(page_size)
        backend, _ = self.create(self.backend, scene)
        if not backend.supports_cuda_graph or scene.device.type != "cuda":
            pytest.skip("the backend does not capture CUDA graphs on this device")
        from minisgl_core.testing.graph_decode import check_graph_decode

        reference, ref_pool = self.create(self.reference, scene, torch.float32)
        check_graph_decode(scene, backend, reference, ref_pool, self.tolerance(), self.assert_same_pool)

    def test_generation_matches_reference(self, page_size: int) -> None:
        if not self.check_generation:
            pytest.skip("check_generation is off")
        from minisgl_core.contracts.sampling import SamplingParams
        from minisgl_core.llm import LLM
        from minisgl_core.testing.tiny_models import tiny_model_dir

        common = [(7 * i + 3) % 256 for i in range(40)]
        prompts = [common + [1, 2, 3], common + [9] * 20, [5], list(range(70))]
        params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
        kwargs = dict(device=self.device, dtype=dtype_name(self.dtype), page_size=page_size, max_prefill_tokens=32)
        outputs = {}
        for name in (self.reference, self.backend):
            options = self.options if name == self.backend else {}
            model = str(tiny_model_dir("qwen3", **self.generation_model))
            llm = LLM(model, attention=name, attention_options=options, **kwargs)
            first = llm.generate(prompts, params, use_tqdm=False)  # chunked prefill, batched decode
            again = llm.generate(prompts[:2], params, use_tqdm=False)  # prefix-cache hits
            llm.scheduler.check_memory()
            outputs[name] = [o.token_ids for o in first + again]
        assert outputs[self.backend] == outputs[self.reference], "greedy tokens differ from the reference backend"

"""Conformance suite for model plugins: greedy generation must equal transformers token for token on a
tiny random configuration, however the engine batches, chunks, pages and caches.

A model plugin's whole test, for an architecture transformers knows::

    from transformers import LlamaConfig
    from minisgl_core.testing import ModelPluginSuite

    class TestMyModel(ModelPluginSuite):
        architecture = "MyModelForCausalLM"

        def reference_config(self):
            return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, vocab_size=259,
                               architectures=["MyModelForCausalLM"])

The checkpoint is written with random weights (large, so that logits are decisive) and the byte-level test
tokenizer; the transformers model that wrote it is the reference. ``reference_config`` must name
:attr:`architecture` in ``architectures``; ``reference_model_class`` picks the transformers class when
``AutoModelForCausalLM`` cannot (it goes by ``model_type``).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from minisgl_core.plugins import MODEL, lookup
from minisgl_core.testing.suite_base import ConformanceSuite, dtype_name

VARIANTS: dict[str, dict[str, Any]] = {
    "batched": {},
    "chunked-prefill": {"max_prefill_tokens": 16},
    "page-16": {"page_size": 16},
    "memory-pressure": {"num_kv_tokens": 192, "cache": "naive"},
    "no-overlap": {"disable_overlap": True},
}


class ModelPluginSuite(ConformanceSuite):
    """Checks the model registered for :attr:`architecture` against its transformers twin."""

    architecture: ClassVar[str] = ""
    """The Hugging Face ``architectures`` name the plugin registers."""
    tiny_arch: ClassVar[str | None] = None
    """Shortcut for the built-in tiny configs (``"qwen3"``, ``"llama"``) instead of :meth:`reference_config`."""
    new_tokens: ClassVar[int] = 16
    variants: ClassVar[tuple[str, ...]] = tuple(VARIANTS)
    params: ClassVar[dict[str, str]] = {"variant": "variants"}
    dtype: ClassVar[Any] = None
    """Engine dtype (``None``: float32). Token equality is only expected in float32."""

    def reference_config(self) -> Any:
        """The transformers config of the tiny model (``architectures`` = ``[self.architecture]``)."""
        if self.tiny_arch is None:
            raise NotImplementedError("set tiny_arch or override reference_config()")
        from minisgl_core.testing.tiny_models import tiny_config

        return tiny_config(self.tiny_arch)

    def reference_model_class(self) -> Any:
        """The transformers class built from :meth:`reference_config` (``None``: ``AutoModelForCausalLM``)."""
        return None

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls) -> Iterator[Reference]:
        """The checkpoint and its transformers twin, written once per test class."""
        from minisgl_core.testing.tiny_models import save_random_model

        suite = cls()
        config = suite.reference_config()
        assert cls.architecture in (config.architectures or []), "reference_config must name the architecture"
        path = Path(tempfile.mkdtemp(prefix="minisgl-model-suite-"))
        try:
            yield Reference(path, save_random_model(path, config, model_cls=suite.reference_model_class()))
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def prompts(self) -> list[list[int]]:
        rng = random.Random(0)
        system = [rng.randrange(256) for _ in range(37)]
        lengths = (1, 5, 17, 40, 90)
        return [[rng.randrange(256) for _ in range(n)] for n in lengths] + [system + [1, 2], system + [3] * 9]

    def llm(self, path: Path, **overrides: Any):  # noqa: ANN201 - minisgl_core.LLM
        from minisgl_core.llm import LLM

        kwargs: dict[str, Any] = dict(
            device=self.device, attention="torch", dtype=dtype_name(self.dtype) if self.dtype else "float32"
        )
        kwargs.update(overrides)
        return LLM(str(path), **kwargs)

    # -- tests --------------------------------------------------------------------------------------------

    def test_architecture_is_registered_and_built(self, reference: Reference) -> None:
        entry = lookup(MODEL, self.architecture)
        assert entry.name == self.architecture
        model = self.llm(reference.path, load_format="dummy").runtime.engine.model
        built = type(model)
        made_by = getattr(entry.load(), "__module__", None)
        assert made_by is not None and made_by.split(".")[0] == built.__module__.split(".")[0], (
            f"the engine built {built.__module__}.{built.__name__}, not the plugin registered for {self.architecture}"
        )

    def test_greedy_matches_transformers(self, reference: Reference, variant: str) -> None:
        from minisgl_core.contracts.sampling import SamplingParams

        prompts = self.prompts()
        want = [reference.greedy(p, self.new_tokens) for p in prompts]
        llm = self.llm(reference.path, **VARIANTS[variant])
        params = SamplingParams(temperature=0.0, max_tokens=self.new_tokens, ignore_eos=True)
        outs = llm.generate(prompts, params, use_tqdm=False)
        for prompt, out, expect in zip(prompts, outs, want):
            assert out.token_ids == expect, f"{variant}: a prompt of {len(prompt)} tokens diverged from transformers"
        again = llm.generate(prompts[-2:], params, use_tqdm=False)  # from the prefix cache, when it is on
        assert [o.token_ids for o in again] == want[-2:], f"{variant}: second pass diverged"
        llm.scheduler.check_memory()

    def test_checkpoint_shapes_match_the_checkpoint(self, reference: Reference) -> None:
        """``checkpoint_shapes()``, when the model gives it, names every tensor of the checkpoint transformers
        wrote, with its shape (dummy weights are made from it)."""
        shapes = self.llm(reference.path, load_format="dummy").runtime.engine.model.checkpoint_shapes()
        if shapes is None:
            pytest.skip("the model leaves checkpoint shapes to transformers (the default)")
        want = {name: tuple(p.shape) for name, p in reference.model.named_parameters()}
        assert {name: tuple(shape) for name, shape in shapes} == want
        assert len(shapes) == len(want), "a tensor is named twice"

    def test_dummy_weights_load(self, reference: Reference) -> None:
        from minisgl_core.contracts.sampling import SamplingParams

        llm = self.llm(reference.path, load_format="dummy")
        out = llm.generate([1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), use_tqdm=False)[0]
        assert len(out.token_ids) == 4


class Reference:
    """The tiny checkpoint on disk and the transformers model that wrote it, with memoised greedy outputs."""

    def __init__(self, path: Path, model: Any) -> None:
        self.path = path
        self.model = model
        self._greedy: dict[tuple[tuple[int, ...], int], list[int]] = {}

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        from minisgl_core.testing.tiny_models import hf_greedy

        key = (tuple(prompt), n)
        if key not in self._greedy:
            self._greedy[key] = hf_greedy(self.model, prompt, n)
        return self._greedy[key]

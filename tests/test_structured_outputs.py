"""Structured outputs end to end on a tiny random model (which never writes valid JSON by chance): JSON
Schema, JSON object, regex and choice constraints through the scheduler with and without overlap, mixed with
unconstrained requests; bad constraints; a grammar dead end; no mask work for unconstrained batches."""

from __future__ import annotations

import importlib.util
import json
import re

import jsonschema
import pytest
import torch
from grammar_cases import CHOICES, REGEXES, SCHEMAS

from minisgl_core import LLM, SamplingParams, hookimpl
from minisgl_core.contracts import GrammarBackend, GrammarMatcher
from minisgl_core.engine import sampler as sampler_module
from minisgl_core.plugins import register_plugin, unregister_plugin
from minisgl_core.testing import byte_tokenizer, tiny_model_dir

pytest.importorskip("minisgl_xgrammar")
EOS = byte_tokenizer().eos_token_id


@pytest.fixture(scope="module", autouse=True)
def one_thread():  # noqa: ANN201 - a tiny model on a busy machine runs far faster on one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir():  # noqa: ANN201
    return tiny_model_dir("qwen3", eos_token_id=EOS)


HAVE_LLGUIDANCE = importlib.util.find_spec("minisgl_llguidance") is not None and bool(
    importlib.util.find_spec("llguidance")
)


BACKENDS = [
    "xgrammar",
    pytest.param("llguidance", marks=pytest.mark.skipif(not HAVE_LLGUIDANCE, reason="no llguidance")),
]


@pytest.fixture(scope="module", params=BACKENDS)
def llm(model_dir, request: pytest.FixtureRequest) -> LLM:  # noqa: ANN001
    """An engine with each first-party grammar backend (the end-to-end tests below run for both)."""
    return LLM(str(model_dir), device="cpu", attention="torch", grammar_backend=request.param)


def test_100_requests_over_20_schemas_validate(llm: LLM) -> None:
    cases = [(SCHEMAS[i % len(SCHEMAS)], i) for i in range(100)]
    for start in range(0, 100, 25):
        batch = cases[start : start + 25]
        params = [SamplingParams(temperature=1.0, seed=i, max_tokens=300, json_schema=s) for s, i in batch]
        outs = llm.generate([f"request {i}:" for _, i in batch], params, use_tqdm=False)
        for (schema, i), out in zip(batch, outs):
            assert out.finish_reason == "stop", (i, out.text)
            jsonschema.validate(json.loads(out.text), schema)
    llm.scheduler.check_memory()


@pytest.mark.parametrize("disable_overlap", [False, True])
def test_regex_choice_and_json_object_mixed_with_free_requests(model_dir, disable_overlap: bool) -> None:  # noqa: ANN001
    llm = LLM(str(model_dir), device="cpu", attention="torch", disable_overlap=disable_overlap)
    free = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    alone = llm.generate(["free 1", "free 2"], free, use_tqdm=False)
    params, prompts = [], []
    for i, pattern in enumerate(REGEXES):
        params += [SamplingParams(temperature=t, seed=i, max_tokens=60, regex=pattern) for t in (0.0, 1.0)]
    for i, choices in enumerate(CHOICES):
        params += [SamplingParams(temperature=t, seed=i, max_tokens=30, choice=choices) for t in (0.0, 1.0)]
    tok = byte_tokenizer()
    closing = {tok.convert_tokens_to_ids(ch): 8.0 for ch in '"}'}  # free keys would rarely close otherwise
    params += [
        SamplingParams(temperature=1.0, seed=3, max_tokens=300, json_schema={"type": "object"}, logit_bias=closing)
    ]
    prompts = [f"p{i}" for i in range(len(params))]
    outs = llm.generate(["free 1", *prompts, "free 2"], [free, *params, free], use_tqdm=False)
    assert [o.token_ids for o in (outs[0], outs[-1])] == [o.token_ids for o in alone]
    for p, out in zip(params, outs[1:-1]):
        assert out.finish_reason == "stop", out.text
        if p.regex is not None:
            assert re.fullmatch(p.regex, out.text), (p.regex, out.text)
        elif p.choice is not None:
            assert out.text in p.choice
        else:
            assert isinstance(json.loads(out.text), dict)
    llm.scheduler.check_memory()


def test_unconstrained_batches_pay_nothing(llm: LLM, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = sampler_module.apply_bitmask
    monkeypatch.setattr(sampler_module, "apply_bitmask", lambda *a: calls.append(1) or real(*a))
    llm.generate(["a", "b"], SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True), use_tqdm=False)
    assert not calls and not llm.scheduler.grammar.has_live()
    llm.generate(["c"], SamplingParams(temperature=0.0, max_tokens=40, choice=["xyz"]), use_tqdm=False)
    assert calls  # the mask does run for a constrained batch


@pytest.mark.parametrize(
    "kwargs,field",
    [({"regex": "[a-"}, "regex"), ({"grammar": "root ::= nope"}, "grammar"),
     ({"json_schema": {"type": "no-such"}}, "json_schema")],
)  # fmt: skip
def test_bad_constraints_are_value_errors_and_the_engine_goes_on(llm: LLM, kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        llm.generate(["x", "y"], [SamplingParams(max_tokens=4), SamplingParams(max_tokens=4, **kwargs)])
    assert not llm.scheduler.compiling and not llm.scheduler.waiting
    assert llm.generate("x", SamplingParams(max_tokens=4, regex="ab"))[0].text == "ab"


def test_malformed_and_combined_constraints_are_refused() -> None:
    with pytest.raises(ValueError, match="json_schema"):
        SamplingParams(json_schema="{not json")
    with pytest.raises(ValueError, match="regex cannot be combined"):
        SamplingParams(json_schema={"type": "object"}, regex="a")
    with pytest.raises(ValueError, match="choice"):
        SamplingParams(choice=[])


class _DeadEnd(GrammarMatcher):
    """Allows token ``a`` twice, then nothing (a dead end)."""

    def __init__(self) -> None:
        self.n = 0

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        bitmask[row] = 0
        if self.n < 2:
            bitmask[row, ord("a") // 32] = 1 << (ord("a") % 32)

    def accept(self, token: int) -> bool:
        self.n += 1
        return token == ord("a")

    def is_terminated(self) -> bool:
        return False

    def rollback(self, num_tokens: int) -> None:
        self.n -= num_tokens


class _DeadEndBackend(GrammarBackend):
    def __init__(self, ctx) -> None:  # noqa: ANN001
        pass

    def compile(self, constraint):  # noqa: ANN001, ANN201
        return constraint

    def matcher(self, compiled) -> GrammarMatcher:  # noqa: ANN001
        return _DeadEnd()


class _DeadEndPlugin:
    @hookimpl
    def minisgl_register_grammar_backends(self, register) -> None:  # noqa: ANN001
        register("dead-end-test", _DeadEndBackend, description="test backend: dead end after two tokens")


@pytest.mark.parametrize("disable_overlap", [False, True])
def test_a_dead_end_finishes_the_request_with_a_reason(model_dir, disable_overlap: bool) -> None:  # noqa: ANN001
    name = register_plugin(_DeadEndPlugin(), name="dead-end-test-plugin")
    try:
        llm = LLM(str(model_dir), device="cpu", attention="torch", grammar_backend="dead-end-test",
                  disable_overlap=disable_overlap)  # fmt: skip
        # the byte tokenizer's ids are byte values in its alphabet order: token "a" is not id 97, so the
        # first sampled token is whichever id 97 is, and accept() refuses it -> dead end either way
        outs = llm.generate(["x", "y"], [SamplingParams(max_tokens=10, regex="a+"), SamplingParams(max_tokens=5)])
        assert outs[0].finish_reason == "grammar_dead_end" and len(outs[0].token_ids) <= 2
        assert outs[1].finish_reason == "length" and len(outs[1].token_ids) == 5
        llm.scheduler.check_memory()
    finally:
        unregister_plugin(name)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
def test_constrained_decoding_under_cuda_graphs_and_overlap(tmp_path, backend: str) -> None:  # noqa: ANN001
    """On the GPU: decode steps replay CUDA graphs with overlap on; 100 schema requests, regexes and choices
    in one batch validate, and free requests in the same batches match a run without constraints."""
    from minisgl_core.testing import save_tiny_model

    save_tiny_model(tmp_path, "qwen3", head_dim=128, num_attention_heads=4, num_key_value_heads=2, eos_token_id=EOS)
    llm = LLM(str(tmp_path), device="cuda", dtype="bfloat16", grammar_backend=backend)
    assert llm.runtime.engine.graph_runner is not None
    free = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    alone = [o.token_ids for o in llm.generate(["free a", "free b"], free, use_tqdm=False)]
    # a JSON number's fraction may run on (llguidance allows any number of digits, and this bfloat16 random
    # model favours digits: seen on the H200, 300 of them); a bias toward what ends a number lets it close
    tok = byte_tokenizer()
    closing = {tok.convert_tokens_to_ids(ch): 4.0 for ch in ",}"}
    params = [
        SamplingParams(temperature=1.0, seed=i, max_tokens=300, json_schema=SCHEMAS[i % 20], logit_bias=closing)
        for i in range(100)
    ]
    params += [SamplingParams(temperature=1.0, seed=i, max_tokens=60, regex=r) for i, r in enumerate(REGEXES)]
    params += [SamplingParams(temperature=0.0, max_tokens=30, choice=c) for c in CHOICES]
    outs = llm.generate(["free a", *[f"r{i}" for i in range(len(params))], "free b"], [free, *params, free])
    assert [outs[0].token_ids, outs[-1].token_ids] == alone
    for p, out in zip(params, outs[1:-1]):
        assert out.finish_reason == "stop", out.text
        if p.json_schema is not None:
            jsonschema.validate(json.loads(out.text), json.loads(p.json_schema))
        elif p.regex is not None:
            assert re.fullmatch(p.regex, out.text), (p.regex, out.text)
        else:
            assert out.text in p.choice
    llm.scheduler.check_memory()


@pytest.mark.parametrize("backend", BACKENDS)
def test_grammar_fill_benchmark_walks(backend: str) -> None:
    """benchmarks/grammar_fill.py: the benchmark's walk on the 151,936-piece vocabulary only takes allowed
    tokens, and every matcher accepts them (``measure`` asserts it)."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import grammar_fill
    from offline import bytelevel_tokenizer

    from minisgl_core.text import load_tokenizer

    tok = load_tokenizer(str(bytelevel_tokenizer(grammar_fill.VOCAB, Path(tempfile.mkdtemp()))))
    result = grammar_fill.measure(backend, tok, rows=4, steps=5, options={})
    assert result["rows"] == 4 and result["fill_ms_per_step"] > 0 and result["accept_ms_per_step"] > 0

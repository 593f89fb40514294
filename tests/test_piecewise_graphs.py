"""Piecewise graphs' data path on the CPU: a prefill or mixed step padded to its token bucket, its tokens in
the runner's fixed buffers, attention at each cut on the real tokens only, padding's KV in the reserved page
and only the real sampled rows kept. Before capture the runner makes exactly this pass eagerly (the graphs
replay the same buffers; they run on the GPU in tests/test_gpu_engine.py), so greedy output must stay
transformers'."""

from __future__ import annotations

import pytest
import torch

from minisgl_core import LLM, SamplingParams
from minisgl_core.engine.piecewise_graph import PiecewiseGraphRunner

GREEDY = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
PROMPTS = [[(5 * i + j) % 250 for j in range(n)] for i, n in enumerate((3, 40, 5, 70, 12, 33))]
SHARED = [list(range(30, 60)) + [(3 * i + j) % 200 for j in range(n)] for i, n in enumerate((2, 9, 17, 4))]


@pytest.mark.parametrize(("page_size", "max_tokens"), [(1, 20), (4, 20), (4, 12)])
def test_padded_steps_match_transformers(tiny_qwen3, page_size: int, max_tokens: int) -> None:
    llm = LLM(
        str(tiny_qwen3.path), device="cpu", attention="torch", page_size=page_size, max_prefill_tokens=16,
        max_running_requests=4,
    )  # fmt: skip
    engine = llm.runtime.engine
    runner = PiecewiseGraphRunner(
        engine.model, engine.kv_pool, engine.page_table.device_table, page_size, max_tokens, 4, engine.device
    )
    engine.piecewise = runner
    outs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    outs += llm.generate(SHARED, GREEDY, use_tqdm=False)  # prefix-cache hits: attention over cached pages
    assert [o.token_ids for o in outs] == [tiny_qwen3.greedy(p, 8) for p in PROMPTS + SHARED]
    stats = llm.scheduler.step_stats.snapshot()
    prefill_steps = stats["prefill"][0] + stats["mixed"][0]
    assert stats["mixed"][0] > 0, stats
    if max_tokens >= 20:  # every prefill and mixed step fits (16 prompt tokens + 4 decodes)
        assert runner.replays == prefill_steps, (runner.replays, stats)
    else:  # larger steps ran eagerly beside it
        assert 0 < runner.replays < prefill_steps, (runner.replays, stats)
    llm.scheduler.check_memory()


def test_steps_that_do_not_fit_are_refused() -> None:
    runner = PiecewiseGraphRunner(
        lambda batch: batch.input_ids,
        None,
        None,
        1,
        100,
        4,
        torch.device("cpu"),  # type: ignore[arg-type]
    )
    assert runner.sizes == [16, 32, 64, 96, 100]
    assert runner.can_run(100, 4) and runner.can_run(3, 3)
    assert not runner.can_run(101, 1)  # over the largest bucket
    assert not runner.can_run(50, 5)  # more sampled rows than the 4 requests a step can hold


class _FakeGraph:
    """Records the order of capture and replay calls (a CPU stand-in for ``torch.cuda.CUDAGraph``)."""

    log: list[str] = []
    count = 0

    def __init__(self) -> None:
        _FakeGraph.count += 1
        self.name = f"g{_FakeGraph.count}"
        self.open = False

    def capture_begin(self, pool: object = None) -> None:
        assert not any(g.open for g in _OPEN), "a piece began while another was being captured"
        self.open = True
        _OPEN.append(self)

    def capture_end(self) -> None:
        assert self.open
        self.open = False
        _OPEN.remove(self)

    def replay(self) -> None:
        _FakeGraph.log.append(self.name)


_OPEN: list[_FakeGraph] = []


class _Stream:
    def wait_stream(self, other: object) -> None:
        pass


def test_capture_cuts_every_layer_and_replay_interleaves_attention(tiny_qwen3, monkeypatch) -> None:  # noqa: ANN001
    """The capture's bookkeeping, with CUDA's graph API replaced by a recorder: each bucket is one piece per
    attention layer plus one, every capture is closed, and a replay alternates piece, attention (of the layers
    in order, on the real tokens), piece, ..., piece."""
    import contextlib

    for name, value in {
        "CUDAGraph": _FakeGraph, "Stream": lambda device: _Stream(), "current_stream": lambda: _Stream(),
        "stream": lambda s: contextlib.nullcontext(), "graph_pool_handle": lambda: "pool",
        "synchronize": lambda device=None: None, "memory_allocated": lambda device=None: 0,
    }.items():  # fmt: skip
        monkeypatch.setattr(torch.cuda, name, value)
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=16, max_running_requests=4)
    engine = llm.runtime.engine
    runner = PiecewiseGraphRunner(engine.model, engine.kv_pool, engine.page_table.device_table, 1, 20, 4, engine.device)
    runner.capture()
    layers = engine.model_config.num_layers
    assert not _OPEN and sorted(runner.pieces) == [16, 20]
    for tokens in (16, 20):
        assert len(runner.pieces[tokens]) == layers + 1
        assert [layer.layer_id for layer in runner.layers[tokens]] == list(range(layers))
    calls: list[tuple[int, int]] = []

    class Backend:
        def forward(self, q, k, v, layer, batch):  # noqa: ANN001, ANN202
            _FakeGraph.log.append(f"attn{layer.layer_id}")
            calls.append((q.shape[0], batch.num_tokens))
            return torch.zeros(q.shape[0], q.shape[1] * q.shape[2])

    _FakeGraph.log = []
    with torch.inference_mode():  # as the engine runs steps
        logits = runner.run(engine.make_batch(_plan(engine, 17)), Backend())  # type: ignore[arg-type]
    pieces = [g.name for g in runner.pieces[20]]
    expected = [x for i in range(layers) for x in (pieces[i], f"attn{i}")] + [pieces[-1]]
    assert _FakeGraph.log == expected
    assert calls == [(17, 17)] * layers and logits.shape[0] == 1
    assert runner.out_slots[17:20].tolist() == [0, 0, 0]  # padding's KV goes to the reserved page


def _plan(engine, tokens: int):  # noqa: ANN001, ANN202
    from minisgl_core.contracts.batch import Phase
    from minisgl_core.engine import SamplingBatch, StepPlan

    row = engine.page_table.dummy_row
    return StepPlan(
        phase=Phase.PREFILL, rows=[row], q_lens=[tokens], kv_lens=[tokens],
        out_slots=torch.arange(1, tokens + 1, dtype=torch.int64), sample=[0],
        sampling=SamplingBatch.build([SamplingParams(temperature=0.0)], [0], [row]),
        input_ids=torch.zeros(tokens, dtype=torch.int64),
    )  # fmt: skip

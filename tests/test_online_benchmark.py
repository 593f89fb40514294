"""The online serving benchmark (benchmarks/online.py, benchmarks/traces.py): synthetic traces, prompts built
from hash ids, and one small replay against a real server with the demo model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import online  # noqa: E402
import trace_synth  # noqa: E402
import traces  # noqa: E402
from online_report import percentile, summarize  # noqa: E402
from traces import BLOCK_SIZE, PromptBuilder, TraceRequest  # noqa: E402


def by_chat(reqs: list[TraceRequest]) -> dict[int, TraceRequest]:
    return {r.chat_id: r for r in reqs}


@pytest.fixture(scope="module")
def trace() -> list[TraceRequest]:
    return trace_synth.synthesize(
        num_sessions=40, turns=4, min_turns=1, rate=2.0, think_time=3.0, user_len=100, output_len=30,
        system_len=40, num_system_prompts=2, max_context=1024, seed=3,
    )  # fmt: skip


def test_synthetic_trace_schema(trace: list[TraceRequest], tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    traces.save_trace(trace, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == len(trace) > 40
    for d in lines:
        assert {"timestamp", "input_length", "output_length", "hash_ids"} <= d.keys()
        assert isinstance(d["timestamp"], float) and isinstance(d["input_length"], int)
        assert all(isinstance(h, int) for h in d["hash_ids"])
        assert len(d["hash_ids"]) == math.ceil(d["input_length"] / BLOCK_SIZE)
        assert d["input_length"] + d["output_length"] <= 1024
    stamps = [d["timestamp"] for d in lines]
    assert stamps == sorted(stamps)
    assert traces.load_trace(path) == trace
    assert sorted(r.chat_id for r in trace) == list(range(len(trace)))


def test_later_turns_extend_earlier_ones(trace: list[TraceRequest]) -> None:
    chats = by_chat(trace)
    children = [r for r in trace if r.parent_chat_id >= 0]
    assert children and max(r.turn for r in trace) == 4
    builder = PromptBuilder(vocab_size=300)
    for r in children:
        parent = chats[r.parent_chat_id]
        assert r.turn == parent.turn + 1 and r.timestamp >= parent.timestamp
        assert r.hash_ids[: len(parent.hash_ids)] == parent.hash_ids
        assert r.input_length > parent.input_length + parent.output_length  # prompt + output + a new message
        p, c = builder.prompt(parent), builder.prompt(r)
        assert c[: len(p)] == p  # the previous prompt is a real token prefix
    firsts = [r for r in trace if r.turn == 1]
    systems = {tuple(r.hash_ids[:3]) for r in firsts}  # 40 tokens -> 3 shared blocks
    assert len(systems) == 2
    # an unbounded prefix cache could serve each parent's whole prompt (all but one token at most)
    reuse = dict(zip((r.chat_id for r in trace), traces.reusable_tokens(trace)))
    for r in children:
        assert reuse[r.chat_id] >= chats[r.parent_chat_id].input_length


def test_poisson_arrivals_and_lengths() -> None:
    reqs = trace_synth.synthesize(num_sessions=3000, turns=1, rate=4.0, user_len=50, output_len=20, seed=1)
    gaps = [b.timestamp - a.timestamp for a, b in zip(reqs, reqs[1:])]
    assert sum(gaps) / len(gaps) == pytest.approx(0.25, rel=0.08)
    cv = (sum((g - 0.25) ** 2 for g in gaps) / len(gaps)) ** 0.5 / 0.25
    assert cv == pytest.approx(1.0, abs=0.1)  # exponential gaps
    assert sum(r.output_length for r in reqs) / len(reqs) == pytest.approx(20, rel=0.08)
    fixed = trace_synth.synthesize(num_sessions=5, turns=1, user_len=33, output_len=7, dist="fixed")
    assert {(r.input_length, r.output_length) for r in fixed} == {(33, 7)}
    uni = trace_synth.synthesize(num_sessions=200, turns=1, user_len=100, output_len=10, dist="uniform", spread=0.2)
    assert all(80 <= r.input_length <= 120 for r in uni)


def test_time_scaling(trace: list[TraceRequest], tmp_path: Path) -> None:
    half = traces.scale_times(trace, 0.5)
    t0 = trace[0].timestamp
    for a, b in zip(trace, half):
        assert b.timestamp - t0 == pytest.approx((a.timestamp - t0) * 0.5)
        assert (a.input_length, a.hash_ids) == (b.input_length, b.hash_ids)
    assert traces.request_rate(half) == pytest.approx(2 * traces.request_rate(trace))
    assert traces.request_rate(trace, 0.5) == pytest.approx(traces.request_rate(half))
    src, dst = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    traces.save_trace(trace, src)
    cmd = [sys.executable, str(BENCH / "traces.py"), "scale", str(src), "--time-scale", "2", "--out", str(dst)]
    subprocess.run(cmd, check=True, capture_output=True)
    doubled = traces.load_trace(dst)
    assert doubled[-1].timestamp - doubled[0].timestamp == pytest.approx(2 * (trace[-1].timestamp - t0), rel=1e-5)
    ms = tmp_path / "ms.jsonl"
    ms.write_text('{"timestamp": 1500, "input_length": 3, "output_length": 2, "hash_ids": [9]}\n')
    assert traces.load_trace(ms, timestamp_unit="ms")[0].timestamp == 1.5


def test_prompts_from_hash_ids() -> None:
    b = PromptBuilder(vocab_size=1000, seed=0)
    x = b.prompt(TraceRequest(0.0, 40, 1, [1, 2, 3]))
    y = b.prompt(TraceRequest(0.0, 50, 1, [1, 2, 7, 8]))
    z = b.prompt(TraceRequest(0.0, 20, 1, [5, 2]))
    assert (len(x), len(y), len(z)) == (40, 50, 20)
    assert x[:32] == y[:32] and x[32:40] != y[32:40]  # shared leading ids -> identical token prefix
    assert z[16:20] == x[16:20] and z[:16] != x[:16]  # the same id at another place: the same block tokens
    assert all(0 <= t < 1000 for t in x + y + z)
    assert PromptBuilder(vocab_size=1000, seed=0).prompt(TraceRequest(0.0, 40, 1, [1, 2, 3])) == x
    assert PromptBuilder(vocab_size=1000, seed=0, salt=1).prompt(TraceRequest(0.0, 40, 1, [1, 2, 3]))[:16] != x[:16]
    short = TraceRequest(0.0, 40, 1, [1])  # fewer blocks than tokens: padded, unique per request index
    p0, p1 = b.prompt(short, 0), b.prompt(short, 1)
    assert len(p0) == 40 and p0[:16] == p1[:16] == x[:16] and p0[16:] != p1[16:]


def test_summary_statistics() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    reqs = [TraceRequest(float(i), 10, 5, [i]) for i in range(3)]
    rec = {"scheduled_s": 0.0, "sent_s": 0.0, "input_length": 10, "output_length": 5, "prompt_tokens": 10,
           "completion_tokens": 5, "cached_tokens": 2, "ttft": 0.1, "tpot": 0.01, "e2e": 0.14,
           "error": None}  # fmt: skip
    failed = dict(rec, error="HTTP 400", completion_tokens=None, ttft=None, tpot=None)
    s = summarize([rec, dict(rec, ttft=0.3), failed], wall=2.0, time_scale=1.0, reqs=reqs)
    assert (s["completed"], s["failed"], s["output_tokens"], s["cached_tokens"]) == (2, 1, 10, 4)
    assert s["request_rate"] == 1.0 and s["request_throughput"] == 1.0 and s["output_throughput"] == 5.0
    assert s["ttft_s"]["mean"] == pytest.approx(0.2) and s["ttft_s"]["p50"] == pytest.approx(0.2)
    assert s["output_length_mismatches"] == 0 and s["errors"] == ["HTTP 400"]


def test_plotting_is_lazy() -> None:
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import online; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_replay_against_demo_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two 2-turn sessions; the second turn waits for the first, so the radix cache serves its prompt."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    reqs = trace_synth.synthesize(num_sessions=2, turns=2, rate=20.0, think_time=0.05, user_len=40, output_len=6,
                             dist="fixed", seed=0)  # fmt: skip
    path = tmp_path / "trace.jsonl"
    traces.save_trace(reqs, path)
    out = tmp_path / "out"
    argv = ["--trace", str(path), "--launch", "--model demo --device cpu --attention torch --log-interval 0",
            "--wait-for-parent", "--warmup", "1", "--out-dir", str(out), "--label", "t", "--server-timeout", "120",
            "--request-timeout", "60", "--record", str(tmp_path / "runs.jsonl"), "--commit", "abc1234"]  # fmt: skip
    assert online.main(argv) == 0
    s = json.loads((out / "t-ts1.summary.json").read_text())
    assert (s["num_requests"], s["completed"], s["failed"]) == (4, 4, 0)
    assert s["output_length_mismatches"] == 0 and s["input_length_mismatches"] == 0
    assert s["output_tokens"] == 4 * 6 and s["input_tokens"] == sum(r.input_length for r in reqs)
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(s[key]) >= {"mean", "p50", "p90", "p99"} and 0 < s[key]["p50"] < 60
    assert s["ttft_s"]["max"] <= s["e2e_s"]["max"]
    assert s["request_throughput"] > 0 and s["output_throughput"] > 0
    parents = sum(r.input_length for r in reqs if r.turn == 1)
    assert s["cached_tokens"] >= parents - 2  # each second turn reuses its first turn's prompt
    assert s["server_metrics"]["prefix_cache_hit_tokens"] == s["cached_tokens"]
    assert s["config"]["vocab_size"] == 259  # the demo model's vocabulary, read from its config
    (run,) = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert (run["time_scale"], run["commit"], run["completed"]) == (1.0, "abc1234", 4) and "--model demo" in run[
        "flags"
    ]
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert run[key]["p50"] == pytest.approx(s[key.replace("_ms", "_s")]["p50"] * 1e3, abs=0.01)
        assert run[key]["p99"] >= run[key]["p50"]
    assert run["request_throughput"] > 0 and run["machine"]
    gc_seen = s["client_gc"]  # the client's collections during the replay: counted, the longest timed
    assert run["client_gc"] == gc_seen and set(gc_seen) == {"collections", "longest_ms"}
    lines = [json.loads(x) for x in (out / "t-ts1.requests.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(x["error"] is None and x["ttft"] > 0 for x in lines)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    png = tmp_path / "p.png"
    assert online.main(["--plot", str(png), "--plot-from", str(out / "t-ts1.summary.json")]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_admission_cost_on_a_multi_turn_trace(trace: list[TraceRequest], tmp_path: Path) -> None:
    """benchmarks/admission_cost.py: later turns hit the prefix cache, and every measured function ran."""
    import admission_cost

    path = tmp_path / "trace.jsonl"
    traces.save_trace(trace, path)
    result = admission_cost.run(path, page_size=16, cache="radix")
    assert result["requests"] == len(trace) and result["prefix_hit_rate"] > 0.3
    assert all(result[k] > 0 for k in result if k.endswith(("_per_request", "_per_step")))
    naive = admission_cost.run(path, page_size=16, cache="naive")
    assert naive["prefix_hit_rate"] == 0

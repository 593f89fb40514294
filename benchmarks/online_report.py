"""Statistics, tables and plots of the online benchmark's runs."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

from traces import TraceRequest, request_rate


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def dist(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "mean": sum(values) / len(values),
        **{f"p{q}": percentile(values, q) for q in (50, 90, 99)},
        "max": max(values),
    }


def run_record(summary: dict[str, Any], commit: str, flags: str) -> dict[str, Any]:
    """One run as the JSON line ``benchmarks/results/online-h200*/`` keep: rate, throughput, p50/p99 of TTFT,
    TPOT and E2E in milliseconds, and where it ran (machine, commit, server flags)."""

    def pct(key: str) -> dict[str, float] | None:
        d = summary.get(key)
        return {q: round(d[q] * 1e3, 2) for q in ("p50", "p99")} if d else None

    return {
        "label": summary["label"],
        "time_scale": summary["time_scale"],
        "request_rate": summary["request_rate"],
        "request_throughput": round(summary["request_throughput"], 3),
        "output_throughput": round(summary["output_throughput"], 1),
        "ttft_ms": pct("ttft_s"),
        "tpot_ms": pct("tpot_s"),
        "e2e_ms": pct("e2e_s"),
        "completed": summary["completed"],
        "failed": summary["failed"],
        "cached_ratio": round(summary["cached_ratio"], 3),
        "client_gc": summary.get("client_gc"),  # the load generator's own collections during the replay
        "machine": summary["config"]["machine"],
        "date": summary["config"]["date"],
        "commit": commit,
        "flags": flags,
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def ms(d: dict | None, key: str) -> str:
    return f"{d[key] * 1000:.1f}" if d else "-"


def table(summaries: list[dict[str, Any]]) -> str:
    """A markdown table of the runs' headline numbers (latencies in ms)."""
    head = (
        "| label | time scale | offered req/s | done | req/s | output tok/s | total tok/s | TTFT mean / p50 / p99 "
        "| TPOT mean / p50 / p99 | E2E p50 / p99 | cached prompt tokens |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        t, p, e = s["ttft_s"], s["tpot_s"], s["e2e_s"]
        hit = s.get("server_metrics", {}).get("prefix_cache_hit_tokens")
        cached = f"{s['cached_tokens']} ({s['cached_ratio']:.1%})" + ("" if hit is None else f", /metrics {hit:.0f}")
        rate = "-" if s["request_rate"] is None else f"{s['request_rate']:.2f}"
        lines.append(
            f"| {s['label']} | {s['time_scale']:g} | {rate} | {s['completed']}/{s['num_requests']} "
            f"| {s['request_throughput']:.2f} | {s['output_throughput']:.1f} | {s['total_token_throughput']:.1f} "
            f"| {ms(t, 'mean')} / {ms(t, 'p50')} / {ms(t, 'p99')} | {ms(p, 'mean')} / {ms(p, 'p50')} / {ms(p, 'p99')} "
            f"| {ms(e, 'p50')} / {ms(e, 'p99')} | {cached} |"
        )
    return "\n".join(lines)


def plot(summaries: list[dict[str, Any]], path: str) -> None:
    """p50 (solid) and p90 (dashed) TTFT, TPOT and e2e latency (log scale) and the achieved request
    throughput against the offered request rate, one colour per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    labels = list(dict.fromkeys(s["label"] for s in summaries))
    for n, label in enumerate(labels):
        runs = sorted((s for s in summaries if s["label"] == label and s["request_rate"] is not None),
                      key=lambda s: s["request_rate"])  # fmt: skip
        x = [s["request_rate"] for s in runs]
        for ax, key in zip(axes, ("ttft_s", "tpot_s", "e2e_s")):
            for q, style in (("p50", "-o"), ("p90", "--s")):
                y = [s[key][q] * 1000 if s[key] else math.nan for s in runs]
                ax.plot(x, y, style, color=f"C{n}", label=f"{label} {q}")
        axes[3].plot(x, [s["request_throughput"] for s in runs], "-o", color=f"C{n}", label=label)
    titles = ("TTFT", "TPOT (time per output token)", "end-to-end latency", "achieved throughput")
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel("ms" if ax is not axes[3] else "completed requests/s")
        ax.set_yscale("log" if ax is not axes[3] else "linear")
        ax.grid(alpha=0.3, which="both")
    rates = [s["request_rate"] for s in summaries if s["request_rate"] is not None]
    if rates:
        axes[3].plot([0, max(rates)], [0, max(rates)], ":", color="gray", label="offered")
    axes[0].legend(fontsize=8)
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(results: list[dict[str, Any]], wall: float, time_scale: float, reqs: list[TraceRequest]) -> dict:
    ok = [r for r in results if r["error"] is None]
    out_tokens = sum(r["completion_tokens"] or 0 for r in ok)
    in_tokens = sum(r["prompt_tokens"] or 0 for r in ok)
    cached = sum(r["cached_tokens"] or 0 for r in ok)
    lags = [r["sent_s"] - r["scheduled_s"] for r in results]
    errors = [r["error"] for r in results if r["error"] is not None]
    return {
        "num_requests": len(results),
        "completed": len(ok),
        "failed": len(errors),
        "errors": errors[:5],
        "output_length_mismatches": sum(r["completion_tokens"] != r["output_length"] for r in ok),
        "input_length_mismatches": sum(r["prompt_tokens"] != r["input_length"] for r in ok),
        "time_scale": time_scale,
        "request_rate": rate if math.isfinite(rate := request_rate(reqs, time_scale)) else None,
        "duration_s": wall,
        "request_throughput": len(ok) / wall,
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "output_throughput": out_tokens / wall,
        "total_token_throughput": (in_tokens + out_tokens) / wall,
        "cached_tokens": cached,
        "cached_ratio": cached / in_tokens if in_tokens else 0.0,
        "ttft_s": dist([r["ttft"] for r in ok]),
        "tpot_s": dist([r["tpot"] for r in ok if r["tpot"] is not None]),
        "e2e_s": dist([r["e2e"] for r in ok]),
        "send_lag_s": dist(lags),
    }

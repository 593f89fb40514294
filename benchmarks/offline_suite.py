"""Run several offline-benchmark configurations (one fresh process each), collect JSON, plot a PNG.

    python benchmarks/offline_suite.py --suite qwen3-0.6b --out-dir results/
    python benchmarks/offline_suite.py --plot results/offline.jsonl      # only re-draw the PNG

Each configuration is ``benchmarks/offline.py`` with some flags; a configuration that fails or times out is
reported and the rest still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"

SUITES: dict[str, list[tuple[str, list[str]]]] = {
    "qwen3-0.6b": [
        ("flashinfer p64", ["--attention", "flashinfer", "--page-size", "64"]),
        ("flashinfer p16", ["--attention", "flashinfer", "--page-size", "16"]),
        ("flashinfer p1", ["--attention", "flashinfer"]),
        ("flashinfer p64 no-overlap", ["--attention", "flashinfer", "--page-size", "64", "--disable-overlap"]),
        ("flashinfer p64 no-graphs", ["--attention", "flashinfer", "--page-size", "64", "--cuda-graph-max-bs", "0"]),
        ("fa p1", ["--attention", "fa"]),
        ("fa p16", ["--attention", "fa", "--page-size", "16"]),
        ("fa+flashinfer p16", ["--attention", "fa,flashinfer", "--page-size", "16"]),
    ],
    "qwen3-14b": [
        ("14B flashinfer p64", ["--attention", "flashinfer", "--page-size", "64"]),
        ("14B flashinfer p64 no-overlap", ["--attention", "flashinfer", "--page-size", "64", "--disable-overlap"]),
        ("14B fa p16", ["--attention", "fa", "--page-size", "16"]),
    ],
    "tp": [
        ("14B flashinfer tp1", ["--attention", "flashinfer", "--page-size", "64", "--tp", "1"]),
        ("14B flashinfer tp2", ["--attention", "flashinfer", "--page-size", "64", "--tp", "2"]),
    ],
}
SUITE_MODEL = {"qwen3-0.6b": "qwen3-0.6b", "qwen3-14b": "qwen3-14b", "tp": "qwen3-14b"}


def run_suite(name: str, out: Path, timeout: float, only: list[str] | None) -> None:
    model = MODELS / SUITE_MODEL[name]
    for label, flags in SUITES[name]:
        if only and label not in only:
            continue
        cmd = [sys.executable, str(HERE / "offline.py"), "--model", str(model), "--label", label, "--out", str(out)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd + flags, capture_output=True, text=True, timeout=timeout)
            ok = proc.returncode == 0
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        except subprocess.TimeoutExpired:
            ok, tail = False, [f"timed out after {timeout:.0f} s"]
        status = "ok" if ok else "FAILED"
        print(f"[{status}] {label} ({time.perf_counter() - start:.0f} s): {' | '.join(tail)}", flush=True)


def plot(results: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    labels = [r["label"] for r in rows]
    values = [r["throughput_tok_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    ax.barh(labels, values, color="#4c72b0")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,.0f}", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("output tokens / s (offline workload, 256 requests, 133,966 output tokens)")
    ax.set_title(f"minisgl offline throughput on {rows[0].get('device', '?')}" if rows else "minisgl")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", action="append", choices=sorted(SUITES), default=[])
    p.add_argument("--only", action="append", default=None, help="run only these labels")
    p.add_argument("--out-dir", default="benchmark-results")
    p.add_argument("--timeout", type=float, default=240)
    p.add_argument("--plot", default=None, help="a results .jsonl to plot (no runs)")
    args = p.parse_args()
    if args.plot:
        results = Path(args.plot)
        plot(results, results.with_suffix(".png"))
        return 0
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "offline.jsonl"
    for name in args.suite:
        run_suite(name, results, args.timeout, args.only)
    if results.exists():
        plot(results, out_dir / "offline.png")
        for line in results.read_text().splitlines():
            r = json.loads(line)
            tput, secs, ready = r["throughput_tok_s"], r["seconds"], r["ready_seconds"]
            print(f"{r['label']:<32} {tput:>10,.0f} tok/s  {secs:>7.2f} s  ready {ready} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Prefix-cache hit rate and throughput of schedulers on a shared-prefix workload (offline API).

Groups of requests share long system prompts; requests arrive interleaved (group 0, 1, 2, ..., 0, 1, ...)
and the KV cache is too small to hold every group's prefix at once. ``fcfs`` admits in arrival order, so a
prefix is often evicted before the next request of its group comes; ``lpm`` (plugins/minisgl-lpm) admits
the requests with the longest cached prefix first. Hit rate = prompt tokens served from the prefix cache /
all prompt tokens. Greedy outputs must be identical across schedulers (checked).

    python benchmarks/prefix_cache.py                       # random small Qwen3 on CPU, fcfs vs lpm
    python benchmarks/prefix_cache.py --model demo --out /tmp/prefix_cache.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SMALL = dict(
    hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
    head_dim=32, max_position_embeddings=2048,
)  # fmt: skip


def workload(groups: int, per_group: int, prefix_len: int, suffix_len: int, seed: int) -> list[list[int]]:
    """``groups * per_group`` prompts: a group's shared prefix plus a unique suffix, groups interleaved."""
    rng = random.Random(seed)
    prefixes = [[rng.randrange(256) for _ in range(prefix_len)] for _ in range(groups)]
    return [
        prefixes[g] + [rng.randrange(256) for _ in range(suffix_len)] for _ in range(per_group) for g in range(groups)
    ]


def model_path(name: str) -> str:
    """``random-small`` writes a random 4-layer Qwen3 (hidden 256) to a temporary folder; else as given."""
    if name != "random-small":
        return name
    from minisgl_core.testing.tiny_models import save_tiny_model

    path = Path(tempfile.mkdtemp(prefix="minisgl-bench-"))
    save_tiny_model(path, "qwen3", seed=0, **SMALL)
    return str(path)


def run_one(model: str, scheduler: str, prompts: list[list[int]], args: argparse.Namespace) -> dict[str, Any]:
    from minisgl_core import LLM, SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, ignore_eos=True)
    times, outs = [], None
    for _ in range(args.repeats):  # a fresh engine (empty cache) per repetition; only generate() is timed
        llm = LLM(
            model, device=args.device, attention="torch", scheduler=scheduler, cache="radix", page_size=args.page_size,
            num_kv_tokens=args.num_kv_tokens, max_running_requests=args.max_running_requests,
        )  # fmt: skip
        start = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        times.append(time.perf_counter() - start)
    assert outs is not None
    prompt_tokens = sum(len(p) for p in prompts)
    cached = sum(o.num_cached_tokens for o in outs)
    output_tokens = sum(len(o.token_ids) for o in outs)
    best = min(times)
    return {
        "scheduler": scheduler,
        "hit_rate": cached / prompt_tokens,
        "cached_tokens": cached,
        "prompt_tokens": prompt_tokens,
        "prefill_tokens_computed": prompt_tokens - cached,
        "output_tokens": output_tokens,
        "seconds_best": best,
        "seconds_median": statistics.median(times),
        "output_tokens_per_s": output_tokens / best,
        "total_tokens_per_s": (prompt_tokens + output_tokens) / best,
        "token_ids": [o.token_ids for o in outs],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random-small", help="random-small (default), demo, or a model folder")
    p.add_argument("--schedulers", default="fcfs,lpm")
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--per-group", type=int, default=8)
    p.add_argument("--prefix-len", type=int, default=256)
    p.add_argument("--suffix-len", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--num-kv-tokens", type=int, default=768, help="KV cache size: about 2.5 prefixes")
    p.add_argument("--max-running-requests", type=int, default=4)
    p.add_argument("--page-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()

    prompts = workload(args.groups, args.per_group, args.prefix_len, args.suffix_len, args.seed)
    model = model_path(args.model)
    from minisgl_core import LLM, SamplingParams

    warm = LLM(model, device=args.device, attention="torch", num_kv_tokens=args.num_kv_tokens)
    warm.generate(prompts[:2], SamplingParams(max_tokens=4), use_tqdm=False)  # lazy initialisation, not timed
    results = [run_one(model, s.strip(), prompts, args) for s in args.schedulers.split(",")]
    identical = all(r["token_ids"] == results[0]["token_ids"] for r in results)

    print(f"{len(prompts)} requests: {args.groups} groups x {args.per_group}, prefix {args.prefix_len} + suffix "
          f"{args.suffix_len} tokens, {args.max_tokens} new tokens; KV cache {args.num_kv_tokens} tokens, "
          f"max {args.max_running_requests} running; model {args.model} on {args.device}")  # fmt: skip
    print(f"{'scheduler':<10} {'hit rate':>9} {'prefill done':>13} {'best s':>8} {'out tok/s':>10} {'total tok/s':>12}")
    for r in results:
        print(
            f"{r['scheduler']:<10} {r['hit_rate']:>9.1%} {r['prefill_tokens_computed']:>13} {r['seconds_best']:>8.2f}"
            f" {r['output_tokens_per_s']:>10.1f} {r['total_tokens_per_s']:>12.1f}"
        )
    print(f"greedy outputs identical across schedulers: {identical}")
    if args.out:
        report = {
            "benchmark": "prefix_cache",
            "config": {k: v for k, v in vars(args).items() if k != "out"},
            "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
            "outputs_identical": identical,
            "results": [{k: v for k, v in r.items() if k != "token_ids"} for r in results],
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    if not identical:
        raise SystemExit("greedy outputs differ between schedulers (a scheduler must not change results)")


if __name__ == "__main__":
    main()

"""Online serving benchmark: replay a request trace against the OpenAI endpoint, with streaming.

Each trace request (``benchmarks/traces.py``: Qwen-Bailian schema) becomes one ``POST /v1/completions`` with
``prompt`` = token ids built from its ``hash_ids`` (shared ids -> shared prompt prefixes), ``max_tokens`` =
``output_length``, ``ignore_eos`` (so output lengths are fixed), ``stream`` with usage. Requests are sent
open-loop at their trace timestamps (gaps multiplied by ``--time-scale``; ``--max-concurrency`` caps the
requests in flight). Per request: TTFT (send -> first chunk carrying tokens), TPOT = (e2e - TTFT) /
(output tokens - 1), e2e latency, and the token counts the server reported (checked against the trace).
The summary has mean/p50/p90/p99 of each latency, request and token throughput and the prefix-cache hits
(``usage.prompt_tokens_details.cached_tokens`` and the server's ``/metrics``).

    python benchmarks/traces.py synth --num-sessions 16 --turns 4 --out /tmp/trace.jsonl
    python benchmarks/online.py --trace /tmp/trace.jsonl --base-url http://127.0.0.1:30000
    python benchmarks/online.py --trace /tmp/trace.jsonl --launch "--model demo --cache radix" \\
        --sweep 0.5,1,2 --out-dir /tmp/online --plot /tmp/online/latency.png
    python benchmarks/online.py --trace /tmp/trace.jsonl --launch "--model demo" --compare-caches radix,naive
    python benchmarks/online.py --plot latency.png --plot-from a.summary.json b.summary.json

``--launch ARGS`` starts ``python -m minisgl_core serve ARGS --port 0`` (one server per ``--compare-caches``
entry, with ``--cache NAME`` added), waits for ``/health`` and stops it afterwards. Against one server, each
run of a sweep uses different token ids for the same hash ids, so no run reuses another's prefixes.
Needs ``httpx``; ``--plot`` needs ``matplotlib`` (imported only then).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_report import machine, plot, run_record, summarize, table  # noqa: E402
from online_server import LaunchedServer, model_vocab_size, resolve_random_small, scrape_metrics, served_model  # noqa: E402
from traces import PromptBuilder, TraceRequest, load_trace, trace_stats  # noqa: E402

from minisgl_core.server.gc_pauses import PauseWatch  # noqa: E402

# -- one request, one replay -----------------------------------------------------------------------------


async def send_request(client: Any, url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Stream one completion; times are ``time.perf_counter()`` seconds."""
    start = time.perf_counter()
    first = last = None
    usage, error, chunks, streamed = None, None, 0, 0
    try:
        async with client.stream("POST", url, json=payload) as resp:
            if resp.status_code != 200:
                error = f"HTTP {resp.status_code}: {(await resp.aread()).decode(errors='replace')[:300]}"
            else:
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    now = time.perf_counter()
                    obj = json.loads(data)
                    if "error" in obj:
                        error = f"stream error: {obj['error'].get('message')}"
                        break
                    if obj.get("usage"):
                        usage = obj["usage"]
                    for choice in obj.get("choices") or []:
                        lps = (choice.get("logprobs") or {}).get("tokens")
                        streamed += len(lps or ())
                        if choice.get("text") or choice.get("finish_reason") or lps:
                            chunks += 1
                            first = now if first is None else first
                            last = now
    except Exception as exc:  # noqa: BLE001 - recorded per request
        error = f"{type(exc).__name__}: {exc}"
    end = time.perf_counter()
    return {
        "start": start,
        "first": first,
        "last": last,
        "end": end,
        "usage": usage,
        "error": error,
        "chunks": chunks,
        "streamed": streamed,
    }


async def replay(
    base_url: str, model: str, reqs: list[TraceRequest], prompts: list[list[int]], *, time_scale: float = 1.0,
    max_concurrency: int | None = None, wait_for_parent: bool = False, temperature: float = 0.0, logprobs: bool = False,
    timeout: float = 600.0, headers: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], float]:  # fmt: skip
    """Send every request at ``(timestamp - first timestamp) * time_scale`` after the start (later when
    ``max_concurrency`` requests are in flight, or - with ``wait_for_parent`` - until its parent turn
    finished). Returns the per-request records and the wall time from start to the last answer."""
    import httpx

    url = base_url + "/v1/completions"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    done = {r.chat_id: asyncio.Event() for r in reqs if r.chat_id >= 0} if wait_for_parent else {}
    t_first = reqs[0].timestamp
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=30), limits=limits, headers=headers) as client:
        t0 = time.perf_counter() + 0.05

        async def one(i: int, r: TraceRequest) -> dict[str, Any]:
            scheduled = (r.timestamp - t_first) * time_scale
            await asyncio.sleep(max(0.0, t0 + scheduled - time.perf_counter()))
            if r.parent_chat_id in done:
                await done[r.parent_chat_id].wait()
            payload = {
                "model": model, "prompt": prompts[i], "max_tokens": r.output_length, "temperature": temperature,
                "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True},
            }  # fmt: skip
            if logprobs:  # every step's tokens arrive in a chunk, even text held back (partial UTF-8)
                payload["logprobs"] = 0
            try:
                if sem is not None:
                    async with sem:
                        res = await send_request(client, url, payload)
                else:
                    res = await send_request(client, url, payload)
            finally:
                if r.chat_id in done:
                    done[r.chat_id].set()
            return record(i, r, scheduled, res, t0)

        results = await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs)))
    return list(results), max(r["end_s"] for r in results)


def record(i: int, r: TraceRequest, scheduled: float, res: dict[str, Any], t0: float) -> dict[str, Any]:
    """One request's result line (times in seconds; ``*_s`` relative to the replay start)."""
    usage = res["usage"] or {}
    out_tokens = usage.get("completion_tokens")
    ttft = res["first"] - res["start"] if res["first"] is not None else None
    e2e = res["end"] - res["start"]
    error = res["error"]
    if error is None and ttft is None:
        error = "no tokens received"
    elif error is None and not usage:
        error = "the stream ended without usage"
    n = out_tokens if out_tokens is not None else r.output_length
    return {
        "index": i, "chat_id": r.chat_id, "turn": r.turn, "scheduled_s": round(scheduled, 6),
        "sent_s": round(res["start"] - t0, 6), "end_s": round(res["end"] - t0, 6),
        "input_length": r.input_length, "output_length": r.output_length,
        "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": out_tokens,
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        "ttft": ttft, "tpot": (e2e - ttft) / (n - 1) if ttft is not None and n > 1 else None,
        "e2e": e2e, "chunks": res["chunks"], "streamed_tokens": res["streamed"] or None, "error": error,
    }  # fmt: skip


# -- driver ------------------------------------------------------------------------------------------------


def run_point(
    base_url: str, model: str, reqs: list[TraceRequest], args: argparse.Namespace, *, time_scale: float,
    salt: int, label: str, headers: dict[str, str], launch: list[str] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    builder = PromptBuilder(args.vocab_size, seed=args.seed, salt=salt)
    prompts = [builder.prompt(r, i) for i, r in enumerate(reqs)]
    if args.warmup:  # prompts unrelated to the trace's
        warm = [TraceRequest(0.0, 64, 8, [-1 - i]) for i in range(args.warmup)]
        wb = PromptBuilder(args.vocab_size, seed=args.seed, salt=-1 - salt)
        asyncio.run(replay(base_url, model, warm, [wb.prompt(r) for r in warm], headers=headers, time_scale=0.0))
    before = scrape_metrics(base_url, headers)
    opts = dict(
        time_scale=time_scale, max_concurrency=args.max_concurrency, wait_for_parent=args.wait_for_parent,
        temperature=args.temperature, logprobs=args.logprobs, timeout=args.request_timeout, headers=headers,
    )  # fmt: skip
    # the client's heap so far (httpx, the trace, the prompts) out of garbage collection: a full collection
    # of the load generator (0.12 s for 238k objects on the CPU VM: benchmarks/gc_pause.py) would read as latency
    gc.collect()
    gc.freeze()
    watch = PauseWatch("client", threshold_s=float("inf")).install()  # the client's own pauses, reported
    try:
        results, wall = asyncio.run(replay(base_url, model, reqs, prompts, **opts))
    finally:
        watch.remove()
    after = scrape_metrics(base_url, headers)
    summary = {"label": label, **summarize(results, wall, time_scale, reqs)}
    summary["client_gc"] = {"collections": watch.count, "longest_ms": round(watch.longest_s * 1e3, 1)}
    summary["server_metrics"] = {k: after[k] - before.get(k, 0.0) for k in after}
    summary["config"] = {
        "trace": args.trace, "num_requests": len(reqs), "base_url": base_url, "model": model,
        "launch": launch, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "max_concurrency": args.max_concurrency,
        "wait_for_parent": args.wait_for_parent, "temperature": args.temperature, "logprobs": args.logprobs,
        "vocab_size": args.vocab_size,
        "seed": args.seed, "salt": salt, "warmup": args.warmup,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
    }  # fmt: skip
    return summary, results


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    reqs = load_trace(args.trace, limit=args.num_requests, timestamp_unit=args.timestamp_unit)
    if not reqs:
        raise SystemExit(f"{args.trace}: no requests")
    print(f"trace: {json.dumps(trace_stats(reqs))}", flush=True)
    scales = [float(x) for x in args.sweep.split(",")] if args.sweep else [args.time_scale]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    out_dir = Path(args.out_dir) if args.out_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    caches = args.compare_caches.split(",") if args.compare_caches else [None]
    summaries = []
    for cache in caches:
        server, base_url, launch = None, args.base_url, None
        label = "-".join(x for x in (args.label, cache) if x) or "minisgl"
        if args.launch is not None:
            launch = shlex.split(args.launch) + (["--cache", cache] if cache else [])
            serve_args = resolve_random_small(launch)
            if args.vocab_size is None:
                args.vocab_size = min(10000, model_vocab_size(serve_args) or 10000)
            log = out_dir / f"server-{label}.log" if out_dir else Path(f"/tmp/minisgl-online-{label}-{os.getpid()}.log")
            print(f"[{label}] starting: minisgl serve {shlex.join(serve_args)} (log {log})", flush=True)
            server = LaunchedServer(serve_args, log, timeout=args.server_timeout)
            base_url = server.url
        args.vocab_size = args.vocab_size or 10000
        try:
            model = args.model or served_model(base_url, headers)
            for salt, scale in enumerate(scales):
                point = dict(time_scale=scale, salt=salt, label=label, headers=headers, launch=launch)
                summary, results = run_point(base_url, model, reqs, args, **point)
                summaries.append(summary)
                print(table([summary]).splitlines()[-1], flush=True)
                if summary["failed"]:
                    print(f"[{label}] {summary['failed']} requests failed, e.g. {summary['errors'][:2]}", flush=True)
                if out_dir:
                    stem = out_dir / f"{label}-ts{scale:g}"
                    with open(f"{stem}.requests.jsonl", "w") as f:
                        f.writelines(json.dumps(r) + "\n" for r in results)
                    Path(f"{stem}.summary.json").write_text(json.dumps(summary, indent=1) + "\n")
                if args.record:
                    with open(args.record, "a") as f:
                        f.write(json.dumps(run_record(summary, args.commit, " ".join(launch or []))) + "\n")
        finally:
            if server is not None:
                server.stop()
    return summaries


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", help="JSON-lines trace (benchmarks/traces.py)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--base-url", default=None, help="a running server, e.g. http://127.0.0.1:30000")
    target.add_argument("--launch", default=None, help='serve flags, e.g. "--model demo --cache radix"')
    p.add_argument("--compare-caches", default=None, help="with --launch: one server per cache, e.g. radix,naive")
    p.add_argument("--model", default=None, help="model name sent in requests (default: the server's)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply arrival gaps (0.5 = twice the rate)")
    p.add_argument("--sweep", default=None, help="comma-separated time scales to run in turn, e.g. 1,0.25,0.1")
    p.add_argument("--record", default=None, help="append one JSON line per run (p50/p99 in ms, commit, flags)")
    p.add_argument("--commit", default=os.environ.get("MINISGL_COMMIT", "unknown"), help="recorded with --record")
    p.add_argument("--max-concurrency", type=int, default=None, help="most requests in flight (default: no cap)")
    p.add_argument("--wait-for-parent", action="store_true", help="send a turn only after its parent turn ended")
    p.add_argument("--num-requests", type=int, default=None, help="replay only the first N requests")
    p.add_argument("--timestamp-unit", choices=["s", "ms"], default="s")
    p.add_argument("--vocab-size", type=int, default=None, help="prompt ids in [0, N) (default 10000, or the model's")
    p.add_argument("--seed", type=int, default=0, help="seed of the token ids of each hash id")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--logprobs", action="store_true", help="ask for logprobs so each token's chunk is sent at once")
    p.add_argument("--warmup", type=int, default=2, help="unrelated requests sent before each run")
    p.add_argument("--request-timeout", type=float, default=600.0)
    p.add_argument("--server-timeout", type=float, default=300.0, help="seconds a launched server may take to start")
    p.add_argument("--label", default=None)
    p.add_argument("--out-dir", default=None, help="write LABEL-tsSCALE.requests.jsonl and .summary.json here")
    p.add_argument("--plot", default=None, help="PNG of latency against load from this run's (or --plot-from) runs")
    p.add_argument("--plot-from", nargs="+", default=None, help="summary JSON files to plot instead of running")
    args = p.parse_args(argv)
    if args.plot_from is None:
        if not args.trace:
            p.error("--trace is required (or --plot-from)")
        if (args.base_url is None) == (args.launch is None):
            p.error("give --base-url or --launch")
        if args.compare_caches and args.launch is None:
            p.error("--compare-caches needs --launch")
        if any(float(x) < 0 for x in (args.sweep or str(args.time_scale)).split(",")):
            p.error("time scales must be >= 0 (0 sends every request at once)")
    if args.base_url:
        args.base_url = args.base_url.rstrip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_from:
        summaries = [json.loads(Path(f).read_text()) for f in args.plot_from]
    else:
        summaries = run_all(args)
        print("\n" + table(summaries), flush=True)
    if args.plot:
        plot(summaries, args.plot)
        print(f"plot: {args.plot}")
    return 1 if any(s["failed"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())

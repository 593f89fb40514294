"""Stop matching must not slow other requests (issue 15): a short request's latency alone, next to a long
request without stops, and next to a long request carrying the largest stop list the server's limits allow
(``--max-stop-strings`` strings totalling ``--max-stop-chars`` characters, plus ``--max-stop-regex`` patterns
totalling ``--max-stop-regex-chars``). Not a unit test: it measures; the check is that the short request's
median latency next to the stop-laden request stays within 2x of its latency alone.

    python benchmarks/stop_strings.py --model demo --device cpu            # prints one JSON line

Any other ``minisgl serve`` flag can follow; the limits are read from ``ServerArgs`` (or the flags given).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from online_server import LaunchedServer

from minisgl_core.config import ServerArgs


def _limit(serve_args: list[str], flag: str, default: int) -> int:
    return int(serve_args[serve_args.index(flag) + 1]) if flag in serve_args else default


def largest_stops(serve_args: list[str]) -> dict[str, list[str]]:
    """The biggest ``stop`` and ``stop_regex`` lists the limits accept, built to be costly for a plain search
    (long shared prefixes) and never to match a real output (a character no tokenizer output here holds)."""
    d = ServerArgs()
    n = _limit(serve_args, "--max-stop-strings", d.max_stop_strings)
    chars = _limit(serve_args, "--max-stop-chars", d.max_stop_chars)
    nr = _limit(serve_args, "--max-stop-regex", d.max_stop_regex)
    rchars = _limit(serve_args, "--max-stop-regex-chars", d.max_stop_regex_chars)
    each = chars // n
    stop = [" " * (each - 2) + chr(0x2400 + i) + "\u2603" for i in range(n)]
    reach = rchars // nr
    body = "(?:\\S|\\s)*"  # repeated: backtracking explodes on any text, then needs a character never generated
    stop_regex = [body * ((reach - 12) // len(body)) + "[\\x00-\\x01]" for _ in range(nr)]
    assert sum(map(len, stop)) <= chars and sum(map(len, stop_regex)) <= rchars
    return {"stop": stop, "stop_regex": stop_regex}


def short_latency(url: str, model: str, runs: int) -> list[float]:
    body = {"model": model, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0.0,
            "ignore_eos": True}  # fmt: skip
    out = []
    with httpx.Client(timeout=120) as client:
        for _ in range(runs):
            start = time.perf_counter()
            r = client.post(url + "/v1/completions", json=body)
            r.raise_for_status()
            out.append(time.perf_counter() - start)
    return out


def with_long_request(url: str, model: str, runs: int, extra: dict) -> tuple[list[float], dict]:
    """Short-request latencies measured while a long streaming request (with ``extra`` fields) runs."""
    ctx = httpx.get(url + "/v1/models").json()["data"][0]["max_model_len"]
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": ctx - 16, "temperature": 0.0,
            "ignore_eos": True, "stream": True, **extra}  # fmt: skip
    started, done = threading.Event(), threading.Event()
    info: dict = {"chunks": 0}

    def long_run() -> None:
        with httpx.Client(timeout=None) as client, client.stream("POST", url + "/v1/completions", json=body) as r:
            info["status"] = r.status_code
            if r.status_code != 200:
                info["error"] = r.read().decode()[:300]
            for line in r.iter_lines():
                if line.startswith("data: "):
                    info["chunks"] += 1
                    started.set()
                if done.is_set():
                    break
        started.set()

    thread = threading.Thread(target=long_run, daemon=True)
    thread.start()
    started.wait(120)
    time.sleep(0.5)
    try:
        lat = short_latency(url, model, runs)
    finally:
        done.set()
        thread.join(30)
    return lat, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10, help="short requests per phase")
    args, serve_args = p.parse_known_args(argv)
    model = serve_args[serve_args.index("--model") + 1] if "--model" in serve_args else "demo"
    with tempfile.TemporaryDirectory() as tmp:
        server = LaunchedServer(serve_args, Path(tmp) / "server.log")
        try:
            url = server.url
            short_latency(url, model, 3)  # warm-up
            alone = short_latency(url, model, args.runs)
            plain, plain_info = with_long_request(url, model, args.runs, {})
            stops = largest_stops(serve_args)
            loaded, stop_info = with_long_request(url, model, args.runs, stops)
        finally:
            server.stop()
        dropped = (Path(tmp) / "server.log").read_text(errors="replace").count("ignored for this request")
    med = statistics.median
    result = {
        "alone_ms": round(med(alone) * 1000, 1),
        "next_to_long_request_ms": round(med(plain) * 1000, 1),
        "next_to_max_stops_ms": round(med(loaded) * 1000, 1),
        "ratio_max_stops_vs_alone": round(med(loaded) / med(alone), 2),
        "stop_strings": len(stops["stop"]), "stop_chars": sum(map(len, stops["stop"])),
        "stop_regex": len(stops["stop_regex"]), "stop_regex_chars": sum(map(len, stops["stop_regex"])),
        "long_request_status": stop_info.get("status"), "long_request_chunks": stop_info["chunks"],
        "plain_long_request_chunks": plain_info["chunks"], "runs": args.runs, "serve_args": serve_args,
        "error": stop_info.get("error") or plain_info.get("error"), "stop_regex_dropped": dropped,
    }  # fmt: skip
    print(json.dumps(result))
    ok = result["ratio_max_stops_vs_alone"] <= 2.0 and stop_info.get("status") == 200
    print("OK: within 2x" if ok else "FAIL: above 2x (or the long request was refused)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

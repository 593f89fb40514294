"""Request traces for the online benchmark: the Qwen-Bailian schema, a synthetic generator, token prompts.

A trace is JSON lines, one request each, in the schema of the public Qwen-Bailian usage traces::

    {"chat_id": 7, "parent_chat_id": 3, "timestamp": 12.5, "input_length": 70, "output_length": 96,
     "type": "text", "turn": 2, "hash_ids": [0, 1, 57, 58, 59]}

Only ``timestamp`` (seconds), ``input_length``, ``output_length`` and ``hash_ids`` are required. ``hash_ids``
names the prompt's 16-token blocks: block ``j`` covers tokens ``[16 j, 16 j + 16)``, so requests that share
leading ids share that prefix. :class:`PromptBuilder` turns ids into real token ids - each block's 16 tokens
come from an RNG seeded by its id, the last block is cut to ``input_length`` - so the hash structure becomes
shared prompt prefixes a prefix cache can reuse.

Synthetic traces (``trace_synth.synthesize``): sessions arrive as a Poisson process; a session is a
multi-turn chat whose turn ``k`` prompt is turn ``k-1``'s prompt, its output and a new user message, so turn ``k``'s
``hash_ids`` extend turn ``k-1``'s (a session's ids are one append-only stream of blocks: a block cut short
in one turn is completed, with the same id, in the next). Turns are separated by an exponential think time;
sessions may open with one of a few shared system prompts.

    python benchmarks/traces.py synth --num-sessions 32 --turns 4 --rate 1 --out trace.jsonl
    python benchmarks/traces.py stats trace.jsonl
    python benchmarks/traces.py scale trace.jsonl --time-scale 0.5 --out faster.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

BLOCK_SIZE = 16
REQUIRED = ("timestamp", "input_length", "output_length", "hash_ids")


@dataclass
class TraceRequest:
    timestamp: float
    input_length: int
    output_length: int
    hash_ids: list[int] = field(default_factory=list)
    chat_id: int = -1
    parent_chat_id: int = -1
    turn: int = 1
    type: str = "text"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceRequest:
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise ValueError(f"trace record lacks {missing}: {str(d)[:200]}")
        req = cls(
            timestamp=float(d["timestamp"]), input_length=int(d["input_length"]),
            output_length=int(d["output_length"]), hash_ids=[int(h) for h in d["hash_ids"]],
            chat_id=int(d.get("chat_id", -1)), parent_chat_id=int(d.get("parent_chat_id", -1)),
            turn=int(d.get("turn", 1)), type=str(d.get("type", "text")),
        )  # fmt: skip
        if req.input_length < 1 or req.output_length < 1:
            raise ValueError(f"input_length and output_length must be >= 1: {str(d)[:200]}")
        return req

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_trace(path: str | Path, limit: int | None = None, timestamp_unit: str = "s") -> list[TraceRequest]:
    """The requests of a JSON-lines trace sorted by timestamp (seconds), the first ``limit`` of them."""
    factor = {"s": 1.0, "ms": 1e-3}[timestamp_unit]
    reqs = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    req = TraceRequest.from_dict(json.loads(line))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{path}:{lineno}: {exc}") from None
                req.timestamp *= factor
                reqs.append(req)
    reqs.sort(key=lambda r: r.timestamp)
    return reqs[:limit] if limit else reqs


def save_trace(reqs: Iterable[TraceRequest], path: str | Path) -> None:
    with open(path, "w") as f:
        for r in reqs:
            f.write(json.dumps(r.to_dict()) + "\n")


def scale_times(reqs: Sequence[TraceRequest], time_scale: float) -> list[TraceRequest]:
    """Copies with every gap from the first arrival multiplied by ``time_scale`` (0.5 = twice the rate)."""
    if time_scale <= 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale}")
    if not reqs:
        return []
    t0 = reqs[0].timestamp
    return [replace(r, timestamp=t0 + (r.timestamp - t0) * time_scale, hash_ids=list(r.hash_ids)) for r in reqs]


def request_rate(reqs: Sequence[TraceRequest], time_scale: float = 1.0) -> float:
    """Mean arrival rate (requests/s) of the trace replayed at ``time_scale``."""
    span = (reqs[-1].timestamp - reqs[0].timestamp) * time_scale if reqs else 0.0
    return (len(reqs) - 1) / span if span > 0 else math.inf


class PromptBuilder:
    """Token-id prompts from hash ids: block ``h`` is 16 ids in ``[0, vocab_size)`` from an RNG seeded by
    ``(seed, salt, h)``; a different ``salt`` gives unrelated prompts for the same trace (no reuse across
    runs against one server)."""

    def __init__(self, vocab_size: int = 10000, seed: int = 0, salt: int = 0) -> None:
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        self.vocab_size, self.seed, self.salt = vocab_size, seed, salt
        self._blocks: dict[int, list[int]] = {}

    def _ids(self, key: str, n: int) -> list[int]:
        rng = random.Random(f"{self.seed}/{self.salt}/{key}")
        return [rng.randrange(self.vocab_size) for _ in range(n)]

    def block(self, hash_id: int) -> list[int]:
        ids = self._blocks.get(hash_id)
        if ids is None:
            ids = self._blocks[hash_id] = self._ids(str(hash_id), BLOCK_SIZE)
        return ids

    def prompt(self, req: TraceRequest, index: int = 0) -> list[int]:
        """``input_length`` token ids; a trace with fewer blocks than that is padded with tokens unique to
        request ``index``."""
        ids: list[int] = []
        for h in req.hash_ids:
            if len(ids) >= req.input_length:
                break
            ids += self.block(h)
        if len(ids) < req.input_length:
            ids += self._ids(f"pad/{index}", req.input_length - len(ids))
        return ids[: req.input_length]


def reusable_tokens(reqs: Sequence[TraceRequest]) -> list[int]:
    """Per request, prompt tokens an unbounded prefix cache could serve from earlier prompts (all but the
    last prompt token at most): the tokens of the leading hash ids it shares with an earlier prompt, where
    a block that earlier prompt had cut short counts only as far as it went."""
    root: dict[int, list] = {}  # hash id -> [most tokens of this block any prompt had, children]
    out = []
    for r in reqs:
        kids, best = root, 0
        for j, h in enumerate(r.hash_ids):
            node = kids.get(h)
            if node is None:
                break
            fill = min(node[0], r.input_length - j * BLOCK_SIZE)
            best = j * BLOCK_SIZE + fill
            if fill < BLOCK_SIZE:
                break
            kids = node[1]
        out.append(max(0, min(best, r.input_length - 1)))
        kids = root
        for j, h in enumerate(r.hash_ids):
            fill = min(BLOCK_SIZE, r.input_length - j * BLOCK_SIZE)
            if fill <= 0:
                break
            node = kids.setdefault(h, [0, {}])
            node[0] = max(node[0], fill)
            kids = node[1]
    return out


def trace_stats(reqs: Sequence[TraceRequest]) -> dict[str, Any]:
    if not reqs:
        return {"requests": 0}
    ins = [r.input_length for r in reqs]
    outs = [r.output_length for r in reqs]
    reuse = reusable_tokens(reqs)
    return {
        "requests": len(reqs),
        "sessions": len({r.chat_id for r in reqs if r.parent_chat_id < 0}) if reqs[0].chat_id >= 0 else None,
        "max_turn": max(r.turn for r in reqs),
        "duration_s": round(reqs[-1].timestamp - reqs[0].timestamp, 3),
        "request_rate": round(request_rate(reqs), 3),
        "input_tokens": sum(ins),
        "output_tokens": sum(outs),
        "mean_input": round(sum(ins) / len(ins), 1),
        "max_input": max(ins),
        "mean_output": round(sum(outs) / len(outs), 1),
        "max_context": max(i + o for i, o in zip(ins, outs)),
        "reusable_prompt_tokens": sum(reuse),
        "ideal_hit_rate": round(sum(reuse) / sum(ins), 4),
    }


# -- command line ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="write a synthetic multi-turn trace")
    s.add_argument("--num-sessions", type=int, default=32)
    s.add_argument("--turns", type=int, default=4, help="turns per session (the most, with --min-turns)")
    s.add_argument("--min-turns", type=int, default=None, help="draw turns uniformly in [min-turns, turns]")
    s.add_argument("--rate", type=float, default=1.0, help="session arrivals per second (Poisson)")
    s.add_argument("--think-time", type=float, default=5.0, help="mean seconds between turns (exponential)")
    s.add_argument("--user-len", type=float, default=256, help="mean new user tokens per turn")
    s.add_argument("--output-len", type=float, default=64, help="mean output tokens per turn")
    s.add_argument("--system-len", type=int, default=0, help="tokens of a shared system prompt (0 = none)")
    s.add_argument("--num-system-prompts", type=int, default=1)
    s.add_argument("--dist", choices=["lognormal", "uniform", "fixed"], default="lognormal")
    s.add_argument("--sigma", type=float, default=0.5, help="lognormal: standard deviation of log(length)")
    s.add_argument("--spread", type=float, default=0.5, help="uniform: lengths in mean * [1-spread, 1+spread]")
    s.add_argument("--max-context", type=int, default=4096, help="prompt + output limit of every request")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    st = sub.add_parser("stats", help="summarize a trace (with the hit rate an unbounded prefix cache allows)")
    st.add_argument("trace")
    st.add_argument("--timestamp-unit", choices=["s", "ms"], default="s")
    sc = sub.add_parser("scale", help="multiply a trace's arrival gaps by --time-scale")
    sc.add_argument("trace")
    sc.add_argument("--time-scale", type=float, required=True)
    sc.add_argument("--timestamp-unit", choices=["s", "ms"], default="s")
    sc.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "synth":
        from trace_synth import synthesize

        reqs = synthesize(
            args.num_sessions, args.turns, args.min_turns, args.rate, args.think_time, args.user_len,
            args.output_len, args.system_len, args.num_system_prompts, args.dist, args.sigma, args.spread,
            args.max_context, args.seed,
        )  # fmt: skip
        save_trace(reqs, args.out)
    elif args.cmd == "scale":
        reqs = scale_times(load_trace(args.trace, timestamp_unit=args.timestamp_unit), args.time_scale)
        save_trace(reqs, args.out)
    else:
        reqs = load_trace(args.trace, timestamp_unit=args.timestamp_unit)
    print(json.dumps(trace_stats(reqs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

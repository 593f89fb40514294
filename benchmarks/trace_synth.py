"""Synthetic multi-turn traces in the Bailian schema of ``traces.py`` (its docstring describes the model):
Poisson session arrivals, turns that extend the previous turn's prompt and output, shared system prompts."""

from __future__ import annotations

import math
import random

from traces import BLOCK_SIZE, TraceRequest


def sample_length(rng: random.Random, mean: float, dist: str, sigma: float = 0.5, spread: float = 0.5) -> int:
    """A positive length with mean ``mean``: ``fixed``, ``uniform`` on ``mean * [1-spread, 1+spread]`` or
    ``lognormal`` with log-standard-deviation ``sigma``."""
    if dist == "fixed":
        x = mean
    elif dist == "uniform":
        x = rng.uniform(mean * (1 - spread), mean * (1 + spread))
    elif dist == "lognormal":
        x = rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)
    else:
        raise ValueError(f"unknown length distribution {dist!r}")
    return max(1, round(x))


def synthesize(
    num_sessions: int = 32, turns: int = 4, min_turns: int | None = None, rate: float = 1.0,
    think_time: float = 5.0, user_len: float = 256, output_len: float = 64, system_len: int = 0,
    num_system_prompts: int = 1, dist: str = "lognormal", sigma: float = 0.5, spread: float = 0.5,
    max_context: int = 4096, seed: int = 0,
) -> list[TraceRequest]:  # fmt: skip
    """A multi-turn chat trace (see the module docstring): ``rate`` = sessions per second (Poisson),
    ``turns`` per session (uniform in ``[min_turns, turns]`` when ``min_turns`` is given), ``think_time`` =
    mean seconds between a session's turns (exponential), ``user_len`` / ``output_len`` = mean new user and
    output tokens per turn, ``system_len`` tokens of a shared system prompt (rounded up to whole blocks)
    drawn from ``num_system_prompts``. A session ends before a turn whose prompt + output would exceed
    ``max_context``."""
    if num_sessions < 1 or turns < 1 or rate <= 0:
        raise ValueError("num_sessions and turns must be >= 1 and rate > 0")
    rng = random.Random(seed)
    next_id = 0

    def fresh(n: int) -> list[int]:
        nonlocal next_id
        next_id += n
        return list(range(next_id - n, next_id))

    sys_blocks = math.ceil(system_len / BLOCK_SIZE) if system_len > 0 else 0
    if sys_blocks * BLOCK_SIZE + 2 > max_context:
        raise ValueError("system_len leaves no room in max_context")
    systems = [fresh(sys_blocks) for _ in range(num_system_prompts)] if sys_blocks else [[]]
    drafts = []  # (timestamp, session, turn, input_length, output_length, hash_ids)
    start = 0.0
    for s in range(num_sessions):
        start += rng.expovariate(rate)
        stream = list(rng.choice(systems))  # the session's block ids, extended as it grows
        context = len(stream) * BLOCK_SIZE  # tokens before this turn's user message
        t = start
        n_turns = rng.randint(min_turns, turns) if min_turns else turns
        for k in range(1, n_turns + 1):
            user = sample_length(rng, user_len, dist, sigma, spread)
            out = sample_length(rng, output_len, dist, sigma, spread)
            if k == 1:
                out = min(out, max_context - context - 1)
                user = max(1, min(user, max_context - context - out))
            elif context + user + out > max_context:
                break
            if k > 1:
                t += rng.expovariate(1.0 / think_time) if think_time > 0 else 0.0
            in_len = context + user
            need = math.ceil(in_len / BLOCK_SIZE)
            stream += fresh(need - len(stream)) if need > len(stream) else []
            drafts.append((t, s, k, in_len, out, stream[:need]))
            context = in_len + out  # the next prompt repeats this turn's prompt and output
            need = math.ceil(context / BLOCK_SIZE)
            stream += fresh(need - len(stream)) if need > len(stream) else []
    drafts.sort(key=lambda d: (d[0], d[1], d[2]))
    last_of: dict[int, int] = {}
    reqs = []
    for chat_id, (t, s, k, in_len, out, ids) in enumerate(drafts):
        reqs.append(TraceRequest(round(t, 6), in_len, out, ids, chat_id, last_of.get(s, -1), k))
        last_of[s] = chat_id
    return reqs

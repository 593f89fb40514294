"""Host cost of structured outputs per decode step, by grammar backend: filling the step's bitmask rows and
accepting the sampled tokens (the two things the step loop does for constrained requests), without a model.

``--rows`` matchers of ``offline.BENCH_SCHEMA`` (what ``offline.py --json-schema`` constrains every request
with) over the synthetic 151,936-piece byte-level vocabulary walk together: each step fills every row through
the backend's ``fill_bitmasks``, then each matcher accepts a random allowed token. Runs on the CPU (the host's
work is the same next to any GPU).

    python benchmarks/grammar_fill.py --backend xgrammar --backend llguidance --rows 128 --steps 60
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline import BENCH_SCHEMA, bytelevel_tokenizer  # noqa: E402

from minisgl_core.contracts import Constraint, GrammarBackend, GrammarContext, bitmask_words  # noqa: E402
from minisgl_core.plugins import GRAMMAR, build  # noqa: E402
from minisgl_core.text import load_tokenizer  # noqa: E402

VOCAB = 151_936


def allowed_tokens(row: torch.Tensor, vocab: int) -> torch.Tensor:
    bits = (row.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    return bits.flatten()[:vocab].nonzero().flatten()


def measure(backend: str, tokenizer: object, rows: int, steps: int, options: dict[str, str]) -> dict:
    ctx = GrammarContext(tokenizer, VOCAB, (tokenizer.eos_token_id,), MappingProxyType(options))  # type: ignore[attr-defined]
    grammar = build(GRAMMAR, backend, ctx, GrammarBackend)
    start = time.perf_counter()
    compiled = grammar.compile(Constraint("json_schema", json.dumps(BENCH_SCHEMA)))
    compile_s = time.perf_counter() - start
    matchers = [grammar.matcher(compiled) for _ in range(rows)]
    mask = torch.empty((rows, bitmask_words(VOCAB)), dtype=torch.int32)
    rng, fill_ms, accept_ms = random.Random(0), [], []
    for _ in range(steps):
        mask.fill_(-1)
        t0 = time.perf_counter()
        grammar.fill_bitmasks(matchers, mask, list(range(rows)))
        t1 = time.perf_counter()
        tokens = [int(rng.choice(allowed_tokens(mask[i], VOCAB))) for i in range(rows)]
        t2 = time.perf_counter()
        assert all(m.accept(t) for m, t in zip(matchers, tokens)), "an allowed token was refused"
        t3 = time.perf_counter()
        fill_ms.append((t1 - t0) * 1e3)
        accept_ms.append((t3 - t2) * 1e3)
    return {
        "backend": backend, "options": options, "rows": rows, "steps": steps, "compile_s": round(compile_s, 3),
        "fill_ms_per_step": round(statistics.median(fill_ms), 3),
        "accept_ms_per_step": round(statistics.median(accept_ms), 3),
        "fill_us_per_row": round(statistics.median(fill_ms) * 1e3 / rows, 2),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", help="repeatable (default: xgrammar and llguidance)")
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE for every backend (e.g. fill_threads=4)")
    p.add_argument("--rows", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(1)
    tokenizer = load_tokenizer(str(bytelevel_tokenizer(VOCAB, Path(tempfile.mkdtemp(prefix="tok-")))))
    options = dict(kv.split("=", 1) for kv in args.option)
    for backend in args.backend or ["xgrammar", "llguidance"]:
        print(json.dumps(measure(backend, tokenizer, args.rows, args.steps, options)), flush=True)


if __name__ == "__main__":
    main()

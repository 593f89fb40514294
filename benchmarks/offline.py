"""Offline throughput on the standard workload (the nano-vllm / mini-SGLang benchmark).

Workload: ``random.seed(0)``; 256 requests; prompt ``i`` is ``randint(100, 1024)`` token ids, each
``randint(0, 10000)``; then ``max_tokens = randint(100, 1024)`` per request; temperature 0.6, ``ignore_eos``.
One warm-up ``generate`` runs first; throughput = output tokens (133,966) / wall time of one ``generate``.
Weights are random (``load_format="dummy"``) over a real ``config.json``; a word-level tokenizer over the
model's vocabulary is built offline (prompts are token ids, so its content does not matter).

    python benchmarks/offline.py --model benchmarks/models/qwen3-0.6b --attention flashinfer --out r.json

``--json-schema`` constrains every request with :data:`BENCH_SCHEMA` (structured outputs through the
selected grammar backend): records of nested objects, bounded strings, numbers and enums, with ``minItems``
out of reach, so every request still ends at its ``max_tokens`` and the workload's token count is unchanged.
Grammars need a vocabulary with real pieces: without ``--tokenizer`` a synthetic byte-level one of the
model's vocabulary size is built (:func:`bytelevel_tokenizer`); ``--tokenizer shared/tokenizers/qwen3`` uses
the real Qwen3 one.

Each run is one configuration in one process; ``benchmarks/offline_suite.py`` runs several and plots them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

EXPECTED_OUTPUT_TOKENS = 133_966
_RECORD = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "maxLength": 24},
        "score": {"type": "number"},
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 4},
        "owner": {"type": "object", "required": ["email"],
                  "properties": {"email": {"type": "string", "pattern": "^[a-z]{1,12}@[a-z]{1,8}\\.com$"}}},
    },
    "required": ["id", "name", "score", "tags", "owner"],
}  # fmt: skip
BENCH_SCHEMA = {"type": "object", "properties": {"records": {"type": "array", "items": _RECORD, "minItems": 1000}},
                "required": ["records"]}  # fmt: skip


def workload(num_seqs: int = 256, seed: int = 0) -> tuple[list[list[int]], list[int]]:
    """The standard prompts and output lengths (``num_seqs=256`` gives 133,966 output tokens)."""
    random.seed(seed)
    prompts = [[random.randint(0, 10000) for _ in range(random.randint(100, 1024))] for _ in range(num_seqs)]
    max_tokens = [random.randint(100, 1024) for _ in range(num_seqs)]
    return prompts, max_tokens


def wordlevel_tokenizer(vocab_size: int, path: Path) -> Path:
    """Save a tokenizer with one word per token id (``t0`` .. ``tN``) to ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0").save_pretrained(path)
    return path


def bytelevel_tokenizer(vocab_size: int, path: Path, seed: int = 0) -> Path:
    """Save a byte-level BPE vocabulary of ``vocab_size`` tokens to ``path``: the 256 byte symbols, then random
    pieces shaped like a real vocabulary's (words with and without a leading space, digits, punctuation runs),
    so a grammar backend's mask work is that of a real vocabulary of this size (used with ``--json-schema``
    when no ``--tokenizer`` is given; prompts are token ids, so what the pieces spell does not matter)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    letters, punct = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", '{}[]":,.-_!?()@#'
    while len(vocab) < vocab_size - 1:
        kind = rng.random()
        if kind < 0.75:
            piece = ("Ġ" if rng.random() < 0.5 else "") + "".join(rng.choices(letters, k=rng.randint(1, 9)))
        elif kind < 0.85:
            piece = "".join(rng.choices("0123456789", k=rng.randint(1, 3)))
        else:
            piece = "".join(rng.choices(punct + "Ġ", k=rng.randint(1, 4)))
        vocab.setdefault(piece, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.save_pretrained(path)
    return path


def run(args: argparse.Namespace) -> dict:
    import torch

    from minisgl_core import LLM, SamplingParams

    config = json.loads((Path(args.model) / "config.json").read_text())
    make = bytelevel_tokenizer if args.json_schema else wordlevel_tokenizer
    tok_dir = args.tokenizer or make(config["vocab_size"], Path(tempfile.mkdtemp(prefix="tok-")))
    # flags left unset keep the engine's default (minisgl_core.config is their one source)
    optional = {"piecewise_cuda_graph_max_tokens": args.piecewise_cuda_graph_max_tokens}
    start = time.perf_counter()
    llm = LLM(
        args.model,
        tokenizer=str(tok_dir),
        load_format="dummy",
        dtype=args.dtype,
        attention=args.attention,
        page_size=args.page_size,
        disable_overlap=args.disable_overlap,
        mixed_chunk=not args.no_mixed_chunk,
        cuda_graph_max_bs=args.cuda_graph_max_bs,
        max_running_requests=args.max_running_requests,
        max_prefill_tokens=args.max_prefill_tokens,
        kv_memory_fraction=args.kv_memory_fraction,
        tp=args.tp,
        grammar_options=dict(kv.split("=", 1) for kv in args.grammar_option),
        **{name: value for name, value in optional.items() if value is not None},
    )
    ready_s = time.perf_counter() - start
    prompts, max_tokens = workload(args.num_seqs)
    schema = {"json_schema": BENCH_SCHEMA} if args.json_schema else {}
    params = [SamplingParams(temperature=0.6, ignore_eos=True, max_tokens=m, **schema) for m in max_tokens]
    warm = SamplingParams(temperature=0.6, max_tokens=32, **schema)
    llm.generate(["Benchmark: "] + prompts[:8], warm, use_tqdm=False)  # a grammar compiles here, once
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    trace = None
    if args.step_trace and torch.cuda.is_available():
        from step_trace import StepTrace

        trace = StepTrace(llm.runtime.engine)
        trace.enabled = True
    if llm.scheduler.grammar is not None:
        llm.scheduler.grammar.fill_seconds, llm.scheduler.grammar.fill_steps = 0.0, 0
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    total = sum(len(o.token_ids) for o in outputs)
    if args.num_seqs == 256 and total != EXPECTED_OUTPUT_TOKENS:
        raise SystemExit(f"wrong workload: {total} output tokens, expected {EXPECTED_OUTPUT_TOKENS}")
    engine = llm.runtime.engine
    grammar = llm.scheduler.grammar
    if grammar is not None and grammar.fill_steps:
        print(json.dumps({"grammar_fill_ms_per_step": round(grammar.fill_seconds / grammar.fill_steps * 1e3, 3),
                          "constrained_steps": grammar.fill_steps}), flush=True)  # fmt: skip
    if trace is not None:
        print(json.dumps(trace.summary(Path(args.step_trace))), flush=True)
    return {
        "label": args.label or f"{Path(args.model).name} {args.attention} page={args.page_size}",
        "model": Path(args.model).name,
        "attention": args.attention,
        "page_size": args.page_size,
        "overlap": not args.disable_overlap,
        "mixed_chunk": not args.no_mixed_chunk,
        "json_schema": args.json_schema,
        **({"grammar_options": args.grammar_option} if args.grammar_option else {}),
        "cuda_graphs": engine.graph_runner is not None,
        "piecewise_graph_max_tokens": engine.piecewise.max_tokens if engine.piecewise is not None else 0,
        "tp": args.tp,
        "num_seqs": args.num_seqs,
        "output_tokens": total,
        "prompt_tokens": sum(len(p) for p in prompts),
        "seconds": round(elapsed, 3),
        "throughput_tok_s": round(total / elapsed, 1),
        "ready_seconds": round(ready_s, 2),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "commit": os.environ.get("MINISGL_COMMIT", "unknown"),  # the device copy has no git metadata
        "kv_tokens": (engine.num_pages - 1) * args.page_size,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(Path(__file__).parent / "models" / "qwen3-0.6b"), help="config folder")
    p.add_argument("--attention", default="auto")
    p.add_argument("--page-size", type=int, default=1)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--disable-overlap", action="store_true")
    p.add_argument("--no-mixed-chunk", action="store_true", help="prefill steps without the running decodes")
    p.add_argument("--cuda-graph-max-bs", type=int, default=None, help="0 disables CUDA graphs")
    p.add_argument("--piecewise-cuda-graph-max-tokens", type=int, default=None, help="0 disables them")
    p.add_argument("--max-running-requests", type=int, default=256)
    p.add_argument("--max-prefill-tokens", type=int, default=8192)
    p.add_argument("--kv-memory-fraction", type=float, default=0.85)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--num-seqs", type=int, default=256)
    p.add_argument("--json-schema", action="store_true", help="constrain every request with BENCH_SCHEMA")
    p.add_argument("--grammar-option", action="append", default=[], help="KEY=VALUE for the grammar backend")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: synthetic)")
    p.add_argument("--label", default=None)
    p.add_argument("--step-trace", default=None, help="CUDA: write a per-step GPU busy/idle timeline here")
    p.add_argument("--out", default=None, help="append the result as one JSON line to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

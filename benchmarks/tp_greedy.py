"""Greedy tokens at TP=1 and TP=N over the same dummy-weight model: are they identical?

Dummy weights are generated as the full checkpoint tensors and sharded like real ones, so both runs hold the
same model; with float32 (default) the only difference is the order of the all-reduce sums, which must not
change a greedy token. Prints one JSON line (per prompt: tokens equal up to which position) and exits 1 on a
mismatch. On the 2-GPU machine:

    python benchmarks/tp_greedy.py --model benchmarks/models/qwen3-14b --tp 2
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline import wordlevel_tokenizer  # noqa: E402

from minisgl_core import LLM, SamplingParams  # noqa: E402


def generate(args: argparse.Namespace, tp: int, prompts: list[list[int]], tokenizer: str) -> list[list[int]]:
    greedy = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, ignore_eos=True)
    with LLM(
        args.model, tokenizer=tokenizer, load_format="dummy", dtype=args.dtype, attention=args.attention,
        device=args.device, tp=tp, max_running_requests=len(prompts), num_kv_tokens=args.num_kv_tokens,
    ) as llm:  # fmt: skip
        tokens = [o.token_ids for o in llm.generate(prompts, greedy, use_tqdm=False)]
    gc.collect()
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - CPU-only torch
        pass
    return tokens


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(Path(__file__).parent / "models" / "qwen3-14b"), help="config folder")
    p.add_argument("--tp", type=int, default=2)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--attention", default="torch", help="float32 needs a backend that takes it (torch)")
    p.add_argument("--device", default=None)
    p.add_argument("--num-prompts", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--num-kv-tokens", type=int, default=8192)
    args = p.parse_args(argv)
    vocab = json.loads((Path(args.model) / "config.json").read_text())["vocab_size"]
    tokenizer = str(wordlevel_tokenizer(vocab, Path(tempfile.mkdtemp(prefix="tok-"))))
    rng = random.Random(0)
    prompts = [[rng.randrange(min(vocab, 10000)) for _ in range(rng.randint(8, 64))] for _ in range(args.num_prompts)]
    single = generate(args, 1, prompts, tokenizer)
    sharded = generate(args, args.tp, prompts, tokenizer)
    agree = [common_prefix(a, b) for a, b in zip(single, sharded)]
    same = single == sharded
    print(json.dumps({"model": Path(args.model).name, "tp": args.tp, "dtype": args.dtype, "identical": same,
                      "tokens_per_prompt": args.max_tokens, "equal_prefix": agree}))  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""Host cost of admission on a multi-turn trace, without a model: is prefix matching or page bookkeeping a
lever for time to first token?

Plays a trace (``traces.py`` format; ``online_h200.sh``'s by default shape) through ``LLM.generate`` one turn
at a time, so later turns find their sessions' earlier turns in the prefix cache, with the engine's ``run``
replaced by an instant fake that returns random tokens. A tiny random Qwen3 (vocabulary 32,000, 8,192
positions) stands in for the model: only the scheduler's Python runs. Prints, per request, the host time of
admission (``_try_admit``: prefix match, page allocation), of putting the prompt into the cache
(``cache_prompt``) and of the release at the finish, with the prefix-cache hit rate.

    python benchmarks/traces.py synth --num-sessions 64 --turns 4 --rate 4 --think-time 2 --system-len 1024 \\
        --num-system-prompts 4 --user-len 512 --output-len 128 --max-context 8192 --seed 0 --out /tmp/trace.jsonl
    python benchmarks/admission_cost.py /tmp/trace.jsonl --page-size 64
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host_overhead import use_fake_engine  # noqa: E402
from traces import PromptBuilder, load_trace  # noqa: E402

from minisgl_core import LLM, SamplingParams  # noqa: E402
from minisgl_core.testing.tiny_models import save_tiny_model  # noqa: E402

MEASURED = {  # label -> (file suffix, function name) in the profile
    "admit_ms": ("scheduling/scheduler.py", "_try_admit"),
    "match_prefix_ms": ("radix_cache.py", "match_prefix"),
    "cache_prompt_ms": ("scheduling/kv_manager.py", "cache_prompt"),
    "release_ms": ("scheduling/kv_manager.py", "release"),
    "step_ms": ("scheduling/scheduler.py", "step"),
}


def run(trace: Path, page_size: int, cache: str) -> dict:
    model_dir = tempfile.mkdtemp(prefix="admission-")
    save_tiny_model(model_dir, "qwen3", vocab_size=32000, max_position_embeddings=8192)
    llm = LLM(model_dir, device="cpu", attention="torch", num_kv_tokens=800_000, max_model_len=8192,
              page_size=page_size, cache=cache)  # fmt: skip
    use_fake_engine(llm)
    vocab = llm.runtime.model_config.vocab_size
    reqs = load_trace(trace)
    builder = PromptBuilder(vocab_size=vocab)
    turns: dict[int, list[int]] = {}
    for i, r in enumerate(reqs):
        turns.setdefault(r.turn or 1, []).append(i)
    profiler, cached, prompt_tokens = cProfile.Profile(), 0, 0
    for turn in sorted(turns):
        prompts = [builder.prompt(reqs[i], i) for i in turns[turn]]
        params = [
            SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=reqs[i].output_length) for i in turns[turn]
        ]
        profiler.enable()
        outs = llm.generate(prompts, params, use_tqdm=False)
        profiler.disable()
        cached += sum(o.num_cached_tokens for o in outs)
        prompt_tokens += sum(len(p) for p in prompts)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    result: dict = {"requests": len(reqs), "page_size": page_size, "cache": cache,
                    "prefix_hit_rate": round(cached / prompt_tokens, 4)}  # fmt: skip
    for label, (suffix, name) in MEASURED.items():
        calls, seconds = 0, 0.0
        for (path, _, func), (_, ncalls, _, cumtime, _) in stats.items():
            if func == name and path.endswith(suffix):
                calls, seconds = calls + ncalls, seconds + cumtime
        per = "per_step" if label == "step_ms" else "per_request"
        result[f"{label}_{per}"] = round(seconds * 1e3 / (calls if per == "per_step" else len(reqs)) if calls else 0, 4)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", type=Path)
    p.add_argument("--page-size", type=int, default=64)
    p.add_argument("--cache", default="radix")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(run(args.trace, args.page_size, args.cache)))


if __name__ == "__main__":
    main()

"""Host overhead of the scheduling loop, without a model: what the CPU spends per step around the GPU.

Runs the standard offline workload (``offline.py``'s, token ids folded into the demo model's vocabulary)
through ``LLM.generate`` with the engine's ``run`` replaced by an instant fake that returns random tokens,
so only the Python around the model is timed: admission, planning, sampling-batch packing, KV bookkeeping,
reading results, stop checks and the offline API's loop. Runs on the CPU; ``--profile`` prints the top
functions by own time.

    python benchmarks/host_overhead.py --repeats 3
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline import EXPECTED_OUTPUT_TOKENS, workload  # noqa: E402

from minisgl_core import LLM, SamplingParams  # noqa: E402
from minisgl_core.engine import StepOutput  # noqa: E402
from minisgl_core.engine.sampler import SampleResult  # noqa: E402


def use_fake_engine(llm: LLM, seed: int = 0) -> None:
    """Replace ``llm``'s engine step by an instant one that samples uniformly random tokens (seeded)."""
    vocab = llm.runtime.model_config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    llm.runtime.engine.run = lambda plan: StepOutput(  # type: ignore[method-assign]
        SampleResult(torch.randint(0, vocab, (len(plan.sample),), generator=generator)), None
    )


def run_once(profile: bool) -> dict:
    llm = LLM("demo", device="cpu", num_kv_tokens=400_000, max_model_len=4096)
    vocab = llm.runtime.model_config.vocab_size
    use_fake_engine(llm)
    steps = 0
    step = llm.runtime.scheduler.step

    def counted():  # noqa: ANN202
        nonlocal steps
        steps += 1
        return step()

    llm.runtime.scheduler.step = counted  # type: ignore[method-assign]
    prompts, max_tokens = workload()
    prompts = [[t % vocab for t in p] for p in prompts]
    params = [SamplingParams(temperature=0.6, ignore_eos=True, max_tokens=m) for m in max_tokens]
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for o in outputs)
    assert tokens == EXPECTED_OUTPUT_TOKENS, tokens
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return {"steps": steps, "seconds": elapsed, "ms_per_step": elapsed / steps * 1e3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    runs = [run_once(args.profile and i == 0) for i in range(args.repeats)]
    per_step = [r["ms_per_step"] for r in runs]
    print(json.dumps({
        "steps": runs[0]["steps"], "output_tokens": EXPECTED_OUTPUT_TOKENS,
        "ms_per_step_best": round(min(per_step), 3), "ms_per_step_median": round(statistics.median(per_step), 3),
        "seconds_best": round(min(r["seconds"] for r in runs), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

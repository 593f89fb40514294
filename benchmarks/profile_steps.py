"""Where does a step's time go? Host phases and device kernels of the offline workload.

Runs the standard workload's requests through the scheduler and profiles a window of steps with
``torch.profiler``; the main host phases are labelled with ``record_function``. ``--phase decode`` (default)
lets prefill finish, skips ``--skip`` decode steps and profiles the next ``--steps``; ``--phase prefill``
skips ``--skip`` prefill steps and profiles the next ``--steps`` prefill steps. Both then time the same
number of steps again without the profiler.

    python benchmarks/profile_steps.py --attention flashinfer --steps 40
    python benchmarks/profile_steps.py --phase prefill --skip 2 --steps 4
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

import torch
from offline import wordlevel_tokenizer, workload
from torch.profiler import ProfilerActivity, profile, record_function

from minisgl_core import LLM, SamplingParams


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


HOST_TIME: dict[str, float] = {}


def label(obj: object, name: str, tag: str) -> None:
    fn = getattr(obj, name)

    def wrapped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        start = time.perf_counter()
        with record_function(tag):
            result = fn(*args, **kwargs)
        HOST_TIME[tag] = HOST_TIME.get(tag, 0.0) + time.perf_counter() - start
        return result

    setattr(obj, name, wrapped)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(Path(__file__).parent / "models" / "qwen3-0.6b"))
    p.add_argument("--attention", default="flashinfer")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--page-size", type=int, default=1)
    p.add_argument("--phase", choices=("decode", "prefill"), default="decode")
    p.add_argument("--skip", type=int, default=30, help="steps of that phase before the profiled window")
    p.add_argument("--rows", type=int, default=30)
    p.add_argument("--cprofile", action="store_true", help="then the same number of steps under cProfile (host)")
    args = p.parse_args()
    vocab = json.loads((Path(args.model) / "config.json").read_text())["vocab_size"]
    tok = wordlevel_tokenizer(vocab, Path(tempfile.mkdtemp()))
    llm = LLM(
        args.model,
        tokenizer=str(tok),
        load_format="dummy",
        dtype="bfloat16",
        attention=args.attention,
        page_size=args.page_size,
    )
    runtime = llm.runtime
    sched, engine = runtime.scheduler, runtime.engine
    prompts, max_tokens = workload()
    for prompt, m in zip(prompts, max_tokens):
        sched.add(runtime.make_request(prompt, SamplingParams(temperature=0.6, ignore_eos=True, max_tokens=m)))
    label(sched, "_schedule", "host:schedule")
    label(sched, "_process", "host:process(wait+bookkeeping)")
    label(engine, "run", "host:engine.run")
    if engine.graph_runner is not None:
        label(engine.graph_runner, "_fill", "host:graph.fill")
        label(engine.graph_runner.backend, "prepare_replay", "host:attn.prepare_replay")
    label(engine.sampler, "sample", "host:sampler")
    label(engine, "_finish", "host:finish(copy-back)")
    label(engine, "make_batch", "host:make_batch")
    label(engine.prefill_attn, "prepare", "host:attn.prepare")
    label(engine, "model", "host:model.forward")
    steps = 0
    if args.phase == "prefill":
        for _ in range(args.skip):
            sched.step()
    else:
        while any(r.in_prefill for r in sched.running) or sched.waiting:
            sched.step()
            steps += 1
        for _ in range(args.skip):
            sched.step()
    sync()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(args.steps):
            sched.step()
        sync()
    wall = (time.perf_counter() - start) / args.steps
    where = f"prefill steps {steps}; batch {len(sched.running)}"
    print(f"{where}; wall per {args.phase} step {wall * 1e3:.2f} ms (profiled)")
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=args.rows, max_name_column_width=60)
    print(table)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
    sync()
    HOST_TIME.clear()
    start = time.perf_counter()
    for _ in range(args.steps):
        sched.step()
    sync()
    print(f"wall per {args.phase} step without profiler: {(time.perf_counter() - start) / args.steps * 1e3:.2f} ms")
    for tag, seconds in sorted(HOST_TIME.items(), key=lambda kv: -kv[1]):
        print(f"  host {tag:<36} {seconds / args.steps * 1e3:7.3f} ms/step")
    if args.cprofile:
        with cProfile.Profile() as host_profile:
            for _ in range(args.steps):
                sched.step()
            sync()
        pstats.Stats(host_profile).sort_stats("tottime").print_stats(args.rows)


if __name__ == "__main__":
    main()

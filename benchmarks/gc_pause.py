"""How long a full garbage collection holds a process shaped like a server's engine worker, before and after
its start-up heap is frozen (what every server process does once ready, ``server/gc_pauses.py``).

    python benchmarks/gc_pause.py [--model demo] [--device cpu] [--repeats 3]

Builds an engine, imports what the server's processes import, then times ``gc.collect()`` (a full collection
walks every tracked object) ``--repeats`` times before and after :func:`freeze_startup_heap`, and once more
after serving a batch of requests."""

from __future__ import annotations

import argparse
import gc
import json
import time


def full_collection_ms() -> float:
    start = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import fastapi  # noqa: F401 - what the API process holds too
    import uvicorn  # noqa: F401
    import zmq  # noqa: F401

    from minisgl_core import LLM, SamplingParams
    from minisgl_core.server.gc_pauses import freeze_startup_heap

    llm = LLM(args.model, device=args.device)
    tracked = len(gc.get_objects())
    before = [round(full_collection_ms(), 1) for _ in range(args.repeats)]
    frozen = freeze_startup_heap()
    after = [round(full_collection_ms(), 1) for _ in range(args.repeats)]
    llm.generate(["hello"] * 64, SamplingParams(max_tokens=8), use_tqdm=False)
    served = round(full_collection_ms(), 1)
    print(json.dumps({
        "model": args.model, "device": args.device, "tracked_objects": tracked, "frozen": frozen,
        "full_collection_ms_before": before, "full_collection_ms_after": after,
        "full_collection_ms_after_64_requests": served,
    }))  # fmt: skip


if __name__ == "__main__":
    main()

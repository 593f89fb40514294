"""Kernel micro-benchmarks on the GPU, for choosing the decode step's kernels by measurement.

    python benchmarks/kernel_micro.py --out results.jsonl [--only bandwidth gemm attention]

* ``bandwidth``: what the device reads per second (a large ``sum`` and a ``copy_``): the ceiling the decode
  step's weight and KV reads are compared with.
* ``gemm``: the decode step's weight products (cuBLAS through ``F.linear``, Qwen3-0.6B shapes) at decode
  batch sizes: at few rows each costs about the same whatever its size (a per-kernel floor), which is what
  the fixed part of a decode step is made of.
* ``attention``: FlashInfer's paged decode (tensor cores and CUDA cores) with the NHD and HND KV layouts.

Every case runs 28 layers' worth of distinct weights / KV (like one model step, so the L2 cache does not
hold the data) inside a CUDA graph, and reports microseconds per call and the bytes streamed per second.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

LAYERS = 28
DTYPE = torch.bfloat16


def graph_time_us(calls: Callable[[], None], repeats: int = 20) -> float:
    """Microseconds per replay of a CUDA graph of ``calls`` (warmed up first)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        calls()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        calls()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / repeats


def emit(out: list[dict], **row: object) -> None:
    out.append(row)
    print(json.dumps(row), flush=True)


def bench_bandwidth(out: list[dict]) -> None:
    x = torch.ones(2 << 30, dtype=DTYPE, device="cuda")  # 4 GiB
    y = torch.empty_like(x)
    cases = (("sum", partial(torch.sum, x), x.numel() * 2), ("copy", partial(y.copy_, x), x.numel() * 4))
    for name, fn, moved in cases:
        fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            fn()
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1e3 / 10
        emit(out, bench="bandwidth", op=name, tb_per_s=round(moved / seconds / 1e12, 3))


GEMM_SHAPES = {"qkv": (4096, 1024), "o": (1024, 2048), "gate_up": (6144, 1024), "down": (1024, 3072)}


def _all_layers(x: torch.Tensor, weights: list[torch.Tensor]) -> None:
    for w in weights:
        F.linear(x, w)


def bench_gemm(out: list[dict], rows: list[int]) -> None:
    for (name, (n, k)), m in itertools.product(GEMM_SHAPES.items(), rows):
        weights = [torch.randn(n, k, dtype=DTYPE, device="cuda") * 0.02 for _ in range(LAYERS)]
        x = torch.randn(m, k, dtype=DTYPE, device="cuda")
        us = graph_time_us(partial(_all_layers, x, weights)) / LAYERS
        emit(out, bench="gemm", shape=name, m=m, us=round(us, 2), tb_per_s=round(n * k * 2 / us / 1e6, 3))


def _run_layers(wrapper: object, q: torch.Tensor, caches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for cache in caches:
        wrapper.run(q, cache)  # type: ignore[attr-defined]


def bench_attention(out: list[dict], batch_sizes: list[int], page_sizes: list[int]) -> None:
    import flashinfer

    heads, kv_heads, dim = 16, 8, 128
    gen = torch.Generator().manual_seed(0)
    workspace = torch.zeros(256 << 20, dtype=torch.uint8, device="cuda")
    for ps, bs in itertools.product(page_sizes, batch_sizes):
        kv_lens = torch.randint(600, 2000, (bs,), generator=gen, dtype=torch.int32)
        pages = (kv_lens + ps - 1) // ps
        total_pages = int(pages.sum())
        indptr = torch.zeros(bs + 1, dtype=torch.int32)
        torch.cumsum(pages, 0, out=indptr[1:])
        last = kv_lens - (pages - 1) * ps
        perm = torch.randperm(total_pages + 16, generator=gen)[:total_pages].to(torch.int32) + 1
        kv_bytes = int(kv_lens.sum()) * kv_heads * dim * 2 * 2
        for layout, tensor_cores in (("NHD", True), ("HND", True), ("NHD", False), ("HND", False)):
            shape = (total_pages + 17, ps, kv_heads, dim) if layout == "NHD" else (total_pages + 17, kv_heads, ps, dim)
            caches = [(torch.randn(shape, dtype=DTYPE, device="cuda"), torch.randn(shape, dtype=DTYPE, device="cuda"))
                      for _ in range(LAYERS)]  # fmt: skip
            q = torch.randn(bs, heads, dim, dtype=DTYPE, device="cuda")
            wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                workspace, layout, use_cuda_graph=True, use_tensor_cores=tensor_cores,
                paged_kv_indptr_buffer=torch.zeros(bs + 1, dtype=torch.int32, device="cuda"),
                paged_kv_indices_buffer=torch.zeros(total_pages, dtype=torch.int32, device="cuda"),
                paged_kv_last_page_len_buffer=torch.zeros(bs, dtype=torch.int32, device="cuda"),
            )  # fmt: skip
            wrapper.plan(indptr, perm.cuda(), last, heads, kv_heads, dim, ps, q_data_type=DTYPE, kv_data_type=DTYPE)
            us = graph_time_us(partial(_run_layers, wrapper, q, caches)) / LAYERS
            emit(out, bench="attention", page_size=ps, bs=bs, layout=layout, tensor_cores=tensor_cores,
                 us=round(us, 2), tb_per_s=round(kv_bytes / us / 1e6, 3))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", default=["bandwidth", "gemm", "attention"])
    p.add_argument("--rows", type=int, nargs="*", default=[1, 8, 64, 256])
    p.add_argument("--batch-sizes", type=int, nargs="*", default=[8, 32, 64, 128, 256])
    p.add_argument("--page-sizes", type=int, nargs="*", default=[64])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("kernel_micro.py needs a CUDA device")
    rows: list[dict] = []
    with torch.inference_mode():
        if "bandwidth" in args.only:
            bench_bandwidth(rows)
        if "attention" in args.only:
            bench_attention(rows, args.batch_sizes, args.page_sizes)
        if "gemm" in args.only:
            bench_gemm(rows, args.rows)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()

"""The host side of CUDA graphs: filling the fixed buffers of a padded decode batch, the token buckets of
prefill and mixed steps (runs on the CPU)."""

from __future__ import annotations

import torch

from minisgl_core.contracts import HOST_RING
from minisgl_core.engine.cuda_graph import CudaGraphRunner, graph_batch_sizes
from minisgl_core.engine.piecewise_graph import token_buckets
from minisgl_core.kv import PageTable


def test_batch_sizes_cover_every_batch() -> None:
    sizes = graph_batch_sizes(20)
    assert sizes == [1, 2, 4, 8, 16, 20]
    assert all(any(s >= b for s in sizes) for b in range(1, 21))


def test_token_buckets_cover_every_step_with_little_padding() -> None:
    assert token_buckets(2048) == [16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
    assert token_buckets(100) == [16, 32, 64, 96, 100] and token_buckets(8) == [8]
    sizes = token_buckets(3000)
    for n in range(1, 3001):
        padded = next(s for s in sizes if s >= n)
        assert padded <= (1.5 * n if n > 64 else max(2 * n, 16)), (n, padded)


def test_fill_pads_with_dummy_requests_and_writes_the_page_table() -> None:
    page_table = PageTable(5, 32, torch.device("cpu"))  # rows 0-4 and the dummy row 5
    table = page_table.device_table
    runner = CudaGraphRunner(
        model=lambda batch: batch.input_ids, backend=None, kv_pool=None, page_table=page_table,  # type: ignore[arg-type]
        last_token=torch.zeros(6, dtype=torch.int64), page_size=1, max_bs=8, device=torch.device("cpu"),
    )  # fmt: skip
    for step in range(HOST_RING + 2):  # the host buffers are reused in turn
        rows, kv_lens = [2, 0, 3], [4 + step, 9 + step, 1 + step]
        slots = torch.tensor([100 + step, 200 + step, 300 + step])
        runner._fill(4, rows, slots, kv_lens)
        meta = runner.meta[:, :4]
        assert meta[0].tolist() == rows + [5]
        assert meta[1].tolist() == [k - 1 for k in kv_lens] + [0]
        assert meta[2].tolist() == slots.tolist() + [0]
        assert meta[3].tolist() == kv_lens + [1]
        assert runner.kv_lens[:4].tolist() == kv_lens + [1]
        assert runner.cu_kv_lens[:5].tolist() == [0, *torch.tensor(kv_lens + [1]).cumsum(0).tolist()]
        assert [int(table[r, k - 1]) for r, k in zip(rows, kv_lens)] == slots.tolist()

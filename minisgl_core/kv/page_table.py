"""The page table: which KV slot holds position ``p`` of the request in table row ``r``."""

from __future__ import annotations

import torch


class PageTable:
    """``[rows, max_model_len]`` int32 tables on the device and mirrored on the host.

    Row ``rows - 1`` is a dummy row for padded requests (CUDA graphs); real requests get the others. The
    host mirror lets the scheduler read a request's slots (to insert them into the prefix cache) without
    touching the device.
    """

    def __init__(self, max_requests: int, max_model_len: int, device: torch.device) -> None:
        self.num_rows = max_requests + 1
        self.max_model_len = max_model_len
        self.dummy_row = max_requests
        self.device_table = torch.zeros((self.num_rows, max_model_len), dtype=torch.int32, device=device)
        self.host_table = torch.zeros((self.num_rows, max_model_len), dtype=torch.int32)
        self.host_np = self.host_table.numpy()
        """The host mirror as a NumPy array (same memory), for cheap per-step bookkeeping."""
        self._free_rows = list(range(max_requests - 1, -1, -1))

    @property
    def num_free_rows(self) -> int:
        return len(self._free_rows)

    def alloc_row(self) -> int:
        return self._free_rows.pop()

    def free_row(self, row: int) -> None:
        self._free_rows.append(row)

    def slots(self, row: int, length: int) -> torch.Tensor:
        """Host copy of the first ``length`` slots of ``row`` (int64)."""
        return self.host_table[row, :length].to(torch.int64)

    def write_host(self, rows: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor) -> None:
        """Record ``slots`` for (row, position) pairs in the host mirror (device is written by the engine)."""
        self.host_table[rows, positions] = slots.to(torch.int32)

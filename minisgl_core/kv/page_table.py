"""The page table: which KV slot holds position ``p`` of the request in table row ``r``.

:class:`PageTable` is the one owner of both copies. The scheduling process (TP rank 0) writes the host copy
as it gives requests slots; every engine process writes its device copy while it runs a step. The device
learns a position's slot in one of two ways: with the step that computes that position (the step's
``out_slots``, written by :meth:`PageTable.write_step`), or - for slots installed without computing them
(a cached prefix, or slots the prefix cache swapped) - from the writes :meth:`PageTable.install` queues,
which the next step plan carries to every rank (:meth:`PageTable.take_writes`, :meth:`PageTable.apply_writes`).
"""

from __future__ import annotations

import numpy as np
import torch

TableWrite = tuple[int, torch.Tensor]
"""``(row, slots)``: the first ``len(slots)`` positions of ``row`` hold ``slots`` (host int64)."""


class PageTable:
    """``[rows, max_model_len]`` int32 tables on the device and mirrored on the host.

    Row ``rows - 1`` is a dummy row for padded requests (CUDA graphs); its entries stay 0 (slots of the
    reserved page 0). Real requests get the other rows; entries past a request's KV length are stale.
    """

    def __init__(self, max_requests: int, max_model_len: int, device: torch.device) -> None:
        self.num_rows = max_requests + 1
        self.max_model_len = max_model_len
        self.dummy_row = max_requests
        self.device_table = torch.zeros((self.num_rows, max_model_len), dtype=torch.int32, device=device)
        self._host = torch.zeros((self.num_rows, max_model_len), dtype=torch.int32)
        self._host_np = self._host.numpy()  # same memory, for cheap per-step bookkeeping
        self._free_rows = list(range(max_requests - 1, -1, -1))
        self._pending: list[TableWrite] = []

    # -- rows (host, scheduling process) --------------------------------------------------------------

    @property
    def num_free_rows(self) -> int:
        return len(self._free_rows)

    def alloc_row(self) -> int:
        return self._free_rows.pop()

    def free_row(self, row: int) -> None:
        self._free_rows.append(row)

    # -- the host copy (scheduling process) -----------------------------------------------------------

    def slots(self, row: int, length: int) -> torch.Tensor:
        """Host copy of the first ``length`` slots of ``row`` (int64)."""
        return self._host[row, :length].to(torch.int64)

    def slot(self, row: int, position: int) -> int:
        return int(self._host_np[row, position])

    def assign(self, row: int, start: int, slots: torch.Tensor) -> None:
        """Positions ``start ..`` of ``row`` get ``slots``; a step computing them writes the device copy."""
        self._host[row, start : start + slots.numel()] = slots.to(torch.int32)

    def assign_next(self, rows: np.ndarray, positions: np.ndarray, slots: np.ndarray) -> None:
        """One new position per request (a decode step), vectorised; the step writes the device copy."""
        self._host_np[rows, positions] = slots

    def last_slots(self, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The slots at ``(rows[i], positions[i])`` (int64)."""
        return self._host_np[rows, positions].astype(np.int64)

    def install(self, row: int, slots: torch.Tensor) -> None:
        """The first ``len(slots)`` positions of ``row`` hold ``slots`` without a step computing them (a
        cached prefix, or a prefix the cache moved): recorded on the host and queued for the device."""
        self._host[row, : slots.numel()] = slots.to(torch.int32)
        self._pending.append((row, slots))

    def take_writes(self) -> list[TableWrite]:
        """The installs queued since the last call, oldest first (rows may be reused, so order matters)."""
        writes, self._pending = self._pending, []
        return writes

    # -- the device copy (every engine process) -------------------------------------------------------

    def apply_writes(self, writes: list[TableWrite], to_device: object) -> None:
        """Write installs (from a step plan) into the device copy; ``to_device`` moves a host tensor."""
        for row, slots in writes:
            self.device_table[row, : slots.numel()] = to_device(slots.to(torch.int32))  # type: ignore[operator]

    def write_step(self, rows: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor) -> None:
        """Record a step's new tokens in the device copy (device tensors: each token's row, position, slot)."""
        self.device_table[rows, positions] = slots.to(torch.int32)

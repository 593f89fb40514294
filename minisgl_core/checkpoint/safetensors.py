"""Reading a safetensors checkpoint: its files, tensors (whole or sliced per rank), and loading them into a
model's parameters by name."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from minisgl_core.config.progress import progress


def default_weight_loader(param: torch.Tensor, loaded: torch.Tensor | CheckpointSlice, shard_id: object = None) -> None:
    """Copy a whole (unsharded) tensor into ``param``, checking shapes (parameters without a ``weight_loader``)."""
    if param.shape != loaded.shape:
        raise ValueError(f"shape mismatch: parameter {tuple(param.shape)} vs checkpoint {tuple(loaded.shape)}")
    param.data.copy_(as_tensor(loaded))


def safetensors_files(model_dir: Path) -> list[Path]:
    """The checkpoint files of ``model_dir``: those named by ``model.safetensors.index.json``, else all."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [model_dir / n for n in names]
    else:
        files = sorted(model_dir.glob("*.safetensors"))
    missing = [f for f in files if not f.is_file()]
    if not files or missing:
        raise ValueError(f"no complete safetensors checkpoint in {model_dir} (missing: {missing or '*.safetensors'})")
    return files


class CheckpointSlice:
    """A checkpoint tensor not read yet: ``narrow`` and ``[...]`` read only the part asked for.

    Under tensor parallelism the engine hands these to ``load_weights`` so each rank reads only its shard;
    the core layers' weight loaders accept them as they accept tensors. :meth:`materialize` reads it all.
    Valid only while the iteration that produced it is on its item.
    """

    def __init__(self, handle: object) -> None:
        self._slice = handle

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self._slice.get_shape())  # type: ignore[attr-defined]

    def narrow(self, dim: int, start: int, length: int) -> torch.Tensor:
        index = [slice(None)] * len(self.shape)
        index[dim] = slice(start, start + length)
        return self._slice[tuple(index)]  # type: ignore[index]

    def __getitem__(self, index: object) -> torch.Tensor:
        return self._slice[index]  # type: ignore[index]

    def materialize(self) -> torch.Tensor:
        return self._slice[:]  # type: ignore[index]


def as_tensor(value: torch.Tensor | CheckpointSlice) -> torch.Tensor:
    """The whole tensor behind ``value`` (reads a :class:`CheckpointSlice` completely)."""
    return value.materialize() if isinstance(value, CheckpointSlice) else value


def iter_safetensors(
    model_dir: Path, lazy: bool = False, show_progress: bool = True
) -> Iterator[tuple[str, torch.Tensor | CheckpointSlice]]:
    """Yield ``(name, tensor)`` for every tensor of the checkpoint, one file at a time (host memory); with
    ``lazy``, :class:`CheckpointSlice` s instead, so a tensor-parallel rank reads only its shard. A progress bar
    counts the tensors and names the shard being read (with ``show_progress``, where bars are shown at all)."""
    from safetensors import safe_open

    files = safetensors_files(model_dir)
    total = 0
    for file in files:  # headers only
        with safe_open(str(file), framework="pt") as f:
            total += len(f.keys())
    with progress(desc="loading weights", total=total, unit="tensor", leave=False, disable=not show_progress) as bar:
        for i, file in enumerate(files):
            bar.set_postfix_str(f"shard {i + 1}/{len(files)}", refresh=False)
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
                    yield name, CheckpointSlice(f.get_slice(name)) if lazy else f.get_tensor(name)
                    bar.update()


def load_by_name(
    model: nn.Module,
    weights: Iterable[tuple[str, torch.Tensor | CheckpointSlice]],
    stacked: Mapping[str, tuple[str, object]] | None = None,
    skip: Iterable[str] = (),
) -> None:
    """Load Hugging Face-named ``weights`` into ``model``'s parameters.

    ``stacked`` maps a checkpoint name fragment to ``(fused fragment, shard id)``, e.g.
    ``{".q_proj.": (".qkv_proj.", "q"), ".gate_proj.": (".gate_up_proj.", 0)}``. Names containing any of
    ``skip`` are ignored. Raises ``ValueError`` for unknown names and for parameters left unloaded.
    """
    params = dict(model.named_parameters())
    stacked = stacked or {}
    skip = tuple(skip)
    loaded: set[tuple[str, object]] = set()
    for name, tensor in weights:
        if any(s in name for s in skip):
            continue
        shard_id: object = None
        target = name
        for fragment, (fused, shard) in stacked.items():
            if fragment in name:
                target, shard_id = name.replace(fragment, fused), shard
                break
        param = params.get(target)
        if param is None:
            raise ValueError(f"checkpoint tensor {name!r} has no matching parameter in {type(model).__name__}")
        loader = getattr(param, "weight_loader", default_weight_loader)
        loader(param, tensor, shard_id)  # loaders copy into the parameter's dtype
        loaded.add((target, shard_id))
    expected = set()
    for pname in params:
        shards = [shard for fused, shard in stacked.values() if fused in pname]
        expected.update((pname, shard) for shard in shards or [None])
    missing = sorted({name for name, _ in expected - loaded})
    if missing:
        raise ValueError(f"checkpoint has no weights for: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")

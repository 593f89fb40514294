"""Finding a model's files and streaming its weights (safetensors, local or from the hub, or dummy)."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.jinja", "tokenizer*"]


def resolve_model_dir(model: str, *, need_weights: bool = True, revision: str | None = None) -> Path:
    """Return a local folder holding ``model``: the path itself, or a snapshot of a hub repo.

    Raises ``ValueError`` with a clear message when the path does not exist and the hub cannot supply it.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ValueError(f"model path {model!r} is not a directory")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise ValueError(f"{model!r} is not a local folder and huggingface_hub is not installed") from exc
    patterns = CONFIG_PATTERNS + (["*.safetensors"] if need_weights else [])
    try:
        return Path(snapshot_download(model, revision=revision, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated, ...
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = " (HF_HUB_OFFLINE is set)" if offline else ""
        raise ValueError(
            f"model {model!r} is not a local folder and could not be fetched from the Hugging Face hub{hint}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


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


def iter_safetensors(model_dir: Path, lazy: bool = False) -> Iterator[tuple[str, torch.Tensor | CheckpointSlice]]:
    """Yield ``(name, tensor)`` for every tensor of the checkpoint, one file at a time (host memory); with
    ``lazy``, :class:`CheckpointSlice` s instead, so a tensor-parallel rank reads only its shard."""
    from safetensors import safe_open

    for file in safetensors_files(model_dir):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
                yield name, CheckpointSlice(f.get_slice(name)) if lazy else f.get_tensor(name)


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
        loader = getattr(param, "weight_loader", None)
        if loader is None:
            from minisgl_core.layers.linear import default_weight_loader as loader
        loader(param, tensor, shard_id)  # loaders copy into the parameter's dtype
        loaded.add((target, shard_id))
    expected = set()
    for pname in params:
        shards = [shard for fused, shard in stacked.values() if fused in pname]
        expected.update((pname, shard) for shard in shards or [None])
    missing = sorted({name for name, _ in expected - loaded})
    if missing:
        raise ValueError(f"checkpoint has no weights for: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")


def dummy_checkpoint(
    model_dir: Path, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> Iterator[tuple[str, torch.Tensor]] | None:
    """Random tensors named and shaped like the model's Hugging Face checkpoint (``--load-format dummy``),
    for ``load_weights``; ``None`` when transformers cannot build the architecture from ``config.json``.

    Each tensor is a function of ``(seed, name)`` only, and every tensor-parallel rank takes its shard of the
    same full tensor through the weight loaders: the model is the same at every TP size.
    """
    try:
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model_dir)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            shapes = [(n, p.shape) for n, p in AutoModelForCausalLM.from_config(config).named_parameters()]
    except Exception:  # noqa: BLE001 - an architecture transformers does not know: the caller falls back
        return None

    def tensors() -> Iterator[tuple[str, torch.Tensor]]:
        for name, shape in shapes:
            gen = torch.Generator(device=device).manual_seed(seed ^ zlib.crc32(name.encode()))
            yield name, torch.empty(shape, dtype=dtype, device=device).uniform_(-1e-2, 1e-2, generator=gen)

    return tensors()


def fill_dummy(model: nn.Module, seed: int = 0) -> None:
    """Give every parameter small random values, parameter by parameter: the fallback of
    :func:`dummy_checkpoint` (then a sharded model differs from the unsharded one)."""
    generators: dict[torch.device, torch.Generator] = {}
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            gen = generators.get(param.device)
            if gen is None:
                gen = generators[param.device] = torch.Generator(device=param.device).manual_seed(seed)
            param.uniform_(-1e-2, 1e-2, generator=gen)

"""A model's files: locating them (local folder, hub, the built-in ``demo``), reading safetensors, loading
tensors into parameters by name, dummy weights, the sampling defaults of ``generation_config.json``, and the
tiny random models the demo and tests use."""

from minisgl_core.checkpoint.dummy import dummy_checkpoint, fill_dummy
from minisgl_core.checkpoint.generation_config import generation_defaults
from minisgl_core.checkpoint.locate import DEMO_NAME, demo_dir, locate_model, resolve_model_dir
from minisgl_core.checkpoint.safetensors import (
    CheckpointSlice,
    as_tensor,
    default_weight_loader,
    iter_safetensors,
    load_by_name,
    safetensors_files,
)

__all__ = [
    "DEMO_NAME",
    "CheckpointSlice",
    "as_tensor",
    "default_weight_loader",
    "demo_dir",
    "dummy_checkpoint",
    "fill_dummy",
    "generation_defaults",
    "iter_safetensors",
    "load_by_name",
    "locate_model",
    "resolve_model_dir",
    "safetensors_files",
]

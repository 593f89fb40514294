"""An engine process assembled from settings: checks before loading (:func:`preflight`), then the model,
engine, cache policy and scheduler (:func:`build_runtime`), and requests made from prompts."""

from minisgl_core.runtime.build import Runtime, build_runtime, prepare_model
from minisgl_core.runtime.preflight import preflight

__all__ = ["Runtime", "build_runtime", "preflight", "prepare_model"]

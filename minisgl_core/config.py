"""Engine settings: one dataclass shared by the offline API, the CLI and every engine process."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DTYPES = ("auto", "bfloat16", "float16", "float32")
LOAD_FORMATS = ("auto", "safetensors", "dummy")
OPTION_FIELDS = ("cache_options", "scheduler_options")
_OPTION_NAME = re.compile(r"[^\s=]+")


def _check_option_name(key: object, what: str) -> None:
    if not isinstance(key, str) or not _OPTION_NAME.fullmatch(key):
        raise ValueError(f"{what} must be a non-empty string without '=' or whitespace, got {key!r}")


def parse_option(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)``, split at the first ``=`` (VALUE may be empty); ``ValueError`` when
    there is no ``=`` or KEY is empty or holds whitespace."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    _check_option_name(key, "KEY")
    return key, value


def check_options(name: str, options: object) -> None:
    """Raise ``ValueError`` unless ``options`` maps option names (as :func:`parse_option` accepts) to strings."""
    if not isinstance(options, Mapping):
        raise ValueError(f"{name} must be a mapping of option names to strings, got {type(options).__name__}")
    for key, value in options.items():
        _check_option_name(key, f"a key of {name}")
        if not isinstance(value, str):
            raise ValueError(f"{name}[{key!r}] must be a string (the policy parses it), got {value!r}")


def reject_options(options: Mapping[str, str], what: str) -> None:
    """For a policy that takes no options: ``ValueError`` naming the given keys, so a typo fails at start-up."""
    if options:
        raise ValueError(f"{what} takes no options, got {', '.join(sorted(options))}")


@dataclass
class EngineConfig:
    """Everything that decides how a model is served. Plugin-provided names (``attention``, ``cache``,
    ``scheduler``) are checked against the registries when the engine starts, not here."""

    model: str
    tokenizer: str | None = None
    attention: str = "auto"
    """A backend name, ``PREFILL,DECODE`` for one backend per phase, or ``auto``."""
    cache: str = "radix"
    cache_options: dict[str, str] = field(default_factory=dict)
    """Handed to the cache policy's factory as ``CacheContext.options`` (``--cache-option KEY=VALUE``)."""
    scheduler: str = "fcfs"
    scheduler_options: dict[str, str] = field(default_factory=dict)
    """Handed to the scheduler's factory as ``SchedulerContext.options`` (``--scheduler-option KEY=VALUE``)."""
    dtype: str = "auto"
    device: str | None = None
    """``None`` picks ``cuda`` when available, else ``cpu``."""
    page_size: int = 1
    max_prefill_tokens: int = 8192
    max_running_requests: int = 256
    max_model_len: int | None = None
    """Longest prompt + output a request may have; defaults to the model's ``max_position_embeddings``."""
    num_kv_tokens: int | None = None
    """KV-cache capacity in tokens; when ``None`` it is sized from ``kv_memory_fraction``."""
    kv_memory_fraction: float = 0.85
    """Share of the device memory left after loading weights that the KV cache may take (CUDA)."""
    load_format: str = "auto"
    seed: int = 0
    disable_overlap: bool = False
    cuda_graph_max_bs: int | None = None
    """Largest decode batch captured in a CUDA graph; 0 disables graphs, ``None`` picks a default."""
    prefill_graph: bool = False
    """Replay prefill chunks of exactly ``max_prefill_tokens`` tokens from one CUDA graph (CUDA, with a
    backend that supports it). Opt-in: it frees the host during prefill, but measured slower overall on an
    H200 whose host kept up without it (see ``docs/performance.md``)."""
    tp: int = 1
    """Tensor-parallel size: one engine process per rank (rank 0 schedules and samples for the group)."""
    nnodes: int = 1
    """Nodes the TP group spans (``tp`` must divide evenly over them)."""
    node_rank: int = 0
    dist_init_addr: str | None = None
    """``HOST:PORT`` of rank 0 for torch.distributed's rendezvous (default: a free local port)."""
    revision: str | None = None

    def __post_init__(self) -> None:
        for name in OPTION_FIELDS:  # a private copy, which worker processes receive pickled
            options = getattr(self, name)
            if isinstance(options, Mapping):
                setattr(self, name, dict(options))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that can never work."""
        if not self.model:
            raise ValueError("model must be a local path, a Hugging Face hub id or 'demo'")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.load_format not in LOAD_FORMATS:
            raise ValueError(f"load_format must be one of {', '.join(LOAD_FORMATS)}, got {self.load_format!r}")
        positive = {
            "page_size": self.page_size,
            "max_prefill_tokens": self.max_prefill_tokens,
            "max_running_requests": self.max_running_requests,
            "tp": self.tp,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_kv_tokens is not None and self.num_kv_tokens < self.page_size:
            raise ValueError(f"num_kv_tokens must hold at least one page, got {self.num_kv_tokens}")
        if not 0.0 < self.kv_memory_fraction <= 1.0:
            raise ValueError(f"kv_memory_fraction must be in (0, 1], got {self.kv_memory_fraction}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, got {self.max_model_len}")
        if self.nnodes < 1 or self.tp % self.nnodes or not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"tp {self.tp} must divide over nnodes {self.nnodes}, node_rank in [0, nnodes)")
        if self.nnodes > 1 and not self.dist_init_addr:
            raise ValueError("multi-node tensor parallelism needs dist_init_addr (HOST:PORT of node 0)")
        if self.cuda_graph_max_bs is not None and self.cuda_graph_max_bs < 0:
            raise ValueError(f"cuda_graph_max_bs must be >= 0, got {self.cuda_graph_max_bs}")
        if not self.attention or any(not part.strip() for part in self.attention.split(",")):
            raise ValueError(f"attention must be NAME or PREFILL,DECODE, got {self.attention!r}")
        if len(self.attention.split(",")) > 2:
            raise ValueError(f"attention takes at most two names (PREFILL,DECODE), got {self.attention!r}")
        for name in OPTION_FIELDS:
            check_options(name, getattr(self, name))

    @property
    def attention_names(self) -> tuple[str, str]:
        """``(prefill backend, decode backend)`` as given (``auto`` not yet resolved)."""
        parts = [p.strip() for p in self.attention.split(",")]
        return (parts[0], parts[-1])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

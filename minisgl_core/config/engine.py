"""Engine settings: one dataclass shared by the offline API, the CLI and every engine process. Each field is
the only place its default and help text are written (see :mod:`minisgl_core.contracts.settings`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from minisgl_core.contracts.options import check_options
from minisgl_core.contracts.settings import canonical_kwargs, setting

DTYPES = ("auto", "bfloat16", "float16", "float32")
LOAD_FORMATS = ("auto", "safetensors", "dummy")
OPTION_FIELDS = ("attention_options", "cache_options", "scheduler_options", "grammar_options")


@dataclass
class EngineConfig:
    """Everything that decides how a model is served. Plugin-provided names (``attention``, ``cache``,
    ``scheduler``) and their options are checked against the registries before the model loads
    (:func:`minisgl_core.runtime.preflight`), not here."""

    model: str = setting(help="local folder, Hugging Face hub id, or 'demo'", aliases=("model_path",))
    tokenizer: str | None = setting(None, "tokenizer folder or hub id (default: the model's)")
    attention: str = setting("auto", "attention backend, PREFILL,DECODE (one per phase), or auto", kind="attention")
    attention_options: dict[str, str] = setting(
        help="an option for the attention backend(s) (repeatable)", flag="--attention-option", factory=dict
    )
    cache: str = setting("radix", "KV-cache policy", kind="cache")
    cache_options: dict[str, str] = setting(
        help="an option for the cache policy (repeatable)", flag="--cache-option", factory=dict
    )
    scheduler: str = setting("fcfs", "scheduling policy", kind="scheduler")
    scheduler_options: dict[str, str] = setting(
        help="an option for the scheduling policy (repeatable)", flag="--scheduler-option", factory=dict
    )
    grammar_backend: str = setting(
        "auto",
        "grammar backend for structured outputs (JSON Schema, regex, EBNF, choice): a name, auto (xgrammar when "
        "installed, else any registered one) or none",
        kind="grammar",
    )
    grammar_options: dict[str, str] = setting(
        help="an option for the grammar backend (repeatable)", flag="--grammar-option", factory=dict
    )
    dtype: str = setting("auto", "weights and activations (auto: the checkpoint's)", choices=DTYPES)
    device: str | None = setting(None, "cpu, cuda, cuda:N (default: cuda when available)")
    page_size: int = setting(1, "tokens per KV page")
    max_prefill_tokens: int = setting(8192, "prompt tokens per prefill step (the chunk size)")
    max_running_requests: int = setting(256, "requests decoding at once")
    max_model_len: int | None = setting(
        None, "longest prompt + output (default: the model's max_position_embeddings)", aliases=("context_length",)
    )
    num_kv_tokens: int | None = setting(None, "KV-cache capacity in tokens (default: sized from memory)")
    kv_memory_fraction: float = setting(0.85, "share of the device memory free after loading weights for the KV cache")
    gpu_memory_utilization: float | None = setting(
        None,
        "share of the device's total memory for weights plus KV cache (vLLM's --gpu-memory-utilization, "
        "SGLang's --mem-fraction-static); when set it replaces --kv-memory-fraction",
        aliases=("mem_fraction_static",),
    )
    load_format: str = setting("auto", "'dummy' = random weights", choices=LOAD_FORMATS)
    seed: int = setting(0, "seed of the engine's sampler and of dummy weights")
    disable_overlap: bool = setting(False, "read each step's results before planning the next")
    mixed_chunk: bool = setting(
        True,
        "prefill steps also advance every running request by one token, in the same forward (off: a prefill "
        "step holds prompt chunks only and decoding waits for it)",
        aliases=("enable_mixed_chunk",),
    )
    cuda_graph_max_bs: int | None = setting(None, "largest decode batch captured in a CUDA graph (0 = off)")
    piecewise_cuda_graph_max_tokens: int = setting(
        2048,
        "largest prefill or mixed step (in tokens) replayed from piecewise CUDA graphs on CUDA: the forward "
        "pass captured between attention calls, attention run eagerly; larger steps run eagerly (0 = off)",
    )
    tp: int = setting(
        1, "tensor-parallel size (one engine process per rank)", aliases=("tensor_parallel_size", "tp_size")
    )
    nnodes: int = setting(1, "nodes the tensor-parallel group spans")
    node_rank: int = setting(0, "this node's index (node 0 schedules and serves)")
    dist_init_addr: str | None = setting(None, "HOST:PORT of node 0 for the torch.distributed rendezvous")
    revision: str | None = setting(None, "hub revision of the model")
    generation_config: str = setting(
        "auto",
        "sampling defaults (temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens): 'auto' = the "
        "model's generation_config.json, a FOLDER holding one, or 'none'; requests override them field by field",
    )

    def __post_init__(self) -> None:
        for name in OPTION_FIELDS:  # a private copy, which worker processes receive pickled
            options = getattr(self, name)
            if isinstance(options, Mapping):
                setattr(self, name, dict(options))
        self.validate()

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EngineConfig:
        """Build from keywords, accepting the aliases vLLM and SGLang users bring (``tensor_parallel_size``)."""
        return cls(**canonical_kwargs(cls, kwargs))

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that can never work."""
        if not self.model:
            raise ValueError("model must be a local path, a Hugging Face hub id or 'demo'")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.load_format not in LOAD_FORMATS:
            raise ValueError(f"load_format must be one of {', '.join(LOAD_FORMATS)}, got {self.load_format!r}")
        for name in ("page_size", "max_prefill_tokens", "max_running_requests", "tp"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_kv_tokens is not None and self.num_kv_tokens < self.page_size:
            raise ValueError(f"num_kv_tokens must hold at least one page, got {self.num_kv_tokens}")
        for name in ("kv_memory_fraction", "gpu_memory_utilization"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, got {self.max_model_len}")
        if self.nnodes < 1 or self.tp % self.nnodes or not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"tp {self.tp} must divide over nnodes {self.nnodes}, node_rank in [0, nnodes)")
        if self.nnodes > 1 and not self.dist_init_addr:
            raise ValueError("multi-node tensor parallelism needs dist_init_addr (HOST:PORT of node 0)")
        if self.cuda_graph_max_bs is not None and self.cuda_graph_max_bs < 0:
            raise ValueError(f"cuda_graph_max_bs must be >= 0, got {self.cuda_graph_max_bs}")
        if not isinstance(self.piecewise_cuda_graph_max_tokens, int) or self.piecewise_cuda_graph_max_tokens < 0:
            raise ValueError(
                f"piecewise_cuda_graph_max_tokens must be >= 0, got {self.piecewise_cuda_graph_max_tokens!r}"
            )
        parts = self.attention.split(",") if isinstance(self.attention, str) else [""]
        if len(parts) > 2 or any(not part.strip() for part in parts):
            raise ValueError(f"attention must be NAME or PREFILL,DECODE, got {self.attention!r}")
        for name in OPTION_FIELDS:
            check_options(name, getattr(self, name))

    @property
    def attention_names(self) -> tuple[str, str]:
        """``(prefill backend, decode backend)`` as given (``auto`` not yet resolved)."""
        parts = [p.strip() for p in self.attention.split(",")]
        return (parts[0], parts[-1])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

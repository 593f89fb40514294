"""The messages exchanged by the server's processes, one small msgspec struct per kind, msgpack-encoded.

Hops (every socket is a ZeroMQ PUSH -> PULL pipe; each process binds one PULL socket):

```
api server ──TokenizeRequest/Abort──► tokenizer ──NewRequests/Abort──► engine ──EngineOutputs──► detokenizer
     ▲  ▲                                  │                  ▲  │                                   │
     │  └────────RequestError──────────────┘                  │  └─ WorkerReady / EngineStats ──► api │
     │                                                        └──────────── Abort (stop string) ──────┤
     └──────────────────────────────── DetokOutputs ──────────────────────────────────────────────────┘
```

Sockets carry a tagged union each (see :data:`TO_API` etc.), so one decoder serves a socket.
"""

from __future__ import annotations

import msgspec

from minisgl_core.contracts.sampling import SamplingParams

# -- api server -> tokenizer ------------------------------------------------------------------------------


class TokenizeRequest(msgspec.Struct, tag=True, array_like=True):
    """One prompt to tokenize and submit as ``len(rids)`` engine requests (``n``), one params each.

    Exactly one of ``text``, ``token_ids`` and ``messages`` is set. ``max_tokens`` ``None`` means
    ``default_max_tokens`` (the model's generation config) capped to the rest of the context, or the rest of
    the context. ``chat``: the template options of ``messages`` (``minisgl_core.text.render_chat``'s)."""

    rids: list[str]
    params: list[SamplingParams]
    text: str | None = None
    token_ids: list[int] | None = None
    messages: list[dict] | None = None
    max_tokens: int | None = None
    chat: dict | None = None
    default_max_tokens: int | None = None
    echo: bool = False
    """Send the prompt's text back with the request's first output (``echo``)."""


class TextQuery(msgspec.Struct, tag=True, array_like=True):
    """``/tokenize`` (``text`` or ``messages``) or ``/detokenize`` (``token_ids``), answered by a
    :class:`TextAnswer` with the same ``qid``."""

    qid: int
    text: str | None = None
    messages: list[dict] | None = None
    token_ids: list[int] | None = None
    add_special_tokens: bool = True
    token_strs: bool = False
    chat: dict | None = None


class Abort(msgspec.Struct, tag=True, array_like=True):
    """Stop these requests and free their KV (client gone, stop string matched)."""

    rids: list[str]


class EngineInfo(msgspec.Struct, tag=True, array_like=True):
    """Facts about the engine that workers validate against, sent once at start-up."""

    max_model_len: int
    vocab_size: int


# -- tokenizer -> engine ----------------------------------------------------------------------------------


class EngineRequest(msgspec.Struct, array_like=True):
    rid: str
    prompt_ids: list[int]
    params: SamplingParams
    echo: bool = False


class NewRequests(msgspec.Struct, tag=True, array_like=True):
    reqs: list[EngineRequest]


class StatsRequest(msgspec.Struct, tag=True, array_like=True):
    """Ask the engine for an :class:`EngineStats` snapshot (``/metrics``)."""


# -- engine -> detokenizer --------------------------------------------------------------------------------


class DetokRequest(msgspec.Struct, array_like=True):
    """What the detokenizer needs to know about a request, sent before its first tokens."""

    rid: str
    prompt_len: int
    stop: list[str]
    skip_special_tokens: bool
    logprobs: bool
    stop_regex: list[str] = []
    prompt_ids: list[int] | None = None
    """Set when the prompt is echoed: the detokenizer sends its text with the acceptance output."""
    min_tokens: int = 0
    """Stops are not looked for in the text of the first ``min_tokens`` output tokens."""


class TokenUpdate(msgspec.Struct, array_like=True):
    """New tokens of one request after a step. ``logprobs``: ``(token, logprob, [(id, logprob), ...])`` per
    token when asked for."""

    rid: str
    token_ids: list[int]
    finish_reason: str | None = None
    logprobs: list[tuple[int, float, list[tuple[int, float]]]] | None = None
    cached_tokens: int = 0
    timing: tuple[float, float, float] | None = None
    """With the finish: seconds the request spent queued, prefilling (to its first token) and decoding."""
    prompt_logprobs: list[tuple[int, float, list[tuple[int, float]], int]] | None = None
    """Every prompt token's ``(token, logprob, top, rank)`` (the first one's logprob NaN), with the first
    sampled token of a request that asked for ``prompt_logprobs``."""


class EngineOutputs(msgspec.Struct, tag=True, array_like=True):
    """Everything one engine step produced, in one message: new requests first, then updates."""

    new: list[DetokRequest]
    updates: list[TokenUpdate]


# -- detokenizer -> api server ----------------------------------------------------------------------------


class TokenLogprobOut(msgspec.Struct, array_like=True):
    """A token's logprob; ``raw`` and ``top_raw`` are the true bytes of the token and its alternatives."""

    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]]
    raw: bytes = b""
    top_raw: list[bytes] = []
    rank: int = 0


class RequestOutput(msgspec.Struct, array_like=True):
    """A text delta of one request. ``completion_tokens`` counts all tokens so far. ``matched_stop`` (with
    finish reason ``stop``): the stop string or pattern that ended the text, or the token id (EOS or one of
    ``stop_token_ids``) that ended generation. The first output of every request is its acceptance (no
    tokens, sent before its first step runs), carrying ``prompt_text`` when the prompt is echoed."""

    rid: str
    text: str
    token_ids: list[int]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    logprobs: list[TokenLogprobOut] | None = None
    matched_stop: int | str | None = None
    prompt_text: str | None = None
    prompt_logprobs: list[TokenLogprobOut] | None = None
    timing: tuple[float, float, float] | None = None


class DetokOutputs(msgspec.Struct, tag=True, array_like=True):
    outputs: list[RequestOutput]


# -- any worker -> api server -----------------------------------------------------------------------------


class RequestError(msgspec.Struct, tag=True, array_like=True):
    """A request was rejected (bad prompt, too long, ...): an HTTP error for all its ``rids``."""

    rids: list[str]
    message: str
    status: int = 400
    param: str | None = None


class TextAnswer(msgspec.Struct, tag=True, array_like=True):
    """The answer to a :class:`TextQuery`: ``error`` set, or the ids / text (and token strings)."""

    qid: int
    token_ids: list[int] = []
    text: str = ""
    token_strs: list[str] | None = None
    error: str | None = None


class WorkerReady(msgspec.Struct, tag=True, array_like=True):
    name: str
    pid: int
    info: EngineInfo | None = None


class Heartbeat(msgspec.Struct, tag=True, array_like=True):
    """The engine loop is alive: sent every ``beat interval`` seconds, busy or idle."""


class WorkerFailed(msgspec.Struct, tag=True, array_like=True):
    name: str
    error: str


class EngineStats(msgspec.Struct, tag=True, array_like=True):
    num_running: int
    num_waiting: int
    kv_pages_total: int
    kv_pages_free: int
    kv_pages_cached: int
    kv_pages_used: int
    prompt_tokens: int
    """Prompt tokens of finished requests (cumulative)."""
    cached_prompt_tokens: int
    """Of those, tokens served from the prefix cache (cumulative)."""
    generation_tokens: int
    num_retractions: int
    num_aborted: int
    """Requests aborted (client gone, stop string) (cumulative)."""
    steps: dict[str, tuple[int, int, float]] = {}
    """Per kind of step (prefill, mixed, decode): steps, tokens, seconds (cumulative; ``StepStats``)."""


TO_TOKENIZER = TokenizeRequest | Abort | EngineInfo | TextQuery
TO_ENGINE = NewRequests | Abort | StatsRequest
TO_DETOKENIZER = EngineOutputs
TO_API = DetokOutputs | RequestError | WorkerReady | WorkerFailed | EngineStats | Heartbeat | TextAnswer

encode = msgspec.msgpack.Encoder().encode


def decoder(kind: object) -> msgspec.msgpack.Decoder:
    """A decoder for one socket's message union."""
    return msgspec.msgpack.Decoder(kind)

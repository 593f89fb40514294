"""The detokenizer process: batched token updates from the engine -> text deltas for the API server.

Contract: per request, text is produced incrementally (O(1) per token) and never ends in half a UTF-8
character. When a stop string matches, the request is finished here with reason ``stop`` (text trimmed
before the stop) and the engine is told to abort it, so its KV is freed at once. Updates for requests this
process does not know (already finished here) are dropped.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import zmq

from minisgl_core.server.gc_pauses import prepare_server_process
from minisgl_core.server.ipc import Addresses, Receiver, Sender, fail_start_up, setup_worker
from minisgl_core.server.messages import (
    TO_DETOKENIZER,
    Abort,
    DetokOutputs,
    EngineOutputs,
    RequestOutput,
    TokenLogprobOut,
    WorkerReady,
)
from minisgl_core.server.threads import use_one_torch_thread
from minisgl_core.server.token_bytes import token_bytes_fn
from minisgl_core.text import IncrementalDetokenizer, load_tokenizer
from minisgl_core.text.stops import DEFAULT_REGEX_WINDOW

logger = logging.getLogger("minisgl.detokenizer")


@dataclass
class _State:
    detok: IncrementalDetokenizer
    prompt_len: int
    logprobs: bool
    num_tokens: int = 0
    last_token: int | None = None


class Detokenizer:
    """Per-request incremental detokenization of engine output batches."""

    def __init__(self, tokenizer: Any, regex_window: int = DEFAULT_REGEX_WINDOW) -> None:
        self.tokenizer = tokenizer
        self.regex_window = regex_window
        self.states: dict[str, _State] = {}
        self._token_text: dict[int, str] = {}
        self._token_bytes = functools.lru_cache(maxsize=1 << 16)(token_bytes_fn(tokenizer))

    def process(self, msg: EngineOutputs) -> tuple[list[RequestOutput], list[str]]:
        """Outputs for the API server, and the rids the engine must abort (stop strings)."""
        outputs: list[RequestOutput] = []
        for r in msg.new:  # each request's acceptance
            detok = IncrementalDetokenizer(
                self.tokenizer, r.stop, r.skip_special_tokens, r.stop_regex, self.regex_window, r.min_tokens
            )
            self.states[r.rid] = _State(detok, r.prompt_len, r.logprobs)
            echo = None
            if r.prompt_ids is not None:
                echo = self.tokenizer.decode(r.prompt_ids, skip_special_tokens=r.skip_special_tokens)
            outputs.append(RequestOutput(r.rid, "", [], None, r.prompt_len, 0, prompt_text=echo))
        aborts: list[str] = []
        for u in msg.updates:
            state = self.states.get(u.rid)
            if state is None:
                continue
            detok = state.detok
            text = detok.add(u.token_ids) if u.token_ids else ""
            state.num_tokens += len(u.token_ids)
            if u.token_ids:
                state.last_token = u.token_ids[-1]
            reason = u.finish_reason
            matched: int | str | None = None
            if detok.stopped:
                matched = detok.matched
                if reason is None:
                    aborts.append(u.rid)
                if reason in (None, "length"):  # the text ended before the token limit did
                    reason = "stop"
            elif reason == "stop":
                matched = state.last_token  # an EOS or stop token id ended it (SGLang reports the id)
            if reason is not None:
                text += detok.flush(keep_partial=True)  # final text == one-shot decode, like LLM.generate
                del self.states[u.rid]
            lps = self._logprobs(u.logprobs) if state.logprobs and u.logprobs else None
            outputs.append(
                RequestOutput(
                    u.rid,
                    text,
                    u.token_ids,
                    reason,
                    state.prompt_len,
                    state.num_tokens,
                    u.cached_tokens,
                    lps,
                    matched,
                    prompt_logprobs=self._logprobs(u.prompt_logprobs) if u.prompt_logprobs else None,
                    timing=u.timing,
                )
            )
        return outputs, aborts

    def token_text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], skip_special_tokens=False)
            self._token_text[token_id] = text
        return text

    def _logprobs(self, entries: list) -> list[TokenLogprobOut]:
        """``(token, logprob, top[, rank])`` tuples with their tokens' text and bytes."""
        t, b = self.token_text, self._token_bytes
        return [
            TokenLogprobOut(tok, t(tok), lp, [(i, t(i), v) for i, v in top], b(tok), [b(i) for i, _ in top], *rank)
            for tok, lp, top, *rank in entries
        ]


def run_detokenizer_worker(
    tokenizer_path: str, addrs: Addresses, log_level: str, gc_warning_threshold_s: float, regex_window: int
) -> None:
    """Process entry point: load the tokenizer, report ready to the API server, then serve."""
    setup_worker("detokenizer", log_level)
    ctx = zmq.Context()
    to_api = Sender(ctx, addrs.api)
    try:
        detok = Detokenizer(load_tokenizer(tokenizer_path), regex_window)
        inbox = Receiver(ctx, addrs.detokenizer, TO_DETOKENIZER)
        to_engine = Sender(ctx, addrs.engine)
    except Exception as exc:  # noqa: BLE001 - reported to the launcher
        fail_start_up(to_api, "detokenizer", exc)
    use_one_torch_thread()  # after loading: the tokenizer may have imported torch
    prepare_server_process("detokenizer", gc_warning_threshold_s)
    to_api.send(WorkerReady("detokenizer", os.getpid()))
    while True:
        outputs: list[RequestOutput] = []
        aborts: list[str] = []
        for msg in inbox.recv_all(block=True):
            out, ab = detok.process(msg)
            outputs += out
            aborts += ab
        if aborts:
            to_engine.send(Abort(aborts))
        if outputs:
            to_api.send(DetokOutputs(outputs))

"""The offline API: ``LLM(model).generate(prompts, SamplingParams(...))`` in the calling process."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minisgl_core.checkpoint import generation_defaults
from minisgl_core.config import EngineConfig
from minisgl_core.config.progress import progress
from minisgl_core.contracts.request import FinishReason, Req, TokenLogprob
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.runtime import Runtime, build_runtime
from minisgl_core.scheduling import Scheduler
from minisgl_core.text import IncrementalDetokenizer, load_tokenizer

Prompt = str | Sequence[int]


@dataclass
class RequestOutput:
    """The result of one prompt."""

    prompt: str | None
    prompt_token_ids: list[int]
    text: str
    token_ids: list[int]
    finish_reason: str
    """``"stop"`` (EOS, a stop token or a stop string) or ``"length"`` (``max_tokens`` or the context)."""
    num_cached_tokens: int = 0
    """Prompt tokens whose KV came from the prefix cache."""
    logprobs: list[TokenLogprob] | None = None
    """Per generated token, when ``SamplingParams.logprobs`` was set."""
    prompt_logprobs: list[TokenLogprob | None] | None = None
    """Per prompt token when ``SamplingParams.prompt_logprobs`` was set (as vLLM: ``None`` for the first token,
    which has nothing before it; ``rank`` is filled)."""


class LLM:
    """An engine in this process. Keyword arguments are :class:`minisgl_core.config.EngineConfig` fields (or
    their vLLM/SGLang aliases, e.g. ``tensor_parallel_size``); their defaults are EngineConfig's.

    >>> llm = LLM("demo", attention="torch", cache="radix")
    >>> out = llm.generate("Hello", SamplingParams(temperature=0.0, max_tokens=8))[0]
    """

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.config = EngineConfig.from_kwargs(model=model, **kwargs)
        self.runtime: Runtime = build_runtime(self.config)
        if self.runtime.followers:
            weakref.finalize(self, self.runtime.shutdown)
        self.tokenizer = load_tokenizer(self.config.tokenizer or self.runtime.model_dir)
        self.generation_defaults = generation_defaults(self.config.generation_config, self.runtime.model_dir)
        """``SamplingParams`` fields from the model's ``generation_config.json`` (``generation_config``)."""

    def get_default_sampling_params(self) -> SamplingParams:
        """What :meth:`generate` uses when given no ``SamplingParams``: the generation-config defaults over
        SamplingParams' own."""
        return SamplingParams(**self.generation_defaults)

    def shutdown(self) -> None:
        """Stop the other tensor-parallel ranks (called automatically at exit; safe to call twice)."""
        self.runtime.shutdown()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def scheduler(self) -> Scheduler:
        """The core scheduler, for tests and introspection."""
        return self.runtime.scheduler

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
    ) -> list[RequestOutput]:
        """Generate for one prompt or a list (text or token ids); results come back in input order. Without
        ``sampling_params``, :meth:`get_default_sampling_params`."""
        prompt_list = self._as_prompt_list(prompts)
        if sampling_params is None:
            sampling_params = self.get_default_sampling_params()
        if isinstance(sampling_params, SamplingParams):
            params_list = [sampling_params] * len(prompt_list)
        else:
            params_list = list(sampling_params)
            if len(params_list) != len(prompt_list):
                raise ValueError(f"{len(prompt_list)} prompts but {len(params_list)} sampling params")
        reqs = [self._make_request(p, sp) for p, sp in zip(prompt_list, params_list)]
        grammar = self.runtime.scheduler.grammar
        for req in reqs:  # a constraint that does not compile is a ValueError before anything runs
            if grammar is not None and req.params.constraint is not None:
                grammar.result(req)
        return self._run(reqs, use_tqdm and len(reqs) > 1)

    @staticmethod
    def _as_prompt_list(prompts: Prompt | Sequence[Prompt]) -> list[Prompt]:
        if isinstance(prompts, str):
            return [prompts]
        if isinstance(prompts, Sequence) and prompts and all(isinstance(t, int) for t in prompts):
            return [prompts]  # a single prompt given as token ids
        prompt_list = list(prompts)  # type: ignore[arg-type]
        if not prompt_list:
            raise ValueError("no prompts given")
        return prompt_list

    def _make_request(self, prompt: Prompt, params: SamplingParams) -> Req:
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("prompt is empty")
            ids = self.tokenizer.encode(prompt, add_special_tokens=True)
            text: str | None = prompt
        else:
            ids, text = prompt, None  # copied (and checked) by make_request
        # incremental detokenization is needed only to watch for stops (strings, patterns); else decode once at the end
        detok = None
        if params.stop or params.stop_regex:
            detok = IncrementalDetokenizer(
                self.tokenizer, params.stop, params.skip_special_tokens, params.stop_regex, min_tokens=params.min_tokens
            )
        return self.runtime.make_request(ids, params, user_data=_Pending(text, detok))

    def _run(self, reqs: list[Req], show_progress: bool) -> list[RequestOutput]:
        scheduler = self.runtime.scheduler
        bar = progress(total=len(reqs), desc="generate", disable=not show_progress)
        pending = set()
        for req in reqs:
            if req.max_new_tokens == 0:
                req.finish_reason = FinishReason.LENGTH
                continue
            scheduler.add(req)
            pending.add(req.rid)
        bar.update(len(reqs) - len(pending))
        try:
            while pending:
                if not scheduler.has_work():
                    raise RuntimeError("scheduler went idle with requests unfinished (engine bug)")
                for update in scheduler.step():
                    req = update.req
                    state: _Pending = req.user_data
                    if update.logprobs is not None:
                        state.logprobs.extend(update.logprobs)
                    if state.detok is not None:
                        state.text += state.detok.add(update.new_token_ids)
                        if state.detok.stopped and not req.finished:
                            scheduler.abort(req)  # a stop string ended it
                            req.finish_reason = FinishReason.STOP
                    if req.finished and req.rid in pending:
                        pending.discard(req.rid)
                        self._finish_text(req)  # now, while the device runs the next steps
                        bar.update(1)
        except BaseException:
            for req in reqs:
                if not req.finished:
                    scheduler.abort(req)
            raise
        finally:
            bar.close()
        return [self._output(req) for req in reqs]

    def _finish_text(self, req: Req) -> None:
        state: _Pending = req.user_data
        if state.done:
            return
        state.done = True
        if state.detok is not None:
            state.text += state.detok.flush()
        else:
            state.text = self.tokenizer.decode(req.output_ids, skip_special_tokens=req.params.skip_special_tokens)

    def _output(self, req: Req) -> RequestOutput:
        state: _Pending = req.user_data
        self._finish_text(req)
        reason = req.finish_reason.value if req.finish_reason is not None else "length"
        return RequestOutput(
            prompt=state.prompt,
            prompt_token_ids=req.prompt_ids,
            text=state.text,
            token_ids=list(req.output_ids),
            finish_reason=reason,
            num_cached_tokens=req.num_cached_tokens,
            logprobs=state.logprobs if req.params.logprobs is not None else None,
            prompt_logprobs=[None, *req.prompt_logprobs] if req.params.prompt_logprobs is not None else None,
        )


class _Pending:
    """Per-request state of the offline API while it generates."""

    def __init__(self, prompt: str | None, detok: IncrementalDetokenizer | None) -> None:
        self.prompt = prompt
        self.detok = detok
        self.text = ""
        self.done = False
        """``text`` is final (decoded when the request finished)."""
        self.logprobs: list[TokenLogprob] = []

"""The body of ``POST /v1/completions``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

from minisgl_core.server.openai_protocol import MAX_CHOICES, Bool, SamplingFields, TokenId

Prompt = (
    Annotated[str, Strict()]
    | Annotated[list[TokenId], Field(min_length=1)]
    | Annotated[list[Annotated[str, Strict()]], Field(min_length=1, max_length=MAX_CHOICES)]
    | Annotated[list[Annotated[list[TokenId], Field(min_length=1)]], Field(min_length=1, max_length=MAX_CHOICES)]
)


class CompletionRequest(SamplingFields):
    """``best_of`` choices are sampled and the ``n`` with the highest cumulative logprob are returned.
    ``echo`` prepends the prompt to each choice (with its tokens' logprobs when ``logprobs`` is set)."""

    prompt: Prompt
    logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    echo: Bool | None = None
    best_of: Annotated[int, Strict(), Field(ge=1, le=MAX_CHOICES)] | None = None
    prompt_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    """vLLM's extension: each prompt token's logprob and this many top alternatives, in ``prompt_logprobs``."""

    def prompts(self) -> list[str | list[int]]:
        """The prompt(s) as a list: one text or one token-id list per prompt."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]

    @property
    def prompt_scores(self) -> int | None:
        """How many alternatives of each prompt token the engine must keep (``None``: no prompt logprobs)."""
        wanted = [k for k in (self.prompt_logprobs, self.logprobs if self.echo else None) if k is not None]
        return max(wanted) if wanted else None

    @property
    def num_samples(self) -> int:
        """Engine requests per prompt: ``best_of`` when given, else ``n``."""
        return self.best_of or self.num_choices

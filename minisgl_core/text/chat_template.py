"""Rendering chat messages with a chat template: the tokenizer's own, one given with ``--chat-template``, or
one sent with the request; with tools, documents and template keywords (``enable_thinking``) passed through
as transformers' ``apply_chat_template`` passes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RESERVED_KWARGS = frozenset(
    {
        "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
        "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
        "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
    }
)  # fmt: skip
"""``apply_chat_template``'s own arguments: not settable through ``chat_template_kwargs``."""


class ChatTemplateError(ValueError):
    """A chat request that cannot be rendered; ``param`` names the request field at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def load_chat_template(value: str) -> str:
    """``--chat-template``: the text of the file ``value`` names, or ``value`` itself when it is a Jinja
    template; ``ValueError`` when it is neither."""
    path = Path(value).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if "{{" in value or "{%" in value:
        return value
    raise ValueError(f"--chat-template {value!r}: no such file, and not a Jinja template either")


def render_chat(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    template: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    documents: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
    kwargs: dict[str, Any] | None = None,
) -> str:
    """The prompt text of ``messages``. ``template`` replaces the tokenizer's; without either a
    :class:`ChatTemplateError` says the model has none."""
    template = template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise ChatTemplateError(
            "this model has no chat template: start the server with --chat-template FILE, send "
            "'chat_template', or use /v1/completions",
            "messages",
        )
    kwargs = dict(kwargs or {})
    bad = sorted(RESERVED_KWARGS & kwargs.keys())
    if bad:
        message = f"chat_template_kwargs may not set {', '.join(bad)}; use the request field"
        raise ChatTemplateError(message, "chat_template_kwargs")
    if continue_final_message:
        if add_generation_prompt:
            raise ChatTemplateError(
                "continue_final_message and add_generation_prompt cannot both be true", "continue_final_message"
            )
        if messages[-1].get("role") != "assistant":
            raise ChatTemplateError("continue_final_message needs an assistant message last", "continue_final_message")
    return tokenizer.apply_chat_template(
        messages,
        tools=tools or None,
        documents=documents or None,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        tokenize=False,
        **kwargs,
    )


def apply_chat_template(tokenizer: Any, messages: list[dict[str, Any]], **options: Any) -> list[int]:
    """Prompt token ids of ``messages`` (options as :func:`render_chat`'s); the template writes any BOS."""
    return tokenizer.encode(render_chat(tokenizer, messages, **options), add_special_tokens=False)

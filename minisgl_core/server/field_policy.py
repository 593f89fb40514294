"""The "no silent ignore" rule: every request field either works or is refused with 400 naming it.

The request models declare the fields this server implements; anything else a body carries arrives here
(``model_extra``) and is judged by name:

- ``null`` for a field the OpenAI API or a vendor extension defines means "the default": accepted.
- Pure metadata (:data:`METADATA`) is accepted and has no effect on the answer.
- Some fields are accepted with the one value that describes what this server does anyway
  (:data:`ACCEPTED_VALUES`, e.g. ``store: false``, ``response_format: {"type": "text"}``).
- Known OpenAI fields and vLLM/SGLang extensions this server does not implement (:data:`REFUSED`) get a
  400 saying so; any other name gets OpenAI's own answer, ``Unrecognized request argument supplied: X``.

The vendor extensions that *are* implemented are the fields the models declare beyond OpenAI's
(listed in docs/server.md); the structured-output fields are in :mod:`.structured_outputs`.
"""

from __future__ import annotations

from typing import Any

from minisgl_core.server.errors import APIError

METADATA = frozenset({"user", "metadata", "safety_identifier", "prompt_cache_key"})
"""Accepted, stored nowhere, no effect on generation (as in OpenAI's API for a server that keeps nothing)."""

ACCEPTED_VALUES: dict[str, list[Any]] = {
    "store": [False],
    "service_tier": ["auto", "default"],
    "modalities": [["text"]],
    "prompt_cache_retention": ["in_memory"],
    "include_obfuscation": [False],
}
"""Fields accepted only with the value that means what this server does anyway."""

_LATER = "not implemented by this server yet"
COMMON_REFUSED: dict[str, str] = {
    "structured_outputs": "use response_format, guided_json / guided_regex / guided_choice / guided_grammar",
    "include_stop_str_in_output": _LATER,
    "no_stop_trim": _LATER,
    "spaces_between_special_tokens": "not supported",
    "truncate_prompt_tokens": "not supported (prompts longer than the context are refused)",
    "allowed_token_ids": "not supported",
    "bad_words": "not supported",
    "length_penalty": "beam search is not supported",
    "use_beam_search": "beam search is not supported",
    "return_tokens_as_token_ids": "not supported",
    "priority": "request priorities are not supported",
    "lora_path": "LoRA adapters are not supported",
    "return_hidden_states": "not supported",
    "store": "this server stores nothing",
    "service_tier": "service tiers are not supported",
    "prompt_cache_retention": "the prefix cache keeps entries in memory only ('in_memory')",
    "prompt_cache_options": "not supported",
    "moderation": "not supported",
}  # fmt: skip

CHAT_REFUSED: dict[str, str] = {
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
    "verbosity": "not supported",
    "reasoning_effort": "not implemented by this server yet",
    "functions": "function calling is not implemented by this server yet",
    "function_call": "function calling is not implemented by this server yet",
    "echo": "not supported for chat (vLLM's chat 'echo')",
}

COMPLETION_REFUSED: dict[str, str] = {
    "suffix": "insertion (suffix) needs a fill-in-the-middle model; not supported",
}

STREAM_OPTIONS_REFUSED: dict[str, str] = {"include_obfuscation": "stream obfuscation is not supported"}


def _judge(name: str, value: Any, refused: dict[str, str], where: str = "") -> None:
    param = f"{where}{name}"
    known = name in refused or name in METADATA or name in ACCEPTED_VALUES
    if value is None and known:
        return
    if name in METADATA or value in ACCEPTED_VALUES.get(name, ()):
        return
    if name in refused:
        raise APIError(400, f"'{param}' is not supported: {refused[name]}", param)
    raise APIError(400, f"Unrecognized request argument supplied: {param}", param)


def check_fields(extra: dict[str, Any], endpoint: str) -> None:
    """Raise a 400 :class:`APIError` for the first field of ``extra`` (undeclared fields of a ``chat`` or
    ``completion`` body) that is neither accepted metadata nor an accepted value."""
    refused = {**COMMON_REFUSED, **(CHAT_REFUSED if endpoint == "chat" else COMPLETION_REFUSED)}
    for name, value in extra.items():
        _judge(name, value, refused)


def check_stream_options(extra: dict[str, Any]) -> None:
    for name, value in extra.items():
        _judge(name, value, STREAM_OPTIONS_REFUSED, "stream_options.")

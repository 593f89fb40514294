"""The built-in output parsers, registered by the core's own plugin like any third-party parser: reasoning
(``qwen3``, ``deepseek-r1``) and tool calls (``hermes``/``qwen3``, ``llama3``)."""

__all__: list[str] = []

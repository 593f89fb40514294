"""Text in and out: loading a model's tokenizer, chat templates, and incremental, UTF-8-safe
detokenization with stop strings."""

from minisgl_core.text.chat_template import ChatTemplateError, apply_chat_template, load_chat_template, render_chat
from minisgl_core.text.detokenizer import IncrementalDetokenizer
from minisgl_core.text.tokenizer import load_tokenizer

__all__ = [
    "ChatTemplateError",
    "IncrementalDetokenizer",
    "apply_chat_template",
    "load_chat_template",
    "load_tokenizer",
    "render_chat",
]

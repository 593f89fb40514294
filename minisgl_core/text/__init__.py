"""Text in and out: loading a model's tokenizer, chat templates, and incremental, UTF-8-safe
detokenization with stop strings."""

from minisgl_core.text.detokenizer import IncrementalDetokenizer
from minisgl_core.text.tokenizer import apply_chat_template, load_tokenizer

__all__ = ["IncrementalDetokenizer", "apply_chat_template", "load_tokenizer"]

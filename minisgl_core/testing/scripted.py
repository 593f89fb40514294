"""A scripted model: a model plugin whose logits force a given token sequence, so a real server process (or
``LLM``) emits exactly the text a real model would, through the real engine, streaming and all. It is how
minisgl tests its reasoning and tool-call parsers, and how a parser plugin's author can test theirs.

A scripted checkpoint holds a tokenizer and a list of *scripts*: ``(trigger, output)`` text pairs. For each
request the model picks the script whose trigger occurs last in the prompt (an empty trigger matches any
prompt) and then generates the tokenizer's encoding of its output, then EOS::

    from minisgl_core.testing import save_scripted_model, use_plugin

    use_plugin("minisgl_core.testing.scripted")     # or MINISGL_PLUGIN_MODULES=minisgl_core.testing.scripted
    save_scripted_model("ckpt", "path/to/tokenizer", [
        ("weather?", '<tool_call>\\n{"name": "get_weather", "arguments": {"city": "Paris"}}\\n</tool_call>'),
        ("", "Hello!"),
    ])
    # minisgl serve --model ckpt --load-format dummy --tool-call-parser hermes ...

How it knows the prompt: each step it writes its input token ids into the KV cache (layer 0, as base-256
digits) and reads a request's whole history back through the page table, so prefix caching, chunked prefill
and batching do not change what it sees. Per page-table row it remembers the prompt it is answering; a row
whose history no longer continues that prompt with the script is a new request. Sampling settings do not
change the output (the scripted token's logit dwarfs the rest). CPU or eager only (no CUDA graphs).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minisgl_core.contracts import CausalLM, ForwardBatch, ModelContext, hookimpl

ARCHITECTURE = "ScriptedForCausalLM"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


class ScriptedForCausalLM(CausalLM):
    """Forces each request's script, then EOS (see the module docstring)."""

    def __init__(self, ctx: ModelContext) -> None:
        super().__init__()
        raw = ctx.config.raw
        self.vocab_size = ctx.config.vocab_size
        self.scripts = [(t, list(s["output"])) for s in raw["minisgl_scripts"] for t in s["triggers"]]
        self.eos = (ctx.config.eos_token_ids or [0])[0]
        self.rows: dict[int, tuple[list[int], list[int]]] = {}  # row -> (prompt, script)
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        pool = batch.kv_pool
        assert pool is not None
        ids = batch.input_ids.to(torch.int64)
        digits = torch.stack([ids % 256, (ids // 256) % 256, ids // 65536], dim=1).to(pool.dtype)
        k = torch.zeros(ids.shape[0], pool.num_kv_heads, pool.head_dim, dtype=pool.dtype, device=ids.device)
        k[:, 0, :3] = digits
        pool.store(0, batch.out_slots, k, torch.zeros_like(k))
        last_of = {int(end) - 1: i for i, end in enumerate(batch.cu_q_lens[1:].tolist())}
        logits = torch.full((batch.sample_indices.shape[0], self.vocab_size), -50.0, device=ids.device)
        for s, flat in enumerate(batch.sample_indices.tolist()):
            i = last_of[int(flat)]
            logits[s, self._next(int(batch.rows[i]), self._history(batch, i))] = 50.0
        return logits

    def _history(self, batch: ForwardBatch, i: int) -> list[int]:
        pool = batch.kv_pool
        assert pool is not None
        slots = batch.page_table[int(batch.rows[i]), : batch.kv_lens_host[i]].to(torch.int64)
        d = pool.k(0)[slots, 0, :3].round().to(torch.int64)
        return (d[:, 0] + d[:, 1] * 256 + d[:, 2] * 65536).tolist()

    def _next(self, row: int, history: list[int]) -> int:
        known = self.rows.get(row)
        if known is not None:
            prompt, script = known
            done = history[len(prompt) :]
            if len(history) > len(prompt) and history[: len(prompt)] == prompt and script[: len(done)] == done:
                return script[len(done)] if len(done) < len(script) else self.eos
        script = self._pick(history)
        self.rows[row] = (history, script)
        return script[0] if script else self.eos

    def _pick(self, prompt: list[int]) -> list[int]:
        best, best_end = [], -1
        for trigger, output in self.scripts:
            end = _last_end(prompt, trigger)
            if end > best_end:
                best, best_end = output, end
        return best

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        for _ in weights:  # nothing to load
            pass


def _last_end(seq: list[int], sub: list[int]) -> int:
    """Index past the last occurrence of ``sub`` in ``seq`` (0 for an empty ``sub``; -1 when absent)."""
    if not sub:
        return 0
    for start in range(len(seq) - len(sub), -1, -1):
        if seq[start : start + len(sub)] == sub:
            return start + len(sub)
    return -1


def create(ctx: ModelContext) -> ScriptedForCausalLM:
    return ScriptedForCausalLM(ctx)


@hookimpl
def minisgl_register_models(register: Any) -> None:
    register(ARCHITECTURE, create, description="test model: forces scripted outputs (minisgl_core.testing)")


def _variants(encode: Any, trigger: str) -> list[list[int]]:
    """A trigger's encodings at the start of a message and after a space (BPE spells them differently)."""
    return [encode(trigger)] if not trigger else [encode(trigger), encode(" " + trigger)]


def save_scripted_model(
    folder: str | Path,
    tokenizer_dir: str | Path,
    scripts: Sequence[tuple[str, str]],
    generation_config: dict[str, Any] | None = None,
) -> Path:
    """Write a scripted checkpoint: the tokenizer of ``tokenizer_dir``, a config whose scripts are the
    tokenizer's encodings of ``scripts`` (``(trigger, output)`` texts), and a ``generation_config.json``
    (EOS = the tokenizer's, plus ``generation_config``). Serve it with ``--load-format dummy``."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).is_file():
            shutil.copy(Path(tokenizer_dir) / name, folder / name)
    tok = AutoTokenizer.from_pretrained(str(folder))
    encode = lambda text: tok.encode(text, add_special_tokens=False) if text else []  # noqa: E731
    eos = tok.eos_token_id
    config = {
        "architectures": [ARCHITECTURE], "model_type": "qwen3", "vocab_size": len(tok), "hidden_size": 4,
        "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1,
        "head_dim": 4, "max_position_embeddings": 4096, "torch_dtype": "float32", "eos_token_id": eos,
        "minisgl_scripts": [{"triggers": _variants(encode, t), "output": encode(o)} for t, o in scripts],
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": eos, **(generation_config or {})}))
    return folder

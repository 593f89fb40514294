"""Deriving a plugin's names from the one the user picks, and writing its package from the templates."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

KINDS = ("attention", "cache", "scheduler", "model", "grammar", "reasoning-parser", "tool-parser")

_SUFFIX = {
    "attention": "Attention", "cache": "Cache", "scheduler": "Scheduler", "model": "ForCausalLM", "grammar": "Grammar",
    "reasoning-parser": "ReasoningParser", "tool-parser": "ToolParser",
}  # fmt: skip
_MODULE_FILE = {
    "attention": "backend.py", "cache": "policy.py", "scheduler": "policy.py", "model": "model.py",
    "grammar": "backend.py", "reasoning-parser": "parser.py", "tool-parser": "parser.py",
}  # fmt: skip
_FLAG = {
    "attention": "--attention {name}",
    "cache": "--cache {name}",
    "scheduler": "--scheduler {name}",
    "model": "--model ckpt",
    "grammar": "--grammar-backend {name}",
    "reasoning-parser": "--reasoning-parser {name}",
    "tool-parser": "--tool-call-parser {name}",
}
_PARSER_TRY = {  # a parser runs in the server; here it parses a sample text as the server would feed it
    "reasoning-parser": 'python -c "from minisgl_core.contracts import ReasoningContext; '
    "from minisgl_core.testing import run_reasoning; "
    "print(run_reasoning('{name}', ReasoningContext(), ['<reasoning>plan', '</reasoning>answer']))\"",
    "tool-parser": 'python -c "from minisgl_core.contracts import ToolParserContext; '
    "from minisgl_core.testing import run_tools; "
    "tools = [{{'type': 'function', 'function': {{'name': 'get_weather'}}}}]; "
    "print(run_tools('{name}', ToolParserContext(tools), "
    '[\'Sure. <function=get_weather>\', \'{{\\"city\\": \\"Paris\\"}}</function>\']))"',
}
_TINY_CHECKPOINT = (
    'python -c "from transformers import LlamaConfig; from minisgl_core.testing import save_random_model; '
    "save_random_model('ckpt', LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, "
    "num_attention_heads=4, num_key_value_heads=2, vocab_size=259, architectures=['{class_name}']))\""
)
_TRY = "minisgl generate --model demo --device cpu --max-tokens 8 {select}"
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin package needs, derived from the registered ``name`` (e.g. ``my-policy``)."""

    name: str
    """What users select (``--cache my-policy``); for a model, the architecture is :attr:`class_name`."""
    kind: str
    dist: str
    """The distribution (``minisgl-my-policy``), also the default folder."""
    module: str
    """The import package (``minisgl_my_policy``), also the entry point's target."""
    class_name: str
    """The implementation class (``MyPolicyCache``); for a model, its architecture (``MyModelForCausalLM``)."""
    module_file: str
    select: str
    """How a user selects it on the command line."""
    try_it: str
    """Commands that run it from the command line, as written (a model first writes a tiny checkpoint)."""

    @classmethod
    def derive(cls, name: str, kind: str) -> PluginNames:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not _NAME.match(name):
            raise ValueError(f"plugin name {name!r}: use lowercase letters, digits and single hyphens (my-policy)")
        base = name.removeprefix("minisgl-") or name
        camel = "".join(part.capitalize() for part in base.split("-"))
        suffix = _SUFFIX[kind]
        class_name = camel if camel.endswith(suffix) else camel + suffix
        dist = name if name.startswith("minisgl-") else f"minisgl-{name}"
        names = dict(name=name, kind=kind, dist=dist, module=dist.replace("-", "_"), class_name=class_name)
        select = _FLAG[kind].format(**names)
        if kind == "model":
            try_it = _TINY_CHECKPOINT.format(**names) + "\nminisgl generate --device cpu --max-tokens 8 --model ckpt"
        elif kind in _PARSER_TRY:
            try_it = _PARSER_TRY[kind].format(**names)
        else:
            try_it = _TRY.format(select=select)
        return cls(**names, module_file=_MODULE_FILE[kind], select=select, try_it=try_it)


def _templates(kind: str) -> dict[str, str]:
    """Relative output path -> template text, for the common files and ``kind``'s own."""
    root = resources.files("minisgl_core.scaffold") / "templates"
    out = {}
    for folder in ("common", kind):
        for entry in (root / folder).iterdir():
            if entry.name.endswith(".tmpl"):
                out[entry.name.removesuffix(".tmpl")] = entry.read_text(encoding="utf-8")
    return out


def _target(file: str, names: PluginNames) -> str:
    """Where a template's output goes inside the package folder."""
    return {
        "__init__.py": f"{names.module}/__init__.py",
        "impl.py": f"{names.module}/{names.module_file}",
        "test.py": f"tests/test_{names.module}.py",
    }.get(file, file)


def render(text: str, names: PluginNames) -> str:
    """Replace every ``{{field}}`` of :class:`PluginNames`; fails on a placeholder it does not know."""
    values = asdict(names)

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"unknown template placeholder {{{{{key}}}}}")
        return values[key]

    return re.sub(r"\{\{(\w+)\}\}", sub, text)


def new_plugin(name: str, kind: str, dest: str | Path | None = None, force: bool = False) -> list[Path]:
    """Write the package of plugin ``name`` of ``kind`` into ``dest`` (default ``./<distribution>``);
    returns the files written. Refuses a non-empty ``dest`` unless ``force``."""
    names = PluginNames.derive(name, kind)
    root = Path(dest) if dest is not None else Path.cwd() / names.dist
    if root.exists() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} exists and is not empty (pass --force to write into it)")
    written = []
    for file, text in sorted(_templates(kind).items()):
        path = root / _target(file, names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(text, names), encoding="utf-8")
        written.append(path)
    return sorted(written)

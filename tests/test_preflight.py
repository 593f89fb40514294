"""Fail before loading: names, options and the backend/device pairing are checked before any weight is
downloaded or loaded. The model folders here have a config and a tokenizer but no weights, so getting as far
as loading would fail with a different error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from minisgl_core import LLM, hookimpl
from minisgl_core.config import EngineConfig
from minisgl_core.plugins import register_plugin, unregister_plugin
from minisgl_core.runtime import build_runtime


@pytest.fixture(scope="module")
def config_only(tiny_qwen3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's config and tokenizer, without its safetensors."""
    folder = tmp_path_factory.mktemp("config-only")
    for file in tiny_qwen3.path.iterdir():
        if not file.name.endswith(".safetensors"):
            shutil.copy(file, folder / file.name)
    return folder


def test_loading_really_needs_the_weights(config_only: Path) -> None:
    with pytest.raises(ValueError, match="no complete safetensors checkpoint"):
        LLM(str(config_only), device="cpu", attention="torch")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attention": "flashinfer"}, "attention backend 'flashinfer' runs on cuda, not on cpu"),
        ({"attention": "torch,nope"}, "Unknown attention backend 'nope'"),
        ({"cache": "nope"}, "Unknown cache policy 'nope'. Available: naive, radix"),
        ({"scheduler": "nope"}, "Unknown scheduler 'nope'"),
        ({"cache_options": {"size": "1"}}, "cache policy 'radix' takes no options; unknown: size"),
        ({"attention_options": {"x": "1"}}, "attention backend 'torch' takes no options; unknown: x"),
        ({"max_model_len": 100000}, "exceeds the model's context"),
    ],
)
def test_bad_selections_fail_before_the_weights(config_only: Path, kwargs: dict, message: str) -> None:
    kwargs = {"device": "cpu", "attention": "torch", **kwargs}
    with pytest.raises(ValueError, match=message):
        LLM(str(config_only), **kwargs)


def test_unknown_architecture_fails_before_the_weights(config_only: Path, tmp_path: Path) -> None:
    folder = tmp_path / "other"
    shutil.copytree(config_only, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["MysteryForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Unknown model architecture 'MysteryForCausalLM'"):
        LLM(str(folder), device="cpu", attention="torch")


class MissingModulePlugin:
    @hookimpl
    def minisgl_register_cache_policies(self, register):  # noqa: ANN001, ANN201
        register("ghost", "minisgl_no_such_module.policy:create", options=("size",))


def test_a_factory_that_cannot_be_imported_names_its_plugin(config_only: Path) -> None:
    name = register_plugin(MissingModulePlugin(), name="ghost-plugin", distribution="minisgl-ghost")
    try:
        with pytest.raises(ValueError, match=r"cache policy 'ghost' of plugin 'ghost-plugin' \(minisgl-ghost\)"):
            LLM(str(config_only), device="cpu", attention="torch", cache="ghost")
        with pytest.raises(ValueError, match="cache policy 'ghost' takes size; unknown: sise"):
            LLM(str(config_only), device="cpu", attention="torch", cache="ghost", cache_options={"sise": "1"})
    finally:
        unregister_plugin(name)


def test_hub_ids_are_checked_before_weights_are_downloaded(config_only: Path, monkeypatch) -> None:
    """A hub id's config is fetched first (no ``*.safetensors`` pattern); a bad name stops there."""
    calls: list[list[str]] = []

    def fake_download(repo: str, revision: object = None, allow_patterns: list[str] | None = None) -> str:
        calls.append(list(allow_patterns or []))
        return str(config_only)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    with pytest.raises(ValueError, match="Unknown cache policy 'nope'"):
        build_runtime(EngineConfig(model="someone/some-model", device="cpu", attention="torch", cache="nope"))
    assert len(calls) == 1 and not any("safetensors" in p for p in calls[0])

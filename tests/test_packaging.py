"""What a package index shows and a user resolves: every distribution (minisgl-core and each plugin under
plugins/) declares an SPDX license with its LICENSE file, classifiers and project URLs; every README that ships
in one links absolutely; the dependency bounds are the tested ones. Building and installing the distributions
is scripts/build-dists and scripts/check-dist-install (run by ./scripts/test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = [ROOT] + sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
PROJECT_URL = "https://github.com/minisgl/minisgl"


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def requirements(folder: Path, extra: str | None = None) -> dict[str, Requirement]:
    meta = project(folder)
    reqs = meta["dependencies"] if extra is None else meta["optional-dependencies"][extra]
    return {Requirement(r).name.lower().replace("_", "-"): Requirement(r) for r in reqs}


@pytest.mark.parametrize("folder", PROJECTS, ids=lambda p: p.name)
def test_distribution_metadata(folder: Path) -> None:
    meta = project(folder)
    assert meta["license"] == "Apache-2.0", "an SPDX expression (PEP 639), not the deprecated table"
    assert meta["license-files"] == ["LICENSE"]
    assert (folder / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert any(c.startswith("Programming Language :: Python :: 3") for c in meta["classifiers"])
    assert not any(c.startswith("License ::") for c in meta["classifiers"]), "PEP 639: the expression only"
    assert meta["urls"]["Repository"] == PROJECT_URL
    assert all(url.startswith(PROJECT_URL) for url in meta["urls"].values())


@pytest.mark.parametrize("folder", PROJECTS, ids=lambda p: p.name)
def test_shipped_readme_links_are_absolute(folder: Path) -> None:
    """A README shown on a package index has no checkout around it: relative links there lead nowhere."""
    text = (folder / project(folder)["readme"]).read_text()
    relative = [t for t in re.findall(r"\]\(([^)]+)\)", text) if not t.startswith(("https://", "http://", "#"))]
    assert not relative, f"{folder.name}/README.md links relatively: {relative}"


def test_core_bounds_are_the_tested_ones() -> None:
    reqs = requirements(ROOT)
    # imported by the core, so declared (pydantic: the v2 API of the request models)
    assert {"numpy", "pydantic"} <= reqs.keys()
    assert not reqs["pydantic"].specifier.contains("1.10.0")
    # 4.51-4.55 reject the `dtype` keyword (scripts/check-lowest-deps found 4.56 the lowest that works)
    assert not reqs["transformers"].specifier.contains("4.55.4") and reqs["transformers"].specifier.contains("4.56.0")


def test_plugin_bounds() -> None:
    flashinfer = requirements(ROOT / "plugins" / "minisgl-flashinfer")["flashinfer-python"]
    assert flashinfer.specifier.contains("0.5.3"), "0.5.3 is the version run on the H200"
    assert any(s.operator == "<" for s in flashinfer.specifier), "newer FlashInfer releases are untested here"
    flash_attn = ROOT / "plugins" / "minisgl-flash-attn"
    assert "flash-attn-4" not in requirements(flash_attn), "FlashAttention-3 users must not need the FA4 pre-release"
    assert "flash-attn-4" in requirements(flash_attn, "fa4")

"""What every conformance suite shares: per-class parameters that subclasses may change, and the ``gpu``
marker for suites that run on CUDA."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch


class ConformanceSuite:
    """Base of the conformance suites. Subclasses set class attributes; tests that take one of the
    fixtures named in :attr:`params` run once per value of the attribute of the same name
    (``page_size`` runs over ``page_sizes``, and so on)."""

    device: ClassVar[str] = "cpu"
    """Where the suite runs: ``"cpu"`` or ``"cuda"``. CUDA suites are marked ``gpu`` and skipped without CUDA."""

    params: ClassVar[dict[str, str]] = {"page_size": "page_sizes"}
    """Fixture name -> the class attribute listing its values."""

    page_sizes: ClassVar[tuple[int, ...]] = (1, 16)
    """KV page sizes the paged tests run over (a fixture ``page_size`` per value)."""
    options: ClassVar[dict[str, str]] = {}
    """Options for the plugin under test, as users pass them (``--attention-option`` / ``--cache-option`` /
    ``--scheduler-option KEY=VALUE``): they reach its factory as ``ctx.options`` in every test, and the
    engine runs of the suite get them too. The reference implementation gets none."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if str(cls.device).startswith("cuda"):
            marks = list(getattr(cls, "pytestmark", []))
            cls.pytestmark = [*marks, pytest.mark.gpu]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """pytest calls this for every test of the class: parametrize from the subclass's attributes."""
        for fixture, attr in self.params.items():
            if fixture in metafunc.fixturenames:
                values = list(getattr(self, attr))
                metafunc.parametrize(fixture, values, ids=[_param_id(fixture, v) for v in values])

    @pytest.fixture(autouse=True)
    def _needs_device(self) -> None:
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")


def _param_id(fixture: str, value: Any) -> str:
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return f"{fixture.replace('_', '')}{value}"


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``, the spelling ``LLM(dtype=...)`` takes."""
    return str(dtype).removeprefix("torch.")

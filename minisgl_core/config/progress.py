"""Progress bars for long work (weight loading, hub downloads, CUDA-graph capture, ``generate``). They show only
where a person watches: stderr is a terminal and the ``minisgl`` logger passes INFO (``--log-level warning``
silences them; so does logging configured above INFO by a program using the library)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


def progress_enabled() -> bool:
    """True when bars should be drawn: stderr is a TTY and INFO is logged (or logging is not configured)."""
    logger = logging.getLogger("minisgl")
    configured = bool(logging.getLogger().handlers) or logger.level != logging.NOTSET
    return sys.stderr.isatty() and (not configured or logger.isEnabledFor(logging.INFO))


def progress(iterable: Iterable[Any] | None = None, *, desc: str, **kwargs: Any) -> tqdm:
    """A tqdm bar (same arguments), disabled unless :func:`progress_enabled`."""
    return tqdm(iterable, desc=desc, disable=kwargs.pop("disable", False) or not progress_enabled(), **kwargs)


@contextmanager
def library_progress(show: bool | None = None) -> Iterator[None]:
    """Within the block, the bars of huggingface_hub and transformers are drawn only if ``show`` (default:
    :func:`progress_enabled`); they are restored afterwards."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    hide = not (progress_enabled() if show is None else show)
    restore_hub, restore_tf = hide and not are_progress_bars_disabled(), hide and hf_logging.is_progress_bar_enabled()
    if hide:
        disable_progress_bars()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if restore_hub:
            enable_progress_bars()
        if restore_tf:
            hf_logging.enable_progress_bar()

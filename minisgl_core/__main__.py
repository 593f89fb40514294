"""``python -m minisgl_core`` is the ``minisgl`` command."""

from minisgl_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

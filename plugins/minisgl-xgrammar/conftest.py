"""Lets pytest import ``minisgl_xgrammar`` from this folder before the plugin is installed: pytest puts the
folder of every ``conftest.py`` it loads on ``sys.path``. Nothing else lives here."""

"""Lets pytest import ``minisgl_llguidance`` from this folder before the plugin is installed: pytest puts the
folder of every ``conftest.py`` it loads on ``sys.path``. Nothing else lives here."""

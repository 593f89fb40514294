"""The OpenAI-compatible server: an API process plus tokenizer, engine and detokenizer workers over ZeroMQ.

Entry points: :func:`minisgl_core.server.launch.run_server` (``minisgl serve``) and
:class:`minisgl_core.server.launch.ServerThread` (the server inside another program, e.g. the shell).
"""

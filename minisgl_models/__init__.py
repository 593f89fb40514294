"""Model plugins shipped with minisgl-core: each module is its own plugin, registered by its own entry
point (``qwen3``, ``llama``) exactly as a third-party model would be."""

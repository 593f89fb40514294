"""Helpers for testing minisgl and its plugins: tiny random models and offline tokenizers."""

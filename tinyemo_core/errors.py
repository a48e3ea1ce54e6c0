"""Errors shared by the configuration layer and the modules it resolves names with (no project imports)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A flows.yaml problem; the message lists every offending field by its path."""


__all__ = ["ConfigError"]

"""Errors of the loop package (:class:`ConfigError` is shared with :mod:`filterprune.settings`)."""

from __future__ import annotations

from ..settings import ConfigError

__all__ = ["ConfigError"]

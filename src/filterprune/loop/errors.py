"""Errors of the loop package (:class:`ConfigError` lives in :mod:`filterprune.errors`)."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["ConfigError"]

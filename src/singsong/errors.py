"""Exceptions that carry a message meant for the user.

The CLI catches :class:`SingsongError`, prints only its message and exits non-zero, so messages
should say what went wrong and what to do about it, without a traceback.
"""

from __future__ import annotations

__all__ = ["AudioError", "SingsongError"]


class SingsongError(Exception):
    """Base class for user-facing errors (the CLI prints just the message)."""


class AudioError(SingsongError, ValueError):
    """Bad audio input or output: unreadable, empty, non-finite, wrong shape, would clip."""

"""Argument types shared by the command modules: numbers checked at parse time."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _checked(text: str, kind: Callable[[str], N], ok: Callable[[N], bool], rule: str) -> N:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def positive_float(text: str) -> float:
    return _checked(text, float, lambda v: v > 0, "positive")


def positive_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 1, "at least 1")


def non_negative_float(text: str) -> float:
    return _checked(text, float, lambda v: v >= 0, ">= 0")


def non_negative_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 0, ">= 0 (0 = off)")


def unit_interval(text: str) -> float:
    """A probability in (0, 1]."""
    return _checked(text, float, lambda v: 0 < v <= 1, "in (0, 1]")

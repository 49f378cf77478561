"""Sampling settings and next-token sampling, deterministic under a seed.

Settings travel with each call as a frozen :class:`SamplingParams` (never stored on a model), so
one loaded model can serve concurrent requests with different settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from singsong.errors import SingsongError

__all__ = ["SamplingParams", "filter_logits", "sample"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample codes.

    Attributes:
        temperature: softmax temperature; 0 means greedy (argmax).
        top_k: keep only the ``top_k`` most likely codes (0 = no limit).
        top_p: keep the smallest set of codes whose probability reaches ``top_p`` (nucleus
            sampling; 1.0 = no limit).
        seed: seed of the sampling generator; ``None`` draws a fresh random seed.
        takes: independent samples per input, generated together as one batch.
        guidance: how hard to lean on the source (guidance against a *negative* source, as
            classifier-free guidance): logits = negative + guidance * (source - negative),
            where the negative is the same model given, e.g., silent vocals. 1.0 = plain
            sampling (no second pass); > 1 amplifies whatever the source changes.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    takes: int = 1
    guidance: float = 1.0

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise SingsongError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise SingsongError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise SingsongError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.takes < 1:
            raise SingsongError(f"takes must be >= 1, got {self.takes}")
        if not (self.guidance >= 0 and math.isfinite(self.guidance)):
            raise SingsongError(f"guidance must be >= 0 (1 = none), got {self.guidance}")

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """A fresh generator for one generation call, seeded by ``seed``."""
        g = torch.Generator(device=device)
        if self.seed is None:
            g.seed()
        else:
            g.manual_seed(self.seed)
        return g


def filter_logits(logits: Tensor, *, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """``logits`` [B, V] with everything outside the top-k / nucleus set at -inf."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a code when the codes ranked above it already reach top_p (the first always stays)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample(logits: Tensor, params: SamplingParams, generator: torch.Generator) -> Tensor:
    """``logits`` [B, V] -> codes [B] (int64)."""
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(
        logits.float() / params.temperature, top_k=params.top_k, top_p=params.top_p
    )
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]

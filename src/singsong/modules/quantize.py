"""Residual vector quantizer with EMA codebooks, k-means init and dead-code re-seeding.

Why not ``vector_quantize_pytorch.ResidualVQ`` (same algorithm: SoundStream Alg. 1 with EMA
updates, as in EnCodec): on one CPU thread its training forward took 267 ms for a codec batch
(8 x 1.5 s, 12 levels x 1024 codes, dim 64) against 72 ms here, the difference being generic
bookkeeping (einx/einops reshapes, a growing ``cat`` of residuals, rotation-trick branches) in a
training step of about 350 ms. Its quantizer dropout also picks one depth per *batch*; here the
caller drops levels per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _nearest(x: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    """x [N, D], book [C, D] -> index of the nearest code [N] (squared Euclidean)."""
    dist = book.square().sum(1)[None] - 2 * x @ book.T  # [N, C] (|x|^2 is constant per row)
    return dist.argmin(1)


def _kmeans(x: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain k-means on x [N, D] -> (centroids [k, D], counts [k]); seeds drawn from x."""
    seed = torch.randperm(len(x))[:k] if len(x) >= k else torch.randint(len(x), (k,))
    cent = x[seed].clone()
    counts = torch.zeros(k)
    for _ in range(iters):
        idx = _nearest(x, cent)
        counts = torch.bincount(idx, minlength=k).float()
        sums = torch.zeros_like(cent).index_add_(0, idx, x)
        used = counts > 0
        cent[used] = sums[used] / counts[used, None]
    return cent, counts


class ResidualVQ(nn.Module):
    """``K`` levels of ``C`` codes in ``D`` dims. Codebooks are buffers updated by EMA of the
    assigned vectors (in training mode); they get no gradient."""

    codebooks: torch.Tensor  # [K, C, D]
    ema_count: torch.Tensor  # [K, C]
    ema_sum: torch.Tensor  # [K, C, D]
    initialized: torch.Tensor  # [K] bool

    def __init__(
        self,
        *,
        dim: int,
        num_quantizers: int,
        codebook_size: int,
        decay: float = 0.99,
        dead_code_threshold: float = 0.05,
        kmeans_iters: int = 10,
    ) -> None:
        super().__init__()
        self.num_quantizers, self.codebook_size = num_quantizers, codebook_size
        self.decay, self.dead_code_threshold, self.kmeans_iters = (
            decay,
            dead_code_threshold,
            kmeans_iters,
        )
        self.register_buffer("codebooks", torch.randn(num_quantizers, codebook_size, dim))
        self.register_buffer("ema_count", torch.ones(num_quantizers, codebook_size))
        self.register_buffer("ema_sum", self.codebooks.clone())
        self.register_buffer("initialized", torch.zeros(num_quantizers, dtype=torch.bool))

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [..., D] -> (codes [..., K] int64, per-level code vectors [K, ..., D])."""
        shape = z.shape[:-1]
        residual = z.reshape(-1, z.shape[-1]).float()  # [N, D]
        codes, vectors = [], []
        for k in range(self.num_quantizers):
            if self.training and not self.initialized[k]:
                self._init(k, residual)
            idx = _nearest(residual, self.codebooks[k])
            q = self.codebooks[k][idx]
            if self.training:  # quantize with the old codebook, then update it (EMA)
                self._learn(k, residual, idx)
            residual = residual - q
            codes.append(idx)
            vectors.append(q)
        out_codes = torch.stack(codes, -1).reshape(*shape, self.num_quantizers)
        return out_codes, torch.stack(vectors).reshape(self.num_quantizers, *shape, -1)

    def _init(self, k: int, x: torch.Tensor) -> None:
        cent, counts = _kmeans(x, self.codebook_size, self.kmeans_iters)
        self.codebooks[k] = cent
        self.ema_sum[k] = cent * counts[:, None]
        self.ema_count[k] = counts
        self.initialized[k] = True

    def _learn(self, k: int, x: torch.Tensor, idx: torch.Tensor) -> None:
        """One EMA step of level ``k`` on its inputs ``x`` [N, D] assigned to codes ``idx`` [N]."""
        c = self.codebook_size
        counts = torch.bincount(idx, minlength=c).float()
        sums = torch.zeros_like(self.codebooks[k]).index_add_(0, idx, x)
        self.ema_count[k].lerp_(counts, 1 - self.decay)
        self.ema_sum[k].lerp_(sums, 1 - self.decay)
        n = self.ema_count[k].sum()
        smoothed = (self.ema_count[k] + 1e-5) / (n + c * 1e-5) * n  # Laplace smoothing
        self.codebooks[k] = self.ema_sum[k] / smoothed[:, None]
        dead = self.ema_count[k] < self.dead_code_threshold
        if dead.any():  # re-seed unused codes on random current inputs
            pick = torch.randint(len(x), (int(dead.sum()),))
            self.codebooks[k][dead] = x[pick]
            self.ema_sum[k][dead] = x[pick] * self.dead_code_threshold
            self.ema_count[k][dead] = self.dead_code_threshold

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K', T] (first K' levels) -> summed code vectors [B, T, D]."""
        out = F.embedding(codes[:, 0], self.codebooks[0])
        for k in range(1, codes.shape[1]):
            out = out + F.embedding(codes[:, k], self.codebooks[k])
        return out

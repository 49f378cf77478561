"""k-means in torch: k-means++ seeding, Lloyd passes over chunks, fast chunked assignment.

Fitting holds the frames in memory (a million 100-d frames is 400 MB) and streams the distance
matrix in chunks, so memory stays ``O(chunk * k)`` however many frames there are. Everything is
seeded by a :class:`torch.Generator`, so a fit is reproducible on one machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from singsong.errors import SingsongError

CHUNK = 8192


def assign(x: torch.Tensor, centroids: torch.Tensor, *, chunk: int = CHUNK) -> torch.Tensor:
    """Nearest centroid of each row: x [N, D], centroids [K, D] -> int64 [N].

    Squared distances ``|x|^2 - 2 x.c + |c|^2`` by chunked matmul; ``|x|^2`` is constant per row,
    so the argmin only needs ``|c|^2 - 2 x.c``.
    """
    return _assign(x, centroids, chunk=chunk)[0]


def _assign(
    x: torch.Tensor, centroids: torch.Tensor, *, chunk: int = CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (labels int64 [N], squared distance to the nearest centroid [N])."""
    c_sq = centroids.square().sum(1)  # [K]
    labels = torch.empty(x.shape[0], dtype=torch.long)
    dists = torch.empty(x.shape[0])
    for i in range(0, x.shape[0], chunk):
        xb = x[i : i + chunk]  # [n, D]
        d = torch.addmm(c_sq[None], xb, centroids.T, alpha=-2.0)  # [n, K]
        best, idx = d.min(1)
        labels[i : i + chunk] = idx
        dists[i : i + chunk] = (best + xb.square().sum(1)).clamp(min=0.0)
    return labels, dists


@dataclass(frozen=True)
class KMeansResult:
    centroids: torch.Tensor  # [K, D]
    inertia: float  # mean squared distance of a frame to its centroid, after the last pass
    passes: int
    reseeded: int  # empty clusters re-seeded over the fit


def kmeans_plus_plus(
    x: torch.Tensor, k: int, *, generator: torch.Generator, sample: int = 65536
) -> torch.Tensor:
    """k-means++ seeding on (a random subset of at most ``sample`` rows of) x [N, D] -> [k, D]."""
    if x.shape[0] > sample:
        x = x[torch.randperm(x.shape[0], generator=generator)[:sample]]
    n = x.shape[0]
    x_sq = x.square().sum(1)  # [n]
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [x[first]]
    closest = (x_sq - 2 * x @ x[first] + x_sq[first]).clamp(min=0.0)  # [n]
    for _ in range(1, k):
        total = float(closest.sum())
        if total <= 0:  # fewer distinct points than k: duplicates are harmless, reseeded later
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial(closest / total, 1, generator=generator))
        centers.append(x[idx])
        d = (x_sq - 2 * x @ x[idx] + x_sq[idx]).clamp(min=0.0)
        closest = torch.minimum(closest, d)
    return torch.stack(centers)


def fit_kmeans(
    x: torch.Tensor,
    k: int,
    *,
    passes: int = 20,
    seed: int = 0,
    tol: float = 1e-4,
    progress: Callable[[int, float], None] | None = None,
) -> KMeansResult:
    """Lloyd's k-means on x [N, D] (float32) with k-means++ seeding.

    Stops after ``passes`` passes or when the inertia improves by less than ``tol`` (relative).
    An empty cluster is re-seeded on the frame currently farthest from its centroid, so all
    ``k`` codes stay in use. ``progress(pass, inertia)`` is called after each pass.
    """
    if x.dim() != 2:
        raise SingsongError(f"k-means expects frames [N, D], got shape {tuple(x.shape)}")
    if k < 1:
        raise SingsongError(f"k must be at least 1, got {k}")
    if x.shape[0] < k:
        raise SingsongError(f"k-means with k={k} needs at least {k} frames, got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise SingsongError("k-means input contains NaN or infinite values")
    x = x.float().contiguous()
    gen = torch.Generator().manual_seed(seed)
    centroids = kmeans_plus_plus(x, k, generator=gen)
    prev = float("inf")
    inertia = prev
    reseeded = 0
    done = 0
    for done in range(1, passes + 1):
        labels, dists = _assign(x, centroids)
        inertia = float(dists.mean())
        counts = torch.bincount(labels, minlength=k)  # [K]
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)  # [K, D]
        new = sums / counts.clamp(min=1)[:, None].float()
        empty = (counts == 0).nonzero().flatten()
        if len(empty):
            # Farthest frames make the best new seeds: they are the worst-served data.
            far = dists.topk(len(empty)).indices
            new[empty] = x[far]
            reseeded += len(empty)
        centroids = new
        if progress is not None:
            progress(done, inertia)
        converged = prev < float("inf") and prev - inertia <= tol * max(prev, 1e-12)
        if len(empty) == 0 and converged:
            break
        prev = inertia
    return KMeansResult(centroids=centroids, inertia=inertia, passes=done, reseeded=reseeded)


def log_progress(prefix: str = "k-means") -> Callable[[int, float], None]:
    """A ``progress`` callback printing pass, inertia and elapsed time."""
    start = time.perf_counter()

    def report(step: int, inertia: float) -> None:
        elapsed = time.perf_counter() - start
        print(f"{prefix}: pass {step}, inertia {inertia:.4f} ({elapsed:.0f} s)", flush=True)

    return report

"""Fréchet Audio Distance (Kilgour et al. 2019) between two sets of audio.

Each clip gives a sequence of embedding frames; all frames of a set are pooled and modelled as one
Gaussian (mean [D], covariance [D, D]); the distance between two Gaussians is

    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

The trace of the matrix square root is computed from the eigenvalues of S_b^(1/2) S_a S_b^(1/2),
which is symmetric positive semi-definite: stable where ``scipy.linalg.sqrtm`` of the non-symmetric
product can return complex noise. Tests compare it with sqrtm and with the diagonal closed form.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singsong.audio import AnyFloatArray, load_audio
from singsong.errors import SingsongError
from singsong.evaluation.embeddings import Embedding

__all__ = ["FadResult", "Gaussian", "audio_files", "bootstrap_fad", "embed_files", "fad",
           "fad_folders", "frechet_distance"]  # fmt: skip

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".m4a")


@dataclass(frozen=True, eq=False)
class Gaussian:
    mean: np.ndarray  # [D]
    cov: np.ndarray  # [D, D]

    @classmethod
    def fit(cls, frames: AnyFloatArray) -> Gaussian:
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise SingsongError(f"need at least 2 embedding frames [N, D], got shape {x.shape}")
        return cls(x.mean(axis=0), np.cov(x, rowvar=False))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread: on shared cores a multi-threaded eigh of a 154 x 154 matrix runs 25x
    slower than a single-threaded one (measured on the 2-core dev machine under load)."""
    try:
        from threadpoolctl import threadpool_limits  # comes with scikit-learn (librosa needs it)
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def frechet_distance(a: Gaussian, b: Gaussian, *, root_b: np.ndarray | None = None) -> float:
    """Fréchet distance between two Gaussians (see the module docstring). ``root_b``: the PSD
    square root of ``b.cov`` when the caller already has it (bootstrap against a fixed set)."""
    if a.mean.shape != b.mean.shape:
        raise SingsongError(f"embedding sizes differ: {a.mean.shape} vs {b.mean.shape}")
    with one_blas_thread():
        root = _psd_sqrt(b.cov) if root_b is None else root_b
        middle = root @ a.cov @ root  # [D, D], symmetric PSD, same trace-sqrt as S_a S_b
        eig = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)
    diff = a.mean - b.mean
    value = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * np.sqrt(eig).sum()
    return float(max(value, 0.0))


def fad(a: Sequence[AnyFloatArray], b: Sequence[AnyFloatArray]) -> float:
    """FAD between two sets given as per-clip embedding frames ([n_i, D] each)."""
    return frechet_distance(Gaussian.fit(np.concatenate(a)), Gaussian.fit(np.concatenate(b)))


def bootstrap_fad(
    a: Sequence[AnyFloatArray],
    b: Sequence[AnyFloatArray],
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """FAD and a confidence interval from resampling the clips of ``a`` (the set under test; the
    reference ``b`` stays fixed) -> (fad, low, high).

    FAD is biased upwards at small sizes, and a resample repeats clips (it looks less varied), so
    resampled FADs sit above the estimate; a plain percentile interval can miss the estimate
    altogether. The interval is therefore the bootstrap's spread shifted so that its median sits
    on the estimate (floored at 0): it says how much the number moves with the choice of clips,
    not where an unbiased FAD would lie."""
    ref = Gaussian.fit(np.concatenate(b))
    with one_blas_thread():
        root = _psd_sqrt(ref.cov)  # once: the reference set is not resampled
    value = frechet_distance(Gaussian.fit(np.concatenate(a)), ref, root_b=root)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(rounds):
        pick = rng.integers(0, len(a), len(a))
        sample = Gaussian.fit(np.concatenate([a[i] for i in pick]))
        stats.append(frechet_distance(sample, ref, root_b=root))
    tail = (1 - level) / 2
    q_low, q_mid, q_high = np.quantile(stats, [tail, 0.5, 1 - tail])
    shift = float(q_mid) - value
    return value, max(float(q_low) - shift, 0.0), max(float(q_high) - shift, 0.0)


def audio_files(folder: str | os.PathLike[str]) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise SingsongError(f"not a folder: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if len(files) < 2:
        raise SingsongError(f"{root} holds {len(files)} audio files; FAD needs at least 2")
    return files


def embed_files(files: Sequence[Path], embedding: Embedding) -> list[np.ndarray]:
    """Embedding frames of every file: [n_i, D] each (16 kHz mono on the way in)."""
    return [embedding.embed(load_audio(p)) for p in files]


@dataclass(frozen=True)
class FadResult:
    fad: float
    low: float
    high: float
    files_a: int
    files_b: int
    embedding: str


def fad_folders(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    embedding: Embedding,
    *,
    rounds: int = 200,
) -> FadResult:
    """FAD of the audio in folder ``a`` against the reference folder ``b`` (with a 95 % CI)."""
    fa, fb = audio_files(a), audio_files(b)
    ea, eb = embed_files(fa, embedding), embed_files(fb, embedding)
    value, low, high = bootstrap_fad(ea, eb, rounds=rounds)
    name = f"{embedding.name}-v{embedding.version}"
    return FadResult(value, low, high, len(fa), len(fb), name)

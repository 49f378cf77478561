"""One interface for source separators: a mixture -> (vocals, instrumental).

A :class:`Track` is one song to separate: its mixture, and its true stems when they are known
(songbook songs, MIR-1K clips). Real separators see only the mixture; the ``oracle`` reads the
true stems, which makes it an upper bound to compare against, never a training-data shortcut.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import load_audio
from singsong.errors import SingsongError


@dataclass(frozen=True)
class Separation:
    vocals: np.ndarray  # float32 [T]
    instrumental: np.ndarray  # float32 [T]


@dataclass(frozen=True)
class Track:
    """One song. ``kind`` says how to read it:

    - ``file``: any audio file; only the mixture is known.
    - ``songbook``: a songbook song folder; mixture.flac, true vocals.flac, instrumental = the sum
      of drums, bass and other.
    - ``mir1k``: a MIR-1K stereo clip; left = accompaniment, right = vocals, mixture = their sum.
    """

    id: str
    path: str
    kind: str = "file"

    def load_mixture(self) -> np.ndarray:
        if self.kind == "songbook":
            return load_audio(Path(self.path) / "mixture.flac")
        if self.kind == "mir1k":
            vocals, accompaniment = self._mir1k()
            return (vocals + accompaniment).astype(np.float32)
        return load_audio(self.path)

    def load_true_stems(self) -> Separation | None:
        """The true (vocals, instrumental), or None when the track has no known stems."""
        if self.kind == "songbook":
            folder = Path(self.path)
            vocals = load_audio(folder / "vocals.flac")
            parts = [load_audio(folder / f"{s}.flac") for s in ("drums", "bass", "other")]
            return Separation(vocals, np.sum(parts, axis=0).astype(np.float32))
        if self.kind == "mir1k":
            vocals, accompaniment = self._mir1k()
            return Separation(vocals, accompaniment)
        return None

    def _mir1k(self) -> tuple[np.ndarray, np.ndarray]:
        stereo = load_audio(self.path, mono=False)  # [2, T]
        if stereo.shape[0] != 2:
            raise SingsongError(f"expected a stereo MIR-1K clip, got {stereo.shape[0]} channels")
        return stereo[1], stereo[0]


class Separator(ABC):
    name: str
    version: str
    sample_rate: int = SAMPLE_RATE

    @abstractmethod
    def separate(self, mixture: np.ndarray) -> Separation:
        """mixture float32 [T] at ``sample_rate`` -> vocals and instrumental, each [T]."""

    def separate_track(self, track: Track) -> Separation:
        return self.separate(track.load_mixture())


def check_mixture(mixture: np.ndarray) -> np.ndarray:
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim != 1:
        raise SingsongError(f"expected a mono mixture [T], got shape {mixture.shape}")
    if mixture.size == 0:
        raise SingsongError("cannot separate empty audio")
    if not np.isfinite(mixture).all():
        raise SingsongError("mixture contains NaN or infinite samples")
    return mixture


def apply_chunked(
    fn: Callable[[np.ndarray], np.ndarray],
    wav: np.ndarray,
    *,
    segment: int,
    overlap: int,
) -> np.ndarray:
    """Run ``fn`` ([N] -> [S, N], S sources) over overlapping chunks of ``wav`` [T] -> [S, T].

    Chunks of ``segment`` samples step by ``segment - overlap``; overlapping parts are
    cross-faded with complementary linear ramps, so memory stays bounded for long files and
    chunk borders do not click.
    """
    if not 0 <= overlap < segment:
        raise ValueError(f"need 0 <= overlap < segment, got {overlap}, {segment}")
    total = wav.shape[-1]
    if total <= segment:
        return fn(wav)
    step = segment - overlap
    ramp = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]  # [overlap], no zeros
    out: np.ndarray | None = None
    weight = np.zeros(total, dtype=np.float32)
    for start in range(0, total, step):
        chunk = wav[start : start + segment]
        n = chunk.shape[-1]
        y = fn(chunk)  # [S, n]
        w = np.ones(n, dtype=np.float32)
        if start > 0:  # fade in over the part shared with the previous chunk
            w[: min(overlap, n)] = ramp[: min(overlap, n)]
        last = start + segment >= total
        if not last and overlap:  # a full chunk: fade out over the part shared with the next
            w[-overlap:] = ramp[::-1]
        if out is None:
            out = np.zeros((y.shape[0], total), dtype=np.float32)
        out[:, start : start + n] += y * w
        weight[start : start + n] += w
        if last:
            break
    assert out is not None
    return out / np.maximum(weight, 1e-8)

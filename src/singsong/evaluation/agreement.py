"""Musical agreement between a vocal and an instrumental, and how much the instrumental copies it.

Every metric takes :class:`~singsong.evaluation.analysis.Features` (computed once per signal) and
returns one number per clip; higher is better for the fit metrics and "more copying" for
``vocal_copy``. A fit metric is trusted only when true (vocals, instrumental) pairs score clearly
above shuffled ones, and it is read beside ``vocal_copy``: an instrumental that sounds the vocal's
own notes is in key by construction (DESIGN.md, "Measuring fit honestly").

Metrics (names are the keys of :func:`agreement`):

- ``key_vs_ref``: MIREX key score of the instrumental's key against the reference instrumental's.
- ``key_vs_vocals``: MIREX key score of the instrumental's key against the key of the sung notes.
- ``tempo_vs_ref``: 1 when the instrumental's tempo is within 4 % of the reference's, its double
  or its half, else 0.
- ``beat_alignment``: how steadily the vocal onsets sit on the instrumental's beat grid: phase
  locking of the onsets to the beat or half-beat (1 = every onset at the same phase, about 0 =
  chance), see :func:`beat_alignment`.
- ``harmonic_fit``: frame by frame, the instrumental's chroma at the sung pitch class, relative to
  its average pitch class (12 * share of the frame's chroma): 1 = chance, higher = the voice sings
  notes the band is sounding.
- ``vocal_copy``: the instrumental's salience exactly at the sung pitch (same octave), in standard
  deviations of its frame, minus the same measured against the vocal's f0 track shifted by 1-3 s.
  A leak or an echo of the melody follows the voice note by note and scores high; an accompaniment
  that merely shares the key scores about the same at every shift, i.e. near 0.
- ``silence``, ``clipping``: fraction of 50 ms frames below -60 dBFS, and of samples at full scale
  (failures whatever the other numbers say).
"""

from __future__ import annotations

import numpy as np

from singsong.audio import AnyFloatArray
from singsong.evaluation.analysis import (
    FRAME_RATE,
    Features,
    f0_bins,
    mirex_key_score,
    tempo_match,
)

__all__ = [
    "FIT_METRICS", "agreement", "beat_alignment", "harmonic_fit", "level_checks", "vocal_copy",
]  # fmt: skip

FIT_METRICS = (
    "key_vs_ref", "key_vs_vocals", "tempo_vs_ref", "beat_alignment", "harmonic_fit",
)  # fmt: skip
COPY_LAGS_S = (-3.0, -2.0, -1.5, -1.0, 1.0, 1.5, 2.0, 3.0)


def beat_alignment(vocal_onsets: AnyFloatArray, beats: AnyFloatArray) -> float:
    """Phase locking of onsets (s) to the beats (s): 1 = every onset at the same phase of the
    beat or of the half-beat, about 0 = phases spread as at random. NaN with fewer than 2 beats or
    3 onsets inside the beat span.

    Each onset's phase within its beat interval, phi in [0, 1), gives the resultant length
    R_m = |mean(exp(2 pi i m phi))| for m = 1 (beat) and m = 2 (half-beat); the larger one minus
    its chance level sqrt(pi / 4n) (the mean resultant length of n uniform phases) is returned.
    Locking, not closeness to a fixed grid position: singers syncopate (on sixteenths, off-beats)
    and a fixed grid scored MIR-1K's true pairs no better than shuffled ones (docs/evaluation.md).
    """
    b = np.asarray(beats, dtype=np.float64)
    t = np.asarray(vocal_onsets, dtype=np.float64)
    if b.size < 2:
        return float("nan")
    t = t[(t >= b[0]) & (t < b[-1])]
    if t.size < 3:
        return float("nan")
    i = np.clip(np.searchsorted(b, t, side="right"), 1, b.size - 1)
    phase = (t - b[i - 1]) / np.maximum(b[i] - b[i - 1], 1e-6)  # [n] in [0, 1)
    r = max(abs(np.mean(np.exp(2j * np.pi * m * phase))) for m in (1, 2))
    return float(r - np.sqrt(np.pi / (4 * t.size)))


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Moving average over the last axis (a sung note sits on a held chord: 0.2 s context)."""
    k = np.ones(frames) / frames
    return np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), -1, x)


def harmonic_fit(vocal: Features, instrumental: Features) -> float:
    """Share of the instrumental's chroma at the sung pitch class x 12 (1 = chance); NaN when the
    voice is never voiced or the instrumental is silent."""
    assert vocal.f0 is not None, "the vocal must be analysed with voice=True"
    n = min(vocal.frames, instrumental.frames)
    bins = f0_bins(vocal.f0[:n])
    chroma = _smooth(instrumental.chroma[:, :n].astype(np.float64), int(0.2 * FRAME_RATE))
    total = chroma.sum(axis=0)  # [F]
    ok = (bins >= 0) & (total > 1e-3 * max(float(total.max()), 1e-12))
    if not ok.any():
        return float("nan")
    t = np.flatnonzero(ok)
    share = chroma[bins[t] % 12, t] / total[t]
    return float(12.0 * share.mean())


def vocal_copy(vocal: Features, instrumental: Features) -> float:
    """Salience (frame z-score) at the exact sung pitch, at lag 0 minus the median over
    1-3 s lags; NaN without enough voiced frames."""
    assert vocal.f0 is not None, "the vocal must be analysed with voice=True"
    n = min(vocal.frames, instrumental.frames)
    bins = f0_bins(vocal.f0[:n])
    s = np.log1p(100.0 * instrumental.salience[:, :n].astype(np.float64))  # [84, F], compressed
    z = (s - s.mean(axis=0)) / (s.std(axis=0) + 1e-6)  # [84, F] per-frame z-score
    voiced = np.flatnonzero(bins >= 0)
    if voiced.size < 10:
        return float("nan")

    def at_lag(lag: int) -> float:
        t = voiced + lag
        keep = (t >= 0) & (t < n)
        return float(z[bins[voiced[keep]], t[keep]].mean()) if keep.any() else float("nan")

    shifted = [at_lag(round(s * FRAME_RATE)) for s in COPY_LAGS_S]
    shifted = [v for v in shifted if np.isfinite(v)]
    if not shifted:
        return float("nan")
    return at_lag(0) - float(np.median(shifted))


def level_checks(wav: AnyFloatArray) -> dict[str, float]:
    """``silence``: fraction of 50 ms frames below -60 dBFS; ``clipping``: fraction of samples
    at or beyond 0.999 of full scale."""
    x = np.asarray(wav, dtype=np.float64)
    n = 800  # 50 ms at 16 kHz
    frames = max(x.size // n, 1)
    f = np.resize(x, frames * n).reshape(frames, n) if x.size >= n else x[None]
    db = 10 * np.log10(np.mean(f**2, axis=1) + 1e-12)
    return {
        "silence": float(np.mean(db < -60.0)),
        "clipping": float(np.mean(np.abs(x) >= 0.999)) if x.size else 0.0,
    }


def agreement(
    vocal: Features, instrumental: Features, reference: Features | None = None
) -> dict[str, float]:
    """Every fit metric and ``vocal_copy`` for one clip (reference-based ones NaN without one)."""
    out = {
        "key_vs_ref": float("nan"),
        "key_vs_vocals": mirex_key_score(instrumental.key, vocal.key),
        "tempo_vs_ref": float("nan"),
        "beat_alignment": beat_alignment(vocal.onsets, instrumental.beats),
        "harmonic_fit": harmonic_fit(vocal, instrumental),
        "vocal_copy": vocal_copy(vocal, instrumental),
    }
    if reference is not None:
        out["key_vs_ref"] = mirex_key_score(instrumental.key, reference.key)
        out["tempo_vs_ref"] = float(tempo_match(instrumental.tempo, reference.tempo))
    return out

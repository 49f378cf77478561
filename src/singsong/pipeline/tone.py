"""Tone match: a fixed equaliser curve that gives generated instrumentals the long-term spectral
balance of real ones.

Why: the codec re-synthesises even true instrumentals a little dull (likely because it was
trained without an adversarial loss), and guided, low-temperature sampling picks codes that
decode duller still (singsong-default 0.2 sat 5-8 dB below real bands at 1.6-2.5 kHz and 3-5 dB
above; docs/model.md, "Tone match").
A band's average spectrum is a property of the whole system, not of one song, so one curve,
fitted once per model bundle on training clips (its generations for their vocals, shifted so
that it cannot recall them, against their true instrumentals) and stored in ``singsong.json``,
corrects it for every input. The curve is zero-phase and applied to the decoded instrumental
before the mix's loudness balance, so it changes timbre only: not timing, not pitch, not the
loudness of the mix.

Per clip, a model's output still varies in balance around that average: for singers it never
heard, some instrumentals come out much duller than others. :func:`adapt_tone` therefore moves
each instrumental part of the way (``tone_adapt`` in ``singsong.json``) from its own balance to
the average balance of real instrumentals (``tone_balance_db``, :func:`fit_balance`), like a
match EQ; the fixed curve is applied first, so the adaptation only corrects what is particular
to the clip (docs/model.md, "Tone match").

Bands: gains at :data:`TONE_BANDS_HZ` (third-octave steps from 50 Hz; the last, centred at
8.06 kHz, covers 7.2 kHz to the 8 kHz Nyquist limit), interpolated on a log-frequency axis and
held flat beyond the ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import FloatArray, resample, sliding_windows
from singsong.errors import SingsongError

if TYPE_CHECKING:
    from singsong.pipeline.accompanist import Accompanist

__all__ = [
    "TONE_BANDS_HZ",
    "adapt_tone",
    "apply_tone",
    "band_spectrum",
    "fit_balance",
    "fit_tone",
    "match_tone",
]

TONE_BANDS_HZ: tuple[float, ...] = tuple(round(50.0 * 2 ** (k / 3), 1) for k in range(23))
N_FFT, HOP = 1024, 256
REFERENCE_BAND_HZ = (200.0, 2000.0)  # the curve is 0 dB on average here (the mix re-levels)
MAX_GAIN_DB = 12.0


def band_spectrum(wav: FloatArray) -> np.ndarray:
    """Average spectrum in dB at :data:`TONE_BANDS_HZ` [bands]: each 64 ms frame's band powers
    relative to the signal's mean frame power, averaged in dB over frames (so loudness does not
    matter, only balance, and a few loud frames do not outweigh the rest; floor -80 dB)."""
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1 or x.size < N_FFT:
        raise SingsongError(f"band_spectrum needs mono audio of >= {N_FFT} samples")
    frames = sliding_windows(x, N_FFT, HOP)  # [frames, N_FFT]
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2  # [frames, bins]
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
    bands = np.empty((len(frames), len(TONE_BANDS_HZ)))  # [frames, bands]
    for k, centre in enumerate(TONE_BANDS_HZ):
        lo, hi = centre * 2 ** (-1 / 6), centre * 2 ** (1 / 6)  # a third of an octave
        inside = (freqs >= lo) & (freqs < hi)
        nearest = np.argmin(abs(freqs - centre))
        bands[:, k] = power[:, inside].mean(1) if inside.any() else power[:, nearest]
    level = power.sum(1).mean() + 1e-20
    return (10 * np.log10(bands / level + 1e-8)).mean(0)


def fit_tone(pairs: Iterable[tuple[FloatArray, FloatArray]]) -> tuple[float, ...]:
    """(generated, true) instrumental pairs -> the gains in dB at :data:`TONE_BANDS_HZ` that
    bring the generated average spectrum to the true one: averaged in dB over the pairs,
    0 dB on average over 200 Hz-2 kHz, clipped to +-12 dB, rounded to 0.1 dB."""
    diffs = [band_spectrum(true) - band_spectrum(gen) for gen, true in pairs]
    if not diffs:
        raise SingsongError("fit_tone needs at least one (generated, true) pair")
    return _curve(np.mean(diffs, axis=0))


def _curve(gain: np.ndarray) -> tuple[float, ...]:
    """Gains [bands] in dB -> a curve: 0 dB on average over 200 Hz-2 kHz, clipped to +-12 dB,
    rounded to 0.1 dB."""
    centres = np.asarray(TONE_BANDS_HZ)
    mid = (centres >= REFERENCE_BAND_HZ[0]) & (centres <= REFERENCE_BAND_HZ[1])
    return _rounded(np.clip(gain - gain[mid].mean(), -MAX_GAIN_DB, MAX_GAIN_DB))


def _rounded(db: np.ndarray) -> tuple[float, ...]:
    """dB values to 0.1 dB, as stored in ``singsong.json``."""
    return tuple(round(float(g), 1) + 0.0 for g in db)  # + 0.0: no "-0.0" in the JSON


def fit_balance(truths: Iterable[FloatArray]) -> tuple[float, ...]:
    """The average balance of real instrumentals, :func:`band_spectrum` averaged in dB over
    them, rounded to 0.1 dB: the target of :func:`adapt_tone`."""
    spectra = [band_spectrum(x) for x in truths]
    if not spectra:
        raise SingsongError("fit_balance needs at least one instrumental")
    return _rounded(np.mean(spectra, axis=0))


def adapt_tone(wav: FloatArray, balance_db: tuple[float, ...], strength: float) -> FloatArray:
    """Move the balance of [N] (16 kHz) ``strength`` (0-1) of the way to ``balance_db``: one
    zero-phase curve for the whole clip (:func:`apply_tone`, the gains as :func:`fit_tone`'s).
    Unchanged if ``strength`` is 0, ``balance_db`` empty, or the clip silent or too short to
    measure (under 64 ms)."""
    if not 0.0 <= strength <= 1.0:
        raise SingsongError(f"the tone adaptation's strength must be in [0, 1], got {strength}")
    if strength == 0.0 or not balance_db:
        return wav
    if len(balance_db) != len(TONE_BANDS_HZ):
        raise SingsongError(f"a balance has {len(TONE_BANDS_HZ)} values, got {len(balance_db)}")
    if wav.size < N_FFT or not np.any(wav):
        return wav
    return apply_tone(wav, _curve(strength * (np.asarray(balance_db) - band_spectrum(wav))))


def apply_tone(wav: FloatArray, tone_db: tuple[float, ...]) -> FloatArray:
    """Filter [N] (16 kHz) by the curve (zero-phase, whole signal at once); () = unchanged."""
    if not tone_db:
        return wav
    if len(tone_db) != len(TONE_BANDS_HZ):
        raise SingsongError(f"a tone curve has {len(TONE_BANDS_HZ)} gains, got {len(tone_db)}")
    x = np.asarray(wav, dtype=np.float64)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    db = np.interp(np.log2(np.maximum(freqs, 1.0)), np.log2(TONE_BANDS_HZ), tone_db)
    y = np.fft.irfft(np.fft.rfft(x) * 10 ** (db / 20), n=x.size)
    return y.astype(np.float32)


def match_tone(
    accompanist: Accompanist,
    clips: Iterable[tuple[FloatArray, FloatArray]],
    *,
    seed: int = 0,
    shift_semitones: float = 2.0,
) -> tuple[float, ...]:
    """A model's tone curve: its accompaniments (tone off, default settings, ``seed``) of
    (vocals, true instrumental) training pairs at 16 kHz, fitted to the true instrumentals.

    The vocals are first sped up or slowed down (alternately) by ``shift_semitones``, like a
    tape: a model partly recalls the instrumentals of its training clips, and what it writes
    for them is brighter than what it writes for new singers (singsong-default 0.2: 3-5 dB
    above 2.5 kHz); shifted, they are new to it, and its output on them is as dull as on
    held-out singers (docs/model.md, "Tone match"). The curve matches the average balance, so
    the shifted vocals need not fit the true instrumental's key or tempo."""

    def pairs() -> Iterable[tuple[FloatArray, FloatArray]]:
        for k, (vocals, truth) in enumerate(clips):
            factor = 2 ** ((shift_semitones if k % 2 == 0 else -shift_semitones) / 12)
            shifted = resample(vocals, round(SAMPLE_RATE * factor), SAMPLE_RATE)
            take = accompanist.accompany(shifted, SAMPLE_RATE, seed=seed, tone=False).takes[0]
            yield take.instrumental, truth

    return fit_tone(pairs())

"""Phrase rendering for the singing voice: timing, pitch contour, WORLD synthesis, breaths."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import signal

from singsong.songbook._voice_bank import (
    FRAME_PERIOD_MS,
    MAX_ONSET_FRAMES,
    SPECTRUM_FLOOR,
    Syllable,
    sample_frames,
    time_map,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyworld's pkg_resources deprecation warning
    import pyworld

FP = FRAME_PERIOD_MS / 1000.0  # seconds per frame
LEGATO_GAP = 0.06  # seconds: a shorter rest between notes is sung legato, with a glide
PHRASE_GAP = 0.3  # seconds: a longer rest ends the phrase (synthesised separately)
BREATH_GAP = 0.6  # seconds of silence needed before a phrase to fit a breath
MAX_LEAD = 0.12  # seconds: onset consonants may start this much before the written note
PAD_FRAMES = 10  # silent frames around each phrase so WORLD's pulses are not cut
# Output gain: a velocity-100 vowel (nucleus density normalised to 1) comes out near -21 dBFS RMS
# (about 0.09) with peaks around 0.5; velocity 127 peaks stay mostly below 0.9.
OUTPUT_GAIN = 0.094


@dataclass(frozen=True)
class Slot:
    """One note as the renderer sees it: written timing plus where its syllable is placed."""

    pitch: float
    start: float  # written start (seconds)
    end: float  # written end
    velocity: int
    syllable: Syllable
    slot_start: float  # where the syllable (onset consonant) starts: at or before ``start``
    slot_end: float  # where it ends: ``end`` or earlier if the next onset steals time
    legato: bool  # glide from the previous note


def plan_slots(
    notes: list[tuple[float, float, float, int, Syllable]],
) -> list[Slot]:
    """Place each (pitch, start, end, velocity, syllable) so its vowel lands on the beat.

    Singers start consonants slightly before the beat; the lead is taken from the rest before
    the note or, when legato, from the tail of the previous note.
    """
    slots: list[Slot] = []
    for i, (pitch, start, end, vel, syl) in enumerate(notes):
        onset = min(syl.nucleus[0], MAX_ONSET_FRAMES) * FP
        lead = min(0.7 * onset, MAX_LEAD, start)
        legato = False
        if i > 0:
            prev = slots[-1]
            gap = start - prev.end
            legato = gap < LEGATO_GAP
            lead = min(lead, gap + 0.25 * (prev.end - prev.start))
            if start - lead < prev.slot_end:
                slots[-1] = replace(prev, slot_end=start - lead)
        slots.append(Slot(pitch, start, end, vel, syl, start - lead, end, legato))
    return slots


def split_phrases(slots: list[Slot]) -> list[list[Slot]]:
    """Group slots separated by rests shorter than ``PHRASE_GAP``."""
    phrases: list[list[Slot]] = []
    for s in slots:
        if phrases and s.slot_start - phrases[-1][-1].slot_end < PHRASE_GAP:
            phrases[-1].append(s)
        else:
            phrases.append([s])
    return phrases


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def harmonic_power_ratio(sp: np.ndarray, f0: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power of the harmonics at ``f0`` relative to the envelope's total power, per frame.

    A high voice samples the envelope sparsely: when the harmonics fall between formants the
    note comes out much quieter than the (speech-pitch) envelope suggests. Singers even this out.
    """
    bins = sp.shape[1]
    df = sample_rate / 2 / (bins - 1)
    k = np.arange(1, int(sample_rate / 2 / f0.min()) + 1)
    pos = f0[:, None] * k[None, :] / df
    inside = pos < bins - 1
    pos = np.minimum(pos, bins - 1.001)
    lo = pos.astype(np.int64)
    w = pos - lo
    rows = np.arange(len(f0))[:, None]
    vals = sp[rows, lo] * (1 - w) + sp[rows, lo + 1] * w
    return (vals * inside).sum(axis=1) * f0 / df / sp.sum(axis=1)


def render_phrase(
    phrase: list[Slot], sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """WORLD-synthesise one phrase; returns (audio, index of its first sample in the song)."""
    first = max(int(np.floor(phrase[0].slot_start / FP)) - PAD_FRAMES, 0)
    n = round(phrase[-1].slot_end / FP) - first + PAD_FRAMES
    bins = phrase[0].syllable.sp.shape[1]
    # Octaves above 500 Hz (up to 2.5), for the loudness-dependent spectral tilt below.
    freqs = np.linspace(0.0, sample_rate / 2, bins)
    octaves = np.clip(np.log2(np.maximum(freqs, 1.0) / 500.0), 0.0, 2.5)
    sp = np.full((n, bins), SPECTRUM_FLOOR)
    ap = np.ones((n, bins))
    voiced = np.zeros(n, dtype=bool)
    midi = np.full(n, float(phrase[0].pitch))
    amp = np.zeros(n)
    t = np.arange(n) * FP

    prev_b = 0
    spans: list[tuple[int, int]] = []
    for k, s in enumerate(phrase):
        a = max(round(s.slot_start / FP) - first, prev_b)
        b = max(round(s.slot_end / FP) - first, a)
        if b == a:
            continue
        spans.append((a, b))
        idx = time_map(s.syllable, b - a, rng)
        sp[a:b], ap[a:b], voiced[a:b] = sample_frames(s.syllable, idx)
        midi[a:] = s.pitch  # later notes overwrite; rests keep the last pitch
        amp[a:b] = (s.velocity / 100.0) ** 1.3
        # Louder singing is a brighter voice (vowels only, not fricatives): +-1.5 dB/octave
        # above 500 Hz over the velocity range.
        tilt = 10.0 ** (0.15 * (s.velocity - 100) / 27.0 * octaves)
        sp[a:b] *= np.where(voiced[a:b, None], tilt, 1.0)
        tn = t[a:b] - t[a]
        vstart = np.flatnonzero(voiced[a:b])
        if k > 0 and s.legato:
            # Portamento from the previous note, centred a little after the syllable boundary.
            p = phrase[k - 1]
            g = min(0.1, 0.4 * (s.end - s.start), 0.4 * (p.end - p.start))
            c = s.slot_start - (first * FP)
            w = _smoothstep((t - (c - 0.3 * g)) / max(g, FP))
            lo = max(int((c - 0.3 * g) / FP), 0)
            midi[lo:b] = p.pitch + (s.pitch - p.pitch) * w[lo:b]
        elif len(vstart):
            # Attack after a rest: a small scoop up into the note, as singers do.
            tv = np.maximum(tn - tn[vstart[0]], 0.0)
            midi[a:b] -= rng.uniform(0.25, 0.5) * np.exp(-tv / 0.025) * (tn >= tn[vstart[0]])
        # Vibrato: starts after a delay, fades in, on notes long enough to carry it.
        dur = s.end - s.start
        if dur > 0.45:
            delay = rng.uniform(0.18, 0.3) + (s.start - s.slot_start)
            fade_in = rng.uniform(0.2, 0.35)
            env = np.clip((tn - delay) / fade_in, 0.0, 1.0)
            env *= np.clip((tn[-1] - tn) / 0.06, 0.0, 1.0)  # let the next note start clean
            rate = rng.uniform(5.0, 6.5) * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * tn))
            phase = 2 * np.pi * np.cumsum(rate) * FP + rng.uniform(0, 2 * np.pi)
            vib = env * np.sin(phase)
            midi[a:b] += rng.uniform(0.2, 0.35) * vib
            amp[a:b] *= 1 + 0.08 * vib  # vibrato brings a slight loudness wobble
        prev_b = b
    # Short fade where a slot ends in silence, so a cut-short coda does not stop abruptly.
    for (_, b), nxt in zip(spans, [*spans[1:], (n, n)], strict=True):
        if nxt[0] > b and b >= 3:
            amp[b - 3 : b] *= (0.75, 0.5, 0.25)

    # Slow intonation drift over the phrase (a few cents), as no singer is a perfect oscillator.
    for _ in range(2):
        midi += rng.uniform(0.02, 0.05) * np.sin(
            2 * np.pi * rng.uniform(0.2, 1.2) * t + rng.uniform(0, 2 * np.pi)
        )
    # ... and a slow loudness drift (about +-0.7 dB).
    amp *= 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.15, 0.5) * t + rng.uniform(0, 2 * np.pi))
    f0 = np.where(voiced, 440.0 * 2.0 ** ((midi - 69.0) / 12.0), 0.0)
    for a, b in spans:  # even out each note's loudness across pitches (see harmonic_power_ratio)
        v = np.flatnonzero(voiced[a:b]) + a
        if len(v):
            ratio = float(np.median(harmonic_power_ratio(sp[v], f0[v], sample_rate)))
            amp[a:b] *= float(np.clip(ratio, 1 / 16, 4.0)) ** -0.5
    sp *= np.maximum(amp, 1e-6)[:, None] ** 2
    y = pyworld.synthesize(
        np.ascontiguousarray(f0),
        np.ascontiguousarray(np.maximum(sp, SPECTRUM_FLOOR)),
        np.ascontiguousarray(np.clip(ap, 0.0, 1.0)),
        sample_rate,
        FRAME_PERIOD_MS,
    )
    return y * OUTPUT_GAIN, round(first * FP * sample_rate)


def soft_limit(y: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """Leave samples below ``knee`` untouched and bend rarer peaks smoothly under 1.0.

    Preferred to scaling the whole track down, which would make one loud peak change the level
    of every note.
    """
    mag = np.abs(y)
    over = mag > knee
    if over.any():
        room = 1.0 - knee
        y = y.copy()
        y[over] = np.sign(y[over]) * (knee + room * np.tanh((mag[over] - knee) / room))
    return y


def breath(n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """An inhalation: band-passed noise with a swell that peaks late and stops quickly."""
    hi = min(5000.0, 0.45 * sample_rate)
    sos = signal.butter(2, [500.0, hi], btype="bandpass", fs=sample_rate, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n_samples))
    u = np.linspace(0.0, 1.0, n_samples)
    env = np.sin(np.pi * u**1.3) ** 2
    level = rng.uniform(0.008, 0.014)  # peak RMS ~ -16..-21 dB below a velocity-100 vowel
    return level * env * noise / (np.sqrt(np.mean(noise**2)) + 1e-12)

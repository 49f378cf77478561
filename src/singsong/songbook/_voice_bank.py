"""Syllable bank for the singing voice: synthetic speech analysed with WORLD.

Each lyric word is spoken once by a speech engine (flite or espeak-ng), analysed with WORLD
(DIO + StoneMask pitch, CheapTrick spectral envelope, D4C aperiodicity) and split into onset
consonants, vowel nucleus and coda. The singer then re-times and re-pitches these frames note
by note (see :mod:`singsong.songbook._voice_render`).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

with warnings.catch_warnings():
    # pyworld imports pkg_resources at import time, which warns on recent setuptools.
    warnings.simplefilter("ignore")
    import pyworld

FRAME_PERIOD_MS = 5.0
ESPEAK_SPEED = 140  # words per minute: a bit slower than the default 175 gives longer vowels
FLITE_STRETCH = 1.0  # flite's natural rate already has long enough vowels
# Vowel nucleus = voiced frames within this many dB of the loudest frame (200-4000 Hz band):
# nasals, liquids and voiced fricatives sit 10-25 dB lower and so stay in onset/coda.
NUCLEUS_DB = 9.0
# Fraction of the nucleus sung at natural speed before the held part: singers sustain the
# first vowel target of a diphthong ("night" = a..i) and glide to the second only at the end.
SUSTAIN_POINT = 0.35
MAX_ONSET_FRAMES = 30  # 150 ms
MAX_CODA_FRAMES = 30
SPECTRUM_FLOOR = 1e-14  # power-spectrum value used for silent frames


@dataclass(frozen=True)
class Syllable:
    """WORLD frames of one spoken word, split into onset / nucleus / coda."""

    sp: np.ndarray  # (frames, bins) power spectral envelope, nucleus mean normalised to 1
    ap: np.ndarray  # (frames, bins) aperiodicity (0 = periodic, 1 = noise)
    voiced: np.ndarray  # (frames,) bool
    nucleus: tuple[int, int]  # [start, end) frame range of the vowel nucleus

    @property
    def n_frames(self) -> int:
        """Number of analysis frames."""
        return int(self.sp.shape[0])


def _run_tts(engine: str, voice: str, word: str, wav_path: str) -> None:
    """Write ``word`` spoken by ``engine`` (espeak-ng or flite) to ``wav_path``."""
    exe = shutil.which(engine)
    if exe is None:
        raise RuntimeError(
            f"the singing voice needs the {engine} program: install the Debian package "
            f"`{engine}` (apt-get install {engine})"
        )
    if engine == "espeak-ng":
        cmd = [exe, "-v", voice, "-s", str(ESPEAK_SPEED), "-w", wav_path, word]
    elif engine == "flite":
        stretch = f"duration_stretch={FLITE_STRETCH}"
        cmd = [exe, "-voice", voice, "--setf", stretch, "-t", word, "-o", wav_path]
    else:
        raise ValueError(f"unknown speech engine {engine!r}")
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{engine} failed for voice {voice!r}, word {word!r}: {msg}")


def speech(word: str, engine: str, voice: str, sample_rate: int) -> np.ndarray:
    """Speak ``word`` and return float64 mono audio at ``sample_rate``."""
    with tempfile.TemporaryDirectory(prefix="singsong_voice_") as tmp:
        path = os.path.join(tmp, "word.wav")
        _run_tts(engine, voice, word, path)
        audio, sr = sf.read(path, dtype="float64")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != sample_rate:
        audio = soxr.resample(audio, sr, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float64)


def _trim(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading/trailing silence and the engine's noise floor (10 ms frames more than
    40 dB below the loudest), keeping 10 ms, so frame 0 is the word onset."""
    hop = max(1, sample_rate // 100)
    n = len(x) // hop
    power = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    loud = np.flatnonzero(power > power.max() * 1e-4)
    return x[max(0, (loud[0] - 1) * hop) : (loud[-1] + 2) * hop]


def _clean_voicing(voiced: np.ndarray) -> np.ndarray:
    """Fill 1-2 frame voicing dropouts and drop 1-2 frame voiced islands (DIO glitches)."""
    v = voiced.copy()
    for target in (False, True):  # first fill holes, then remove islands
        n = len(v)
        i = 0
        while i < n:
            if v[i] == target:
                j = i
                while j < n and v[j] == target:
                    j += 1
                if j - i <= 2 and i > 0 and j < n:
                    v[i:j] = not target
                i = j
            else:
                i += 1
    return v


def synth_fft_size(sample_rate: int) -> int:
    """FFT size used for synthesis: 32 ms impulse responses, enough for vocal-tract decay.

    Half of WORLD's default analysis size at 16 kHz, which halves synthesis time.
    """
    return 1 << math.ceil(math.log2(0.032 * sample_rate))


def _resample_frequency(spec: np.ndarray, n_bins: int, factor: float = 1.0) -> np.ndarray:
    """Resample each frame to ``n_bins`` bins, scaling frequencies by ``factor`` (>1 raises
    formants). Envelopes are smooth (CheapTrick lifters them), so linear interpolation is fine."""
    bins = spec.shape[1]
    src = np.arange(n_bins) * ((bins - 1) / (n_bins - 1)) / factor
    lo = np.clip(np.floor(src).astype(np.int64), 0, bins - 2)
    w = np.clip(src - lo, 0.0, 1.0)
    return spec[:, lo] * (1.0 - w) + spec[:, lo + 1] * w


def has_obstruent_coda(word: str) -> bool:
    """Whether the word ends in a stop or fricative (by spelling; right for the LEXICON)."""
    return word.endswith(("t", "p", "k", "d", "f", "s", "ce", "se", "pe", "ve", "ke", "te", "fe"))


def analyse_word(
    x: np.ndarray, sample_rate: int, *, formant_shift: float = 1.0, unvoiced_tail: bool = True
) -> Syllable:
    """WORLD-analyse spoken audio ``x`` into a :class:`Syllable`.

    With ``unvoiced_tail=False`` everything after the last voiced frame is dropped: for words
    ending in a vowel or sonorant that is only the engine's breathy release, which would
    otherwise sound as a hiss at every note end.
    """
    x = _trim(x, sample_rate)
    f0, t = pyworld.dio(x, sample_rate, f0_floor=60.0, f0_ceil=500.0, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, t, sample_rate)
    voiced = _clean_voicing(f0 > 0)
    if not voiced.any():
        raise RuntimeError("the speech engine produced no voiced sound")
    if not unvoiced_tail:
        keep = int(np.flatnonzero(voiced)[-1]) + 2
        f0, t, voiced = f0[:keep], t[:keep], voiced[:keep]
    # Interpolate f0 over filled holes so the envelope analysis stays pitch-synchronous.
    good = f0 > 0
    f0_filled = np.where(voiced, np.interp(np.arange(len(f0)), np.flatnonzero(good), f0[good]), 0)
    sp = pyworld.cheaptrick(x, f0_filled, t, sample_rate)
    ap = pyworld.d4c(x, f0_filled, t, sample_rate)
    n_bins = synth_fft_size(sample_rate) // 2 + 1
    sp = _resample_frequency(sp, n_bins, formant_shift)
    ap = _resample_frequency(ap, n_bins, formant_shift)

    freqs = np.linspace(0.0, sample_rate / 2, sp.shape[1])
    band = (freqs > 200.0) & (freqs < 4000.0)
    energy = 10.0 * np.log10(sp[:, band].sum(axis=1) + 1e-20)
    peak = int(np.argmax(np.where(voiced, energy, -np.inf)))
    loud = voiced & (energy > energy[peak] - NUCLEUS_DB)
    start, end = peak, peak + 1
    while start > 0 and loud[start - 1]:
        start -= 1
    while end < len(loud) and loud[end]:
        end += 1
    # Normalise so every word's vowel has the same mean power density: lyrics then sing at an
    # even level, whatever the sample rate (WORLD's output level follows the density per bin).
    norm = sp[start:end].mean()
    sp = np.maximum(sp / norm, SPECTRUM_FLOOR)
    # float32 halves the bank's memory (about 15 MB for the whole LEXICON at 16 kHz).
    return Syllable(
        sp=sp.astype(np.float32), ap=ap.astype(np.float32), voiced=voiced, nucleus=(start, end)
    )


def build_syllable(
    word: str, engine: str, voice: str, sample_rate: int, formant_shift: float
) -> Syllable:
    """Speak and analyse one lyric word."""
    x = speech(word, engine, voice, sample_rate)
    tail = has_obstruent_coda(word)
    return analyse_word(x, sample_rate, formant_shift=formant_shift, unvoiced_tail=tail)


def time_map(syl: Syllable, n_target: int, rng: np.random.Generator) -> np.ndarray:
    """Fractional source-frame index for each of ``n_target`` output frames.

    Consonants keep their natural length (but never take more than 60 % of the note), the
    vowel nucleus is played at natural speed up to its sustain point, held there (with a slow
    sub-frame wander so the held vowel is not frozen), then finished at natural speed into the
    coda, which ends with the note.
    """
    v0, v1 = syl.nucleus
    onset, coda, vowel = v0, syl.n_frames - v1, v1 - v0
    # Sung consonants are crisper than spoken ones: cap them, then fit them into 60 % of the note.
    on_len, coda_len = min(onset, MAX_ONSET_FRAMES), min(coda, MAX_CODA_FRAMES)
    scale = min(1.0, 0.6 * n_target / max(on_len + coda_len, 1))
    n_on, n_coda = round(on_len * scale), round(coda_len * scale)
    n_vowel = max(n_target - n_on - n_coda, 0)
    parts = [np.arange(n_on) * (onset / max(n_on, 1))]
    if n_vowel <= vowel:
        parts.append(v0 + np.arange(n_vowel) * (vowel / max(n_vowel, 1)))
    else:
        n_attack = round(SUSTAIN_POINT * vowel)
        n_release = vowel - n_attack
        n_hold = n_vowel - vowel
        sustain = v0 + n_attack
        tt = np.arange(n_hold) * (FRAME_PERIOD_MS / 1000.0)
        wander = 1.5 * np.sin(2 * np.pi * rng.uniform(0.4, 0.9) * tt + rng.uniform(0, 2 * np.pi))
        wander *= np.minimum(1.0, np.minimum(tt, tt[::-1]) / 0.1)  # no jumps at hold edges
        parts += [
            v0 + np.arange(n_attack, dtype=np.float64),
            np.clip(sustain + wander, v0, v1 - 1),
            sustain + np.arange(n_release, dtype=np.float64),
        ]
    parts.append(v1 + np.arange(n_coda) * (coda / max(n_coda, 1)))
    idx = np.concatenate(parts)
    return np.clip(idx, 0, syl.n_frames - 1)[:n_target]


def sample_frames(syl: Syllable, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolated (sp, ap, voiced) at fractional frame indices ``idx``."""
    lo = np.clip(np.floor(idx).astype(np.int64), 0, syl.n_frames - 1)
    hi = np.minimum(lo + 1, syl.n_frames - 1)
    w = (idx - lo)[:, None]
    sp = syl.sp[lo] * (1 - w) + syl.sp[hi] * w
    ap = syl.ap[lo] * (1 - w) + syl.ap[hi] * w
    voiced = syl.voiced[np.clip(np.rint(idx).astype(np.int64), 0, syl.n_frames - 1)]
    return sp, ap, voiced

"""Singing voice for the songbook: sung lyrics from synthetic speech, re-timed and re-pitched.

Method: each lyric word is spoken once by a speech engine (flite's CMU ARCTIC voices by default,
espeak-ng also supported) and analysed with WORLD into a syllable bank (spectral envelope,
aperiodicity, voicing; cached per :class:`Singer`). For every note the
onset consonants keep their natural length (placed slightly before the beat, as singers do),
the vowel is stretched by frame interpolation to fill the note, and the pitch follows the
written melody with glides between legato notes, delayed vibrato, a small attack scoop and slow
drift. Each phrase is then synthesised with WORLD; breaths are added before phrases that follow
a long enough rest.

flite's slt/rms voices were chosen over espeak-ng's: their envelopes are learnt from recorded
speakers, so vowels and consonants have natural spectra, where espeak-ng's formant synthesis has
flat, band-gapped spectra that keep sounding robotic after resynthesis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from singsong.songbook._voice_bank import Syllable, build_syllable
from singsong.songbook._voice_render import (
    BREATH_GAP,
    breath,
    plan_slots,
    render_phrase,
    soft_limit,
    split_phrases,
)

__all__ = [
    "LEXICON",
    "VOICE_TYPES",
    "Singer",
    "SungNote",
    "VoiceType",
    "pitch_error_cents",
]


@dataclass(frozen=True)
class SungNote:
    """One sung note carrying one lyric syllable."""

    pitch: float  # MIDI note number (may be fractional)
    start: float  # seconds
    end: float  # seconds, > start
    syllable: str  # one lyric syllable: a lowercase word from LEXICON
    velocity: int = 100  # 1..127, loudness


@dataclass(frozen=True)
class VoiceType:
    """A singer's range and the speech voice its syllables are made from."""

    name: str  # "high" | "low"
    low: int  # lowest comfortable MIDI pitch
    high: int  # highest comfortable MIDI pitch
    engine: str  # speech engine program (Debian package of the same name): "flite"|"espeak-ng"
    tts_voice: str  # the engine's voice: flite -voice NAME / espeak-ng -v NAME
    formant_shift: float = 1.0  # spectral-envelope frequency scale (>1 = smaller vocal tract)


# slt: US English female; rms: US English male (both built into Debian's flite). With espeak-ng
# the best pair was "en-us+f1" (the female variant without the 120-140 ms echo of f2-f5, which
# smears the analysis) and "en-us+m3".
VOICE_TYPES: Mapping[str, VoiceType] = MappingProxyType(
    {
        "high": VoiceType("high", 57, 77, "flite", "slt"),
        "low": VoiceType("low", 45, 65, "flite", "rms"),
    }
)

# One-syllable words with open vowels and mostly sonorant consonants: they sing well and both
# engines pronounce them reliably.
LEXICON: tuple[str, ...] = (
    "love", "night", "heart", "fire", "rain", "home", "light", "day", "way", "sky",
    "sun", "moon", "star", "dream", "blue", "gold", "soul", "fly", "high", "time",
    "life", "fall", "call", "one", "you", "me", "go", "know", "free", "sea",
    "stay", "run", "shine", "burn", "cold", "wind", "road", "true", "hold", "feel",
    "say", "hope", "far", "dawn", "rose", "song", "sing", "dance", "dark", "glow",
    "slow", "sweet", "deep", "rise", "world", "mind", "eyes", "care", "near", "cry",
    "why", "now", "down", "all", "my", "we", "see", "no", "oh", "yeah", "la",
)  # fmt: skip
_LEXICON_SET = frozenset(LEXICON)


def _validate(notes: Sequence[SungNote], duration: float) -> None:
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    prev: SungNote | None = None
    for i, n in enumerate(notes):
        if n.syllable not in _LEXICON_SET:
            raise ValueError(f"note {i}: syllable {n.syllable!r} is not in LEXICON")
        if not (math.isfinite(n.start) and math.isfinite(n.end) and n.start >= 0):
            raise ValueError(f"note {i}: start/end must be finite and >= 0, got {n}")
        if n.end <= n.start:
            raise ValueError(f"note {i}: end {n.end} must be after start {n.start}")
        if not math.isfinite(n.pitch) or not 0 < n.pitch < 128:
            raise ValueError(f"note {i}: pitch {n.pitch!r} is not a MIDI pitch")
        if not 1 <= n.velocity <= 127:
            raise ValueError(f"note {i}: velocity {n.velocity} not in 1..127")
        if prev is not None:
            if n.start < prev.start:
                raise ValueError(f"notes must be sorted by start: note {i} starts before {i - 1}")
            if n.start < prev.end - 1e-9:
                raise ValueError(f"notes {i - 1} and {i} overlap: a voice sings one note at a time")
        prev = n


class Singer:
    """Sings lyric notes with one voice type; the syllable bank is built lazily and cached."""

    def __init__(self, voice: str | VoiceType, *, sample_rate: int = 16000) -> None:
        if isinstance(voice, VoiceType):  # custom voices, e.g. for comparing engines
            self.voice_type = voice
        elif voice not in VOICE_TYPES:
            valid = ", ".join(repr(v) for v in sorted(VOICE_TYPES))
            raise ValueError(f"unknown voice {voice!r}; valid voices: {valid}")
        else:
            self.voice_type = VOICE_TYPES[voice]
        if sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000 Hz, got {sample_rate}")
        self.sample_rate = sample_rate
        self._bank: dict[str, Syllable] = {}

    def syllable(self, word: str) -> Syllable:
        """The analysed syllable for ``word`` (spoken and analysed on first use)."""
        syl = self._bank.get(word)
        if syl is None:
            if word not in _LEXICON_SET:
                raise ValueError(f"syllable {word!r} is not in LEXICON")
            vt = self.voice_type
            syl = build_syllable(word, vt.engine, vt.tts_voice, self.sample_rate, vt.formant_shift)
            self._bank[word] = syl
        return syl

    def prepare(self, words: Sequence[str] = LEXICON) -> None:
        """Build the bank for ``words`` now (e.g. before timing a render)."""
        for w in words:
            self.syllable(w)

    def sing(self, notes: Sequence[SungNote], *, duration: float, seed: int) -> np.ndarray:
        """Render ``notes`` as a float32 mono track of ``round(duration * sample_rate)`` samples.

        Deterministic for the same notes and seed; silent except for notes and breaths.
        """
        _validate(notes, duration)
        sr = self.sample_rate
        n_out = round(duration * sr)
        out = np.zeros(n_out, dtype=np.float64)
        rng = np.random.default_rng(seed)
        slots = plan_slots(
            [(n.pitch, n.start, n.end, n.velocity, self.syllable(n.syllable)) for n in notes]
        )
        prev_end = 0.0
        for phrase in split_phrases([s for s in slots if s.slot_start < duration]):
            y, offset = render_phrase(phrase, sr, rng)
            # A breath before a phrase that follows enough silence (or opens the song).
            gap = phrase[0].slot_start - prev_end
            if gap >= BREATH_GAP:
                length = min(rng.uniform(0.2, 0.4), gap - 0.3)
                end = phrase[0].slot_start - rng.uniform(0.03, 0.08)
                b_start = round((end - length) * sr)
                if length > 0.1 and b_start >= 0:
                    _add(out, breath(round(length * sr), sr, rng), b_start)
            _add(out, y, offset)
            prev_end = phrase[-1].slot_end
        # The fixed gain keeps normal singing well below full scale; only rare loud peaks bend.
        return np.clip(soft_limit(out), -1.0, 1.0).astype(np.float32)


def _add(out: np.ndarray, y: np.ndarray, offset: int) -> None:
    """Mix ``y`` into ``out`` at ``offset``, clipping to the track."""
    lo, hi = max(offset, 0), min(offset + len(y), len(out))
    if hi > lo:
        out[lo:hi] += y[lo - offset : hi - offset]


def pitch_error_cents(
    wav: np.ndarray, sample_rate: int, notes: Sequence[SungNote]
) -> tuple[float, float]:
    """(median absolute pitch error in cents over voiced frames inside notes, fraction of note
    time detected as voiced), pitch tracked with librosa.pyin; skip the first 80 ms of each note
    (consonant/glide)."""
    import librosa

    if not notes:
        return 0.0, 0.0
    pitches = [n.pitch for n in notes]
    fmin = float(librosa.midi_to_hz(min(pitches) - 5))
    fmax = float(librosa.midi_to_hz(max(pitches) + 5))
    hop = max(1, round(0.01 * sample_rate))
    frame_length = 1 << math.ceil(math.log2(0.064 * sample_rate))
    f0, voiced, _ = librosa.pyin(
        np.asarray(wav, dtype=np.float64),
        fmin=fmin,
        fmax=fmax,
        sr=sample_rate,
        frame_length=frame_length,
        hop_length=hop,
    )
    times = np.arange(len(f0)) * hop / sample_rate
    errors: list[np.ndarray] = []
    total = 0
    for n in notes:
        inside = (times >= n.start + 0.08) & (times < n.end)
        total += int(inside.sum())
        ok = inside & voiced & np.isfinite(f0)
        ref = 440.0 * 2.0 ** ((n.pitch - 69.0) / 12.0)
        errors.append(np.abs(1200.0 * np.log2(f0[ok] / ref)))
    err = np.concatenate(errors)
    if total == 0 or len(err) == 0:
        return float("inf"), 0.0
    return float(np.median(err)), len(err) / total

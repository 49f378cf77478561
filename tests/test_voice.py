"""Tests for the songbook singing voice (syllable bank + WORLD synthesis)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("pyworld")
pytest.importorskip("librosa")

from singsong.songbook import _voice_bank
from singsong.songbook.voice import (
    LEXICON,
    VOICE_TYPES,
    Singer,
    SungNote,
    pitch_error_cents,
)

SR = 16000
ENGINES = {vt.engine for vt in VOICE_TYPES.values()}
needs_engine = pytest.mark.skipif(
    any(shutil.which(e) is None for e in ENGINES),
    reason=f"speech engine(s) {sorted(ENGINES)} not installed",
)


@pytest.fixture(scope="module")
def singers() -> dict[str, Singer]:
    """One singer per voice type, shared so each syllable bank is built once."""
    return {name: Singer(name, sample_rate=SR) for name in VOICE_TYPES}


def _melody(voice: str) -> list[SungNote]:
    """Eight notes over the voice's range: legato steps, a leap, a rest, a long held note."""
    vt = VOICE_TYPES[voice]
    base = vt.low + 3
    steps = [0, 2, 4, 5, 7, 5, 9, 4]
    words = ["love", "night", "sea", "home", "fire", "star", "la", "rain"]
    notes, t = [], 0.3
    for i, (step, word) in enumerate(zip(steps, words, strict=True)):
        dur = 0.9 if i == len(steps) - 1 else 0.42
        notes.append(SungNote(base + step, t, t + dur, word, 90 + 3 * i))
        t += dur + (0.25 if i == 3 else 0.0)
    return notes


def test_lexicon_and_voice_types() -> None:
    assert len(LEXICON) >= 48
    assert len(set(LEXICON)) == len(LEXICON)
    assert all(w.isalpha() and w.islower() for w in LEXICON)
    assert {"high", "low"} <= set(VOICE_TYPES)
    high, low = VOICE_TYPES["high"], VOICE_TYPES["low"]
    assert high.low < high.high and low.low < low.high
    assert high.low > low.low and high.high > low.high


@needs_engine
def test_length_dtype_and_peak(singers: dict[str, Singer]) -> None:
    notes = _melody("high")[:4]
    y = singers["high"].sing(notes, duration=2.345, seed=0)
    assert y.dtype == np.float32
    assert y.shape == (round(2.345 * SR),)
    assert np.all(np.isfinite(y))
    assert 0.05 < np.max(np.abs(y)) <= 1.0
    # Notes past the end are cut off rather than breaking the length.
    assert singers["high"].sing(_melody("high"), duration=1.0, seed=0).shape == (SR,)
    assert not singers["low"].sing([], duration=0.5, seed=0).any()


@needs_engine
def test_deterministic_under_seed(singers: dict[str, Singer]) -> None:
    notes = _melody("low")
    a = singers["low"].sing(notes, duration=5.0, seed=7)
    b = singers["low"].sing(notes, duration=5.0, seed=7)
    c = singers["low"].sing(notes, duration=5.0, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # A fresh singer (fresh bank) renders the same.
    np.testing.assert_array_equal(a, Singer("low").sing(notes, duration=5.0, seed=7))


@needs_engine
@pytest.mark.parametrize("voice", ["high", "low"])
def test_pitch_follows_notes(singers: dict[str, Singer], voice: str) -> None:
    notes = _melody(voice)
    y = singers[voice].sing(notes, duration=notes[-1].end + 0.3, seed=1)
    err, coverage = pitch_error_cents(y, SR, notes)
    assert err < 50.0, err
    assert coverage > 0.6, coverage


@needs_engine
def test_silence_away_from_notes(singers: dict[str, Singer]) -> None:
    notes = [
        SungNote(62, 0.2, 1.0, "love"),
        SungNote(64, 4.0, 5.0, "home"),
    ]
    y = singers["high"].sing(notes, duration=6.5, seed=3).astype(np.float64)

    def rms(t0: float, t1: float) -> float:
        return float(np.sqrt(np.mean(y[int(t0 * SR) : int(t1 * SR)] ** 2)))

    voice_rms = rms(0.3, 0.9)
    assert voice_rms > 0.02
    assert rms(1.3, 3.3) < 1e-4  # long rest: silent (the breath comes just before the phrase)
    assert rms(5.3, 6.5) < 1e-4  # after the last note
    breath = rms(3.35, 3.95)  # inhalation before the second phrase: audible but soft
    assert 1e-3 < breath < 0.5 * voice_rms


@needs_engine
def test_words_sound_different(singers: dict[str, Singer]) -> None:
    """Listen-proxy: different lyrics give different vowel spectra, and a sibilant onset."""
    import librosa

    singer = singers["low"]

    def spectrum(word: str) -> np.ndarray:
        y = singer.sing([SungNote(52, 0.1, 1.1, word)], duration=1.3, seed=0)
        s = np.abs(librosa.stft(y[int(0.5 * SR) : int(0.9 * SR)], n_fft=1024))
        return np.log(s.mean(axis=1) + 1e-6)

    la, sea, blue = spectrum("la"), spectrum("sea"), spectrum("blue")
    assert np.abs(la - sea).mean() > 0.5 and np.abs(la - blue).mean() > 0.5
    # "sea" opens with /s/: a noisy onset whose energy sits far above the sung vowel's.
    y = singer.sing([SungNote(52, 0.3, 1.3, "sea")], duration=1.5, seed=0)
    centroid = librosa.feature.spectral_centroid(y=y, sr=SR, n_fft=512, hop_length=160)[0]
    loud = librosa.feature.rms(y=y, frame_length=512, hop_length=160)[0] > 0.01
    assert centroid[loud][:5].mean() > 2.5 * np.median(centroid[loud])


@needs_engine
def test_velocity_controls_loudness(singers: dict[str, Singer]) -> None:
    quiet = singers["high"].sing([SungNote(65, 0.1, 1.0, "la", 50)], duration=1.2, seed=0)
    loud = singers["high"].sing([SungNote(65, 0.1, 1.0, "la", 120)], duration=1.2, seed=0)
    assert np.sqrt(np.mean(loud**2)) > 2.0 * np.sqrt(np.mean(quiet**2))


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"'high'.*'low'"):
        Singer("soprano")
    singer = Singer("high")
    with pytest.raises(ValueError, match="LEXICON"):
        singer.sing([SungNote(60, 0.0, 0.5, "supercalifragilistic")], duration=1.0, seed=0)
    with pytest.raises(ValueError, match="overlap"):
        singer.sing(
            [SungNote(60, 0.0, 0.5, "love"), SungNote(62, 0.4, 0.8, "home")], duration=1.0, seed=0
        )
    with pytest.raises(ValueError, match="sorted"):
        singer.sing(
            [SungNote(60, 0.5, 0.8, "love"), SungNote(62, 0.0, 0.4, "home")], duration=1.0, seed=0
        )
    with pytest.raises(ValueError, match="after start"):
        singer.sing([SungNote(60, 0.5, 0.5, "love")], duration=1.0, seed=0)
    with pytest.raises(ValueError, match="duration"):
        singer.sing([], duration=0.0, seed=0)


def test_missing_engine_says_which_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_voice_bank.shutil, "which", lambda _name: None)
    engine = VOICE_TYPES["high"].engine
    with pytest.raises(RuntimeError, match=f"Debian package `{engine}`"):
        Singer("high").syllable("love")

"""Synthetic music for the evaluation tests: harmonic tones, chords, melodies, click tracks.

Shared by tests/test_evaluation_*.py; also checks that the synthesis itself is what it claims.
"""

from __future__ import annotations

import argparse

import numpy as np

SR = 16_000


def midi_hz(note: float) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def tone(note: float, seconds: float, *, harmonics: int = 4, level: float = 0.2) -> np.ndarray:
    """A harmonic tone with a short attack and release -> float32 [seconds * SR]."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * midi_hz(note) * h * t) / h for h in range(1, harmonics + 1))
    env = np.minimum(1.0, np.minimum(t / 0.01, (seconds - t) / 0.03))
    return (level * x * np.clip(env, 0, 1) / 2).astype(np.float32)


def melody(notes: list[int], beat_s: float = 0.5) -> np.ndarray:
    """One note per beat, starting on the beat -> [len(notes) * beat_s * SR]."""
    return np.concatenate([tone(n, beat_s, harmonics=6) for n in notes])


def chords(roots: list[list[int]], seconds_each: float, level: float = 0.1) -> np.ndarray:
    """Sustained chords, one after another."""
    return np.concatenate(
        [sum(tone(n, seconds_each, level=level) for n in chord) for chord in roots]
    ).astype(np.float32)


def clicks(bpm: float, seconds: float, *, offset: float = 0.0) -> np.ndarray:
    """A click (10 ms decaying 2 kHz burst) on every beat."""
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    click = (np.sin(2 * np.pi * 2000 * np.arange(160) / SR) * np.exp(-np.arange(160) / 30)) * 0.5
    for b in np.arange(offset, seconds, 60.0 / bpm):
        i = int(b * SR)
        n = min(160, x.size - i)
        x[i : i + n] += click[:n].astype(np.float32)
    return x


C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
# I - IV - V - I in C major, with the bass an octave below.
C_PROGRESSION = [[48, 60, 64, 67], [53, 65, 69, 72], [55, 67, 71, 74], [48, 60, 64, 67]]


def band(bpm: float, seconds: float, transpose: int = 0) -> np.ndarray:
    """A C-major (+ ``transpose``) chord progression with a click track at ``bpm``."""
    prog = [[n + transpose for n in c] for c in C_PROGRESSION]
    bar = 4 * 60.0 / bpm
    n = int(np.ceil(seconds / bar))
    harmony = chords((prog * n)[:n], bar)[: int(seconds * SR)]
    return (harmony + clicks(bpm, seconds)[: harmony.size]).astype(np.float32)


def eval_parser() -> argparse.ArgumentParser:
    """The ``eval`` and ``baseline`` commands, as the CLI tests parse them."""
    from singsong.cli.evaluate import add_baseline, add_eval

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    add_eval(sub)
    add_baseline(sub)
    return p


def test_synthesis_is_what_it_claims() -> None:
    x = tone(69, 1.0, harmonics=1)
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * SR / x.size - 440.0) < 2.0
    assert melody(C_MAJOR_SCALE).size == 8 * SR // 2
    assert np.count_nonzero(np.abs(clicks(120, 2.0)) > 0.1) > 0
    assert band(120, 4.0).size == 4 * SR

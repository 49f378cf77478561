"""The lead vocal's melody and lyrics, written over the song's chords.

Two-bar phrases with a repeated rhythm (A A' B A'), chord tones on strong beats, mostly stepwise
motion in between, rests at phrase ends, one lyric word per note; a melody is written once per
section type and sung again when the section returns, as songs do.
"""

from __future__ import annotations

import numpy as np

from singsong.songbook.parts import ChordSpan, StepNote
from singsong.songbook.styles import BEAT_STEPS, METER_STEPS, Style
from singsong.songbook.theory import Key, nearest_pitch
from singsong.songbook.voice import LEXICON, VOICE_TYPES


def write_melody(
    sections: list[tuple[str, int, int]],
    spans: list[ChordSpan],
    *,
    key: Key,
    style: Style,
    voice: str,
    meter: str,
    rng: np.random.Generator,
) -> list[tuple[StepNote, str]]:
    """The lead vocal: a melody per section type (repeated sections sing it again) with lyrics."""
    vt = VOICE_TYPES[voice]
    bar_steps, beat = METER_STEPS[meter], BEAT_STEPS[meter]
    written: dict[str, list[tuple[StepNote, str]]] = {}
    out: list[tuple[StepNote, str]] = []
    for name, start, end in sections:
        if name in ("intro", "outro"):
            continue
        if name not in written:
            # Choruses sit higher than verses: the lift a listener expects.
            centre = vt.low + (vt.high - vt.low) * {"verse": 0.4, "chorus": 0.6}.get(name, 0.5)
            written[name] = _melody_section(
                start,
                end,
                spans,
                key=key,
                density=style.melody_density,
                bar_steps=bar_steps,
                beat=beat,
                centre=centre,
                low=vt.low,
                high=vt.high,
                rng=rng,
            )
            offset = 0
            first_start = start
        else:
            first_start = next(s for n, s, _ in sections if n == name)
            offset = start - first_start
        for note, syllable in written[name]:
            if note.start + offset < end:
                out.append(
                    (
                        StepNote(
                            note.pitch,
                            note.start + offset,
                            min(note.end + offset, end),
                            note.velocity,
                        ),
                        syllable,
                    )
                )
    return out


def _melody_section(
    start: int,
    end: int,
    spans: list[ChordSpan],
    *,
    key: Key,
    density: float,
    bar_steps: int,
    beat: int,
    centre: float,
    low: int,
    high: int,
    rng: np.random.Generator,
) -> list[tuple[StepNote, str]]:
    """Two-bar phrases: rhythm A A' B A', chord tones on beats, steps in between, rests at ends."""
    phrase_steps = 2 * bar_steps
    rhythms: dict[int, list[tuple[int, int]]] = {}
    notes: list[tuple[StepNote, str]] = []
    previous = nearest_pitch(key.scale, centre, low=low, high=high)
    for index, phrase_start in enumerate(range(start, end, phrase_steps)):
        shape = (0, 0, 1, 0)[index % 4]
        if shape not in rhythms:
            rhythms[shape] = _phrase_rhythm(phrase_steps, bar_steps, beat, density, rng)
        rhythm = rhythms[shape]
        for i, (on, off) in enumerate(rhythm):
            step = phrase_start + on
            chord = next(s.chord for s in spans if s.start <= step < s.end)
            last = i == len(rhythm) - 1
            if last and phrase_start + phrase_steps >= end:
                pitch = nearest_pitch(
                    (key.tonic,) if key.tonic in chord.pitch_classes else chord.triad,
                    previous,
                    low=low,
                    high=high,
                )
            elif on % beat == 0 or last:
                # Strong beat: a chord tone near the last note, drifting back toward the centre.
                target = previous + rng.normal(0, 2.5) + 0.25 * (centre - previous)
                pitch = nearest_pitch(chord.triad, target, low=low, high=high)
            else:
                # Weak beat: mostly a scale step from the last note, sometimes a repeat.
                move = int(rng.choice([-1, 1, 0], p=[0.42, 0.42, 0.16]))
                if abs(previous - centre) > 5:
                    move = -1 if previous > centre else 1
                pitch = _scale_step(previous, move, key, low, high)
            velocity = int(np.clip(rng.normal(92, 6), 70, 115))
            notes.append(
                (
                    StepNote(pitch, step, phrase_start + off, velocity),
                    LEXICON[int(rng.integers(len(LEXICON)))],
                )
            )
            previous = pitch
    return notes


def _phrase_rhythm(
    phrase_steps: int, bar_steps: int, beat: int, density: float, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Onsets on the eighth-note grid, ending early enough to leave a breath at the phrase end."""
    sing_until = phrase_steps - int(rng.choice([beat, 2 * beat]))
    pickup = int(rng.choice([0, 0, 2, beat]))
    onsets = [pickup]
    for step in range(pickup + 2, sing_until, 2):
        p = density * (1.3 if step % beat == 0 else 0.7)
        if rng.random() < p:
            onsets.append(step)
    if len(onsets) < 3:
        onsets = sorted({pickup, *range(pickup + beat, sing_until, beat)})[:4]
    spans = []
    for i, on in enumerate(onsets):
        nxt = onsets[i + 1] if i + 1 < len(onsets) else sing_until
        # Some notes end a sixteenth early: the gap lets the next syllable's consonant through.
        off = nxt - 1 if (nxt - on >= 4 and rng.random() < 0.3) else nxt
        spans.append((on, off))
    del bar_steps
    return spans


def _scale_step(pitch: int, move: int, key: Key, low: int, high: int) -> int:
    if move == 0:
        return pitch
    candidate = pitch + move
    while candidate % 12 not in key.scale:
        candidate += move
    return candidate if low <= candidate <= high else _scale_step(pitch, -move, key, low, high)

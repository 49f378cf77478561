"""Drum, bass and accompaniment parts, written on the step grid of a song.

Every function here returns ``StepNote``s (times in sixteenth-note steps from the start of the
song); the composer turns steps into seconds, adds swing and humanises. Keeping the parts on the
grid makes them easy to read and to test against the written chords.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from singsong.songbook.styles import (
    CRASH,
    HIGH_TOM,
    KICK,
    LOW_TOM,
    METER_STEPS,
    MID_TOM,
    SNARE,
    Layer,
)
from singsong.songbook.theory import QUALITIES, Chord, voice_chord

_HIT_VELOCITY = {"X": 112, "x": 92, "o": 52, "D": 96, "u": 72}


@dataclass(frozen=True)
class StepNote:
    pitch: int
    start: float  # steps (fractional for strum spreads)
    end: float  # steps
    velocity: int


@dataclass(frozen=True)
class ChordSpan:
    chord: Chord
    start: int  # steps
    end: int  # steps


def _hits(pattern: str, start: int, end: int, offset: int = 0) -> list[tuple[int, str]]:
    """(step, symbol) for every non-rest symbol of a repeating ``pattern`` inside [start, end).

    ``offset`` is the step where the pattern's first symbol falls (the bar or phrase start).
    """
    n = len(pattern)
    symbols = ((s, pattern[(s - offset) % n]) for s in range(start, end))
    return [(s, symbol) for s, symbol in symbols if symbol != "."]


def _gated(hits: list[tuple[int, str]], end: int, gate: float) -> list[tuple[int, float, str]]:
    """Each hit lasts until the next one (or ``end``), shortened to ``gate`` of that length."""
    out = []
    for i, (step, symbol) in enumerate(hits):
        nxt = hits[i + 1][0] if i + 1 < len(hits) else end
        out.append((step, step + max(0.5, (nxt - step) * gate), symbol))
    return out


# --- drums -----------------------------------------------------------------------------------

_FILLS = {  # last beats of a section's final bar
    16: {
        SNARE: "........xx......",
        HIGH_TOM: "..........xx....",
        MID_TOM: "............xx..",
        LOW_TOM: "..............xx",
    },
    12: {SNARE: "......xx....", HIGH_TOM: "........xx..", LOW_TOM: "..........xx"},
}


def drum_bar(
    groove: dict[int, str], *, bar_start: int, meter: str, fill: bool, crash: bool, sparse: bool
) -> list[StepNote]:
    """One bar of a groove; ``fill`` replaces its second half with a snare/tom fill."""
    steps = METER_STEPS[meter]
    notes: list[StepNote] = []
    fill_from = steps // 2 if fill else steps
    for drum, pattern in groove.items():
        if sparse and drum not in (KICK,) and drum != max(groove, key=lambda d: pattern.count("x")):
            continue  # intros keep the kick and the busiest cymbal: the band comes in later
        for step, symbol in _hits(pattern, bar_start, bar_start + fill_from, bar_start):
            notes.append(StepNote(drum, step, step + 1, _HIT_VELOCITY[symbol]))
    if fill:
        for drum, pattern in _FILLS[steps].items():
            for step, _ in _hits(pattern, bar_start + fill_from, bar_start + steps, bar_start):
                notes.append(StepNote(drum, step, step + 1, 84 + 3 * ((step - bar_start) % 4)))
    if crash:
        notes.append(StepNote(CRASH, bar_start, bar_start + 1, 104))
    return notes


# --- bass ------------------------------------------------------------------------------------

# Symbols: r root, f fifth, o octave above the root, 3 third. Patterns may span two bars.
BASS_FIGURES: dict[str, dict[str, str]] = {
    "root": {"4/4": "r...............", "3/4": "r...........", "6/8": "r..........."},
    "root_fifth": {"4/4": "r.......f.......", "3/4": "r.......f...", "6/8": "r.....f....."},
    "eighths": {"4/4": "r.r.r.r.r.r.r.r.", "3/4": "r.r.r.r.r.r.", "6/8": "r.r.r.f.r.r."},
    "funk": {"4/4": "r..o..r.r.f..o.r"},
    "bossa": {"4/4": "r.....f.f.....r."},
    "waltz": {"3/4": "r...........f..........."},
    "offbeat": {"4/4": "..r...o...r...o."},
    "sub": {"4/4": "r......r..r....."},
}
_BASS_GATE = {"eighths": 0.8, "funk": 0.6, "offbeat": 0.7, "sub": 0.95}


def bass_part(spans: list[ChordSpan], *, figure: str, meter: str) -> list[StepNote]:
    patterns = BASS_FIGURES[figure]
    pattern = patterns.get(meter) or BASS_FIGURES["root_fifth"][meter]
    gate = _BASS_GATE.get(figure, 0.9)
    notes = []
    for span in spans:
        # Roots sit between E1 (28) and D#2 (39): low enough to be bass, high enough to be heard.
        root = 28 + (span.chord.root - 4) % 12
        intervals = QUALITIES[span.chord.quality]
        tone = {"r": 0, "o": 12, "3": intervals[1], "f": intervals[2] if len(intervals) > 2 else 7}
        hits = _hits(pattern, span.start, span.end, 0) or [(span.start, "r")]
        for start, end, symbol in _gated(hits, span.end, gate):
            velocity = 100 if (start % 4 == 0) else 84
            notes.append(StepNote(root + tone[symbol], start, end, velocity))
    return notes


# --- accompaniment ---------------------------------------------------------------------------

FIGURE_RHYTHMS: dict[str, dict[str, str]] = {
    "block": {"4/4": "x...x...x...x...", "3/4": "x...x...x...", "6/8": "x.....x....."},
    "strum": {"4/4": "D...D.DuD.Du.uDu", "3/4": "D...D.DuD.Du", "6/8": "D.DuD.D.DuD."},
    "power": {"4/4": "X.x.X.x.X.x.X.x.", "3/4": "X.x.X.x.X.x."},
    "stabs": {"4/4": ".x..x.x..x..x.x.", "3/4": ".x..x.x..x.."},
    "bossa": {"4/4": "x..x..x...x..x.."},
    "waltz": {"3/4": "....x...x..."},
}
_FIGURE_GATE = {
    "block": 0.92,
    "strum": 1.0,
    "power": 0.55,
    "stabs": 0.45,
    "bossa": 0.7,
    "waltz": 0.6,
}


def layer_part(
    spans: list[ChordSpan], *, layer: Layer, meter: str, rng: np.random.Generator
) -> list[StepNote]:
    """The notes of one accompaniment instrument playing its figure over the chords."""
    notes: list[StepNote] = []
    voicing: tuple[int, ...] = ()
    figure = layer.figure
    for span in spans:
        voicing = voice_chord(span.chord, low=layer.low, high=layer.high, previous=voicing)
        if figure == "sustain":
            notes += [StepNote(p, span.start, span.end, layer.velocity) for p in voicing]
        elif figure in ("arpeggio", "arp16"):
            notes += _arpeggio(voicing, span, sixteenths=figure == "arp16", velocity=layer.velocity)
        else:
            rhythms = FIGURE_RHYTHMS[figure]
            pattern = rhythms.get(meter) or FIGURE_RHYTHMS["block"][meter]
            chord = voicing
            if figure == "power":  # root, fifth and octave, low: the sound of a rock guitar
                root = layer.low + (span.chord.root - layer.low) % 12
                chord = (root, root + 7, root + 12)
            elif figure == "strum":  # guitars double the root an octave down
                chord = (voicing[0] - 12, *voicing) if voicing[0] - 12 >= 40 else voicing
            gate = _FIGURE_GATE[figure]
            for start, end, symbol in _gated(_hits(pattern, span.start, span.end), span.end, gate):
                velocity = int(layer.velocity * _HIT_VELOCITY.get(symbol, 92) / 92)
                # A strum sounds its strings one after another: down low->high, up high->low.
                order = chord[::-1] if symbol == "u" else chord
                spread = 0.12 if figure == "strum" else 0.0
                for i, pitch in enumerate(order):
                    notes.append(StepNote(pitch, start + i * spread, end, velocity))
    del rng  # figures are fully written; randomness enters through humanisation
    return notes


def _arpeggio(
    voicing: tuple[int, ...], span: ChordSpan, *, sixteenths: bool, velocity: int
) -> list[StepNote]:
    # Up and back down the chord, starting from the bass note: the classic broken-chord figure.
    cycle = [*voicing, voicing[0] + 12, *voicing[-1:0:-1]]
    every = 1 if sixteenths else 2
    ring = 1.0 if sixteenths else 3.0  # eighth-note arpeggios let notes ring, like a sustain pedal
    notes = []
    for i, step in enumerate(range(span.start, span.end, every)):
        accent = 1.1 if step % 4 == 0 else 0.9
        notes.append(
            StepNote(
                cycle[i % len(cycle)],
                step,
                min(step + ring * every, span.end),
                min(127, int(velocity * accent)),
            )
        )
    return notes

"""The songbook's composer: one seed -> one song (form, harmony, a sung melody with lyrics, a band).

The composer is deterministic: ``compose(seed)`` always writes the same song. It works on a grid
of sixteenth-note steps and converts to seconds only at the end, where swing and humanisation
(timing and velocity jitter) are applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from singsong.songbook.melody import write_melody
from singsong.songbook.parts import ChordSpan, StepNote, bass_part, drum_bar, layer_part
from singsong.songbook.styles import (
    BEAT_STEPS,
    KICK,
    METER_STEPS,
    STYLE_NAMES,
    Style,
    get_style,
)
from singsong.songbook.theory import ALL_KEYS, Chord, Key, parse_numeral
from singsong.songbook.voice import SungNote

STEMS = ("vocals", "drums", "bass", "other")

# (section, bars). Verses and choruses are 8 bars (a 4-bar progression twice); short songs, for
# tests and demos, keep the shape with one progression per section.
FULL_FORMS = (
    (
        ("intro", 4),
        ("verse", 8),
        ("chorus", 8),
        ("verse", 8),
        ("chorus", 8),
        ("bridge", 8),
        ("chorus", 8),
        ("outro", 4),
    ),
    (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("outro", 4)),
    (("intro", 2), ("verse", 8), ("chorus", 8), ("bridge", 4), ("chorus", 8), ("outro", 2)),
)
SHORT_FORM = (("intro", 1), ("verse", 4), ("chorus", 4), ("outro", 2))
COMPOUND_TEMPO = (60, 76)  # dotted quarters per minute, for every style that writes in 6/8
TAIL_SECONDS = 1.5  # after the last bar: room for releases and reverb


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float  # seconds
    end: float  # seconds
    velocity: int


@dataclass(frozen=True)
class Part:
    stem: str  # "drums" | "bass" | "other"
    program: int  # General MIDI program; the drum kit's program for drums
    is_drum: bool
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class TimedChord:
    symbol: str
    numeral: str
    start: float
    end: float


@dataclass(frozen=True)
class Section:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Song:
    song_id: str
    seed: int
    style: str
    key: Key
    tempo: float  # beats per minute (dotted quarters in 6/8)
    meter: str
    voice: str
    duration: float  # seconds, including the tail
    sections: tuple[Section, ...]
    chords: tuple[TimedChord, ...]
    vocal: tuple[SungNote, ...]
    parts: tuple[Part, ...]

    def meta(self) -> dict:
        """Everything about the song that a later stage may need, JSON-ready."""
        return {
            "song_id": self.song_id,
            "seed": self.seed,
            "style": self.style,
            "key": self.key.name,
            "tonic": self.key.tonic,
            "mode": self.key.mode,
            "tempo": self.tempo,
            "time_signature": self.meter,
            "voice": self.voice,
            "duration": self.duration,
            "sections": [asdict(s) for s in self.sections],
            "chords": [asdict(c) for c in self.chords],
            "vocal_notes": [asdict(n) for n in self.vocal],
            "programs": [
                {"stem": p.stem, "program": p.program, "is_drum": p.is_drum} for p in self.parts
            ],
        }


def compose(
    seed: int, *, song_id: str = "", styles: tuple[str, ...] = STYLE_NAMES, short: bool = False
) -> Song:
    """Write one song from ``seed``; the style is drawn from ``styles``."""
    rng = np.random.default_rng(seed)
    style = get_style(styles[int(rng.integers(len(styles)))])
    meter = style.meters[int(rng.integers(len(style.meters)))]
    mode = "minor" if rng.random() < style.minor_probability else "major"
    key = ALL_KEYS[int(rng.integers(12)) + (12 if mode == "minor" else 0)]
    # In 6/8 the beat is a dotted quarter: three eighths, so it is counted slowly.
    low, high = COMPOUND_TEMPO if meter == "6/8" else style.tempo
    tempo = float(rng.integers(low, high + 1))
    voice = ("high", "low")[int(rng.integers(2))]
    form = SHORT_FORM if short else FULL_FORMS[int(rng.integers(len(FULL_FORMS)))]
    bar_steps = METER_STEPS[meter]

    # Harmony: one progression per section type, repeated, so the song has a shape to remember.
    progression = {
        name: style.progressions[f"{mode}/{name}"][
            int(rng.integers(len(style.progressions[f"{mode}/{name}"])))
        ]
        for name in ("verse", "chorus", "bridge")
    }
    spans: list[ChordSpan] = []
    section_steps: list[tuple[str, int, int]] = []
    bar = 0
    for name, bars in form:
        for i, chords in enumerate(_section_chords(name, bars, progression, key)):
            start = (bar + i) * bar_steps
            for j, chord in enumerate(chords):
                spans.append(
                    ChordSpan(
                        chord,
                        start + j * bar_steps // len(chords),
                        start + (j + 1) * bar_steps // len(chords),
                    )
                )
        section_steps.append((name, bar * bar_steps, (bar + bars) * bar_steps))
        bar += bars
    total_steps = bar * bar_steps

    grid = _Grid(tempo=tempo, meter=meter, swing=style.swing)
    melody = write_melody(
        section_steps, spans, key=key, style=style, voice=voice, meter=meter, rng=rng
    )
    parts = _write_band(style, section_steps, spans, meter=meter, rng=rng, grid=grid)
    duration = grid.seconds(total_steps) + TAIL_SECONDS
    return Song(
        song_id=song_id or f"song-{seed}",
        seed=seed,
        style=style.name,
        key=key,
        tempo=tempo,
        meter=meter,
        voice=voice,
        duration=round(duration, 4),
        sections=tuple(Section(n, grid.seconds(a), grid.seconds(b)) for n, a, b in section_steps),
        chords=tuple(
            TimedChord(s.chord.symbol, s.chord.numeral, grid.seconds(s.start), grid.seconds(s.end))
            for s in spans
        ),
        vocal=tuple(grid.sung(n, syllable) for n, syllable in melody),
        parts=parts,
    )


class _Grid:
    """Steps -> seconds, with swing on the off-beat sixteenths."""

    def __init__(self, *, tempo: float, meter: str, swing: float) -> None:
        self.step = 60.0 / tempo / BEAT_STEPS[meter]
        self.swing = swing

    def seconds(self, step: float) -> float:
        whole = int(step)
        delay = self.swing * self.step if whole % 2 == 1 and step == whole else 0.0
        return round(step * self.step + delay, 5)

    def sung(self, n: StepNote, syllable: str) -> SungNote:
        return SungNote(
            float(n.pitch), self.seconds(n.start), self.seconds(n.end), syllable, n.velocity
        )


def _section_chords(
    name: str, bars: int, progression: dict[str, str], key: Key
) -> list[list[Chord]]:
    """The chords of each bar of a section (a bar may hold two chords: ``ii7-V7``)."""
    if name == "intro":
        tokens = progression["chorus"].split()
    elif name == "outro":
        # A cadence to close the song: dominant (or subdominant, plagal) to tonic.
        tonic, sub = ("I", "IV") if key.mode == "major" else ("i", "iv")
        cadence = [sub, "V7"][-(bars - 1) :] if bars > 1 else []
        tokens = [sub] * (bars - 1 - len(cadence)) + cadence + [tonic]
    else:
        tokens = progression[name].split()
    bars_tokens = (tokens * (bars // len(tokens) + 1))[:bars]
    return [[parse_numeral(t, key) for t in token.split("-")] for token in bars_tokens]


def _write_band(
    style: Style,
    sections: list[tuple[str, int, int]],
    spans: list[ChordSpan],
    *,
    meter: str,
    rng: np.random.Generator,
    grid: _Grid,
) -> tuple[Part, ...]:
    bar_steps = METER_STEPS[meter]
    groove = style.drums[meter][int(rng.integers(len(style.drums[meter])))]
    drums: list[StepNote] = []
    for name, start, end in sections:
        for bar_start in range(start, end, bar_steps):
            last_bar = bar_start + bar_steps >= end
            if name == "outro" and last_bar:
                # The final bar: one last hit on the downbeat, and the cymbal rings out.
                drums += drum_bar(
                    {KICK: "x".ljust(bar_steps, ".")},
                    bar_start=bar_start,
                    meter=meter,
                    fill=False,
                    crash=True,
                    sparse=False,
                )
                continue
            drums += drum_bar(
                groove,
                bar_start=bar_start,
                meter=meter,
                fill=style.fills and last_bar and name != "outro",
                crash=bar_start == start and name in ("chorus", "bridge"),
                sparse=name == "intro" and bar_start < (start + end) // 2,
            )
    # The first layer always plays; each further layer joins with probability one half.
    layers = [style.layers[0]] + [layer for layer in style.layers[1:] if rng.random() < 0.5]
    raw: list[tuple[str, int, bool, list[StepNote]]] = [
        ("drums", _choice(style.kits, rng), True, drums),
        (
            "bass",
            _choice(style.bass_programs, rng),
            False,
            bass_part(spans, figure=style.bass_figure, meter=meter),
        ),
    ]
    for layer in layers:
        raw.append(
            (
                "other",
                _choice(layer.programs, rng),
                False,
                layer_part(spans, layer=layer, meter=meter, rng=rng),
            )
        )
    return tuple(
        Part(stem, program, is_drum, _humanise(notes, grid, rng, drum=is_drum))
        for stem, program, is_drum, notes in raw
    )


def _choice(options: tuple[int, ...], rng: np.random.Generator) -> int:
    return options[int(rng.integers(len(options)))]


def _humanise(
    notes: list[StepNote], grid: _Grid, rng: np.random.Generator, *, drum: bool
) -> tuple[Note, ...]:
    """Steps -> seconds with a little timing and velocity jitter, as a player would have."""
    jitter = 0.004 if drum else 0.007
    out = []
    for n in notes:
        shift = float(rng.normal(0, jitter))
        start = max(0.0, grid.seconds(n.start) + shift)
        end = max(start + 0.02, grid.seconds(n.end) + shift)
        velocity = int(np.clip(n.velocity + rng.integers(-8, 9), 1, 127))
        out.append(Note(n.pitch, round(start, 5), round(end, 5), velocity))
    return tuple(sorted(out, key=lambda n: (n.start, n.pitch)))

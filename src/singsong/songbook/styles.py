"""The songbook's styles: harmony, grooves and instrumentation, as data.

A bar is a grid of sixteenth-note steps: 16 in 4/4, 12 in 3/4 and 12 in 6/8 (two dotted-quarter
beats of six steps). Rhythms are strings over that grid:
``X`` accent, ``x`` normal hit, ``o`` ghost note, ``.`` nothing. A progression is a string of Roman
numerals, one per bar; ``ii7-V7`` splits a bar between two chords.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# General MIDI drum notes.
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, TAMBOURINE, COWBELL, SHAKER = (
    45,
    47,
    50,
    49,
    51,
    54,
    56,
    70,
)

METER_STEPS = {"4/4": 16, "3/4": 12, "6/8": 12}
# Steps per beat: the tempo counts quarter notes in 4/4 and 3/4, dotted quarters in 6/8.
BEAT_STEPS = {"4/4": 4, "3/4": 4, "6/8": 6}


@dataclass(frozen=True)
class Layer:
    """One accompaniment instrument of a style: which programs it may use and how it plays."""

    programs: tuple[int, ...]  # General MIDI programs (0-based), one is drawn per song
    figure: str  # key of FIGURES in composer: block, strum, arpeggio, sustain, power, ...
    low: int = 52  # voicing range (MIDI)
    high: int = 76
    velocity: int = 80


@dataclass(frozen=True)
class Style:
    name: str
    tempo: tuple[int, int]  # beats per minute, inclusive range
    meters: tuple[str, ...]  # time signatures this style writes in
    minor_probability: float
    progressions: dict[str, tuple[str, ...]]  # "<mode>/<section>" -> choices
    drums: dict[str, tuple[dict[int, str], ...]]  # meter -> groove choices (drum note -> rhythm)
    kits: tuple[int, ...]  # GM drum kit programs on the percussion channel
    bass_programs: tuple[int, ...]
    bass_figure: str
    layers: tuple[Layer, ...]  # 1-3 are drawn per song, the first always
    melody_density: float  # probability of a sung onset on an eighth-note step
    swing: float = 0.0  # delay of off-beat sixteenths, as a fraction of a step
    fills: bool = True
    extra: dict[str, str] = field(default_factory=dict)


_MAJOR_COMMON = {
    "major/verse": ("I V vi IV", "I vi IV V", "vi IV I V", "I IV vi V"),
    "major/chorus": ("IV I V vi", "I V vi IV", "IV V I I", "vi IV I V"),
    "major/bridge": ("ii IV vi V", "IV V iii vi", "vi V IV V"),
    "minor/verse": ("i VI III VII", "i iv VI V", "i VII VI VII", "i iv i V"),
    "minor/chorus": ("VI VII i i", "VI III VII i", "iv VI V i", "i VI iv V"),
    "minor/bridge": ("iv v VI VII", "VI VII iv V", "III VII iv V"),
}

_ROCK_BEATS: dict[str, tuple[dict[int, str], ...]] = {
    "4/4": (
        {KICK: "X.....x.x.......", SNARE: "....X.......X...", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
        {KICK: "X.......X.x.....", SNARE: "....X.......X...", RIDE: "x.x.x.x.x.x.x.x."},
    )
}

STYLES: dict[str, Style] = {
    "pop": Style(
        name="pop",
        tempo=(90, 128),
        meters=("4/4",),
        minor_probability=0.3,
        progressions=_MAJOR_COMMON,
        drums={
            "4/4": (
                {
                    KICK: "X.......x.x.....",
                    SNARE: "....X.......X...",
                    CLOSED_HAT: "x.x.x.x.x.x.x.x.",
                },
                {
                    KICK: "X..x....X.......",
                    CLAP: "....X.......X...",
                    CLOSED_HAT: "xxxxxxxxxxxxxxxx",
                },
            )
        },
        kits=(0, 8, 16),
        bass_programs=(33, 34, 38),
        bass_figure="eighths",
        layers=(
            Layer((0, 1, 4), "block", 55, 76, 78),
            Layer((88, 89, 90), "sustain", 55, 79, 60),
            Layer((24, 25), "strum", 52, 71, 70),
        ),
        melody_density=0.55,
    ),
    "rock": Style(
        name="rock",
        tempo=(100, 160),
        meters=("4/4",),
        minor_probability=0.4,
        progressions={
            "major/verse": ("I5 bVII5 IV5 I5", "I5 IV5 V5 IV5", "I5 V5 vi IV5"),
            "major/chorus": ("IV5 V5 I5 I5", "I5 V5 IV5 IV5", "vi IV5 I5 V5"),
            "major/bridge": ("vi IV5 V5 V5", "IV5 IV5 bVII5 V5"),
            "minor/verse": ("i5 bVI5 bVII5 i5", "i5 bVII5 bVI5 bVII5", "i5 iv5 i5 V5"),
            "minor/chorus": ("bVI5 bVII5 i5 i5", "i5 bVI5 bIII5 bVII5"),
            "minor/bridge": ("iv5 bVI5 V5 V5", "bVI5 bVII5 V5 V5"),
        },
        drums=_ROCK_BEATS,
        kits=(16, 0, 8),
        bass_programs=(34, 33, 35),
        bass_figure="eighths",
        layers=(
            Layer((29, 30), "power", 40, 64, 92),
            Layer((27, 26), "arpeggio", 55, 76, 70),
            Layer((16, 18, 17), "sustain", 55, 76, 62),
        ),
        melody_density=0.5,
    ),
    "ballad": Style(
        name="ballad",
        tempo=(60, 84),
        meters=("4/4", "6/8"),
        minor_probability=0.35,
        progressions={
            "major/verse": ("Imaj7 iii7 IV V", "I V vi IV", "I iii IV ii7-V"),
            "major/chorus": ("IV V iii vi", "IV I V vi", "ii7 V7 I IV"),
            "major/bridge": ("vi iii IV V", "IV V vi V"),
            "minor/verse": ("i VI III VII", "i iv7 VII III", "i v VI iv"),
            "minor/chorus": ("VI VII i i", "iv VII III VI"),
            "minor/bridge": ("VI III iv V", "iv i VI V"),
        },
        drums={
            "4/4": (
                {
                    KICK: "x.........x.....",
                    SIDE_STICK: "....x.......x...",
                    CLOSED_HAT: "x...x...x...x...",
                },
            ),
            "6/8": (
                {KICK: "x...........", SIDE_STICK: "......x.....", CLOSED_HAT: "x.x.x.x.x.x."},
            ),
        },
        kits=(40, 0, 8),
        bass_programs=(32, 33),
        bass_figure="root",
        layers=(
            Layer((0, 1), "arpeggio", 48, 76, 70),
            Layer((48, 49, 89), "sustain", 55, 79, 58),
            Layer((46,), "arpeggio", 55, 84, 60),
        ),
        melody_density=0.45,
        fills=False,
    ),
    "folk": Style(
        name="folk",
        tempo=(80, 124),
        meters=("4/4", "3/4", "6/8"),
        minor_probability=0.35,
        progressions={
            "major/verse": ("I IV I V", "I V IV I", "I vi IV V"),
            "major/chorus": ("IV I V I", "I IV V V", "vi IV I V"),
            "major/bridge": ("IV IV I I", "vi vi IV V"),
            "minor/verse": ("i VII i VII", "i iv i V", "i III VII i"),
            "minor/chorus": ("III VII i i", "VI VII i V"),
            "minor/bridge": ("iv iv i i", "VI VI V V"),
        },
        drums={
            "4/4": (
                {
                    KICK: "x.......x.......",
                    SNARE: "....x.......x...",
                    TAMBOURINE: "x.x.x.x.x.x.x.x.",
                },
            ),
            "3/4": ({KICK: "x...........", SNARE: "....x...x...", TAMBOURINE: "x.x.x.x.x.x."},),
            "6/8": ({KICK: "x.....x.....", SNARE: "......x.....", TAMBOURINE: "x.x.x.x.x.x."},),
        },
        kits=(8, 0),
        bass_programs=(32, 33),
        bass_figure="root_fifth",
        layers=(
            Layer((25, 24), "strum", 52, 71, 72),
            Layer((21, 22, 23), "sustain", 55, 76, 62),
            Layer((105, 24), "arpeggio", 55, 79, 64),
        ),
        melody_density=0.5,
    ),
    "funk": Style(
        name="funk",
        tempo=(92, 118),
        meters=("4/4",),
        minor_probability=0.5,
        progressions={
            "major/verse": ("I7 I7 IV7 I7", "I9 IV9 I9 IV9", "I7 IV7 I7 V7"),
            "major/chorus": ("IV7 IV7 I7 I7", "ii7 V7 I7 I7", "IV9 V9 I7 I7"),
            "major/bridge": ("ii7 iii7 IV7 V7", "IV7 IV7 V7 V7"),
            "minor/verse": ("i7 i7 iv7 i7", "i7 IV7 i7 IV7", "i9 i9 iv7 V7"),
            "minor/chorus": ("iv7 iv7 i7 i7", "bVI7 V7 i7 i7"),
            "minor/bridge": ("bVII7 bVI7 V7 V7", "iv7 v7 bVI7 V7"),
        },
        drums={
            "4/4": (
                {
                    KICK: "X..x..x...X..x..",
                    SNARE: "....X..o.o..X..o",
                    CLOSED_HAT: "XxxxXxxxXxxxXxxx",
                },
                {
                    KICK: "X.x...x.x.X.....",
                    SNARE: "....X.o.....X.o.",
                    CLOSED_HAT: "x.xxx.xxx.xxx.xx",
                    OPEN_HAT: ".....x..........",
                },
            )
        },
        kits=(0, 8),
        bass_programs=(36, 37, 33),
        bass_figure="funk",
        layers=(
            Layer((28, 27, 7), "stabs", 55, 74, 80),
            Layer((4, 5), "block", 55, 76, 68),
            Layer((61, 62), "stabs", 58, 79, 82),
        ),
        melody_density=0.6,
        swing=0.15,
    ),
    "bossa": Style(
        name="bossa",
        tempo=(120, 150),
        meters=("4/4",),
        minor_probability=0.4,
        progressions={
            "major/verse": ("Imaj7 ii7 V7 Imaj7", "Imaj7 vi7 ii7 V7", "Imaj7 VI7 ii7 V7"),
            "major/chorus": ("IVmaj7 iv7 iii7 VI7", "ii7 V7 Imaj7 Imaj7", "iii7 VI7 ii7 V7"),
            "major/bridge": ("IVmaj7 IVmaj7 iii7 VI7", "ii7 V7 iii7 VI7"),
            "minor/verse": ("i7 iv7 V7 i7", "iio7 V7 i7 i7", "i7 i7 iv7 V7"),
            "minor/chorus": ("iv7 bVII7 bIIImaj7 bVImaj7", "iio7 V7 i7 i7"),
            "minor/bridge": ("bVImaj7 iio7 V7 V7", "iv7 iv7 V7 V7"),
        },
        drums={
            "4/4": (
                {
                    KICK: "x..xx..xx..xx..x",
                    SIDE_STICK: "x..x..x...x..x..",
                    SHAKER: "xoxoxoxoxoxoxoxo",
                },
            )
        },
        kits=(40, 32),
        bass_programs=(32, 33),
        bass_figure="bossa",
        layers=(
            Layer((24,), "bossa", 52, 72, 72),
            Layer((4, 11), "sustain", 55, 76, 56),
            Layer((73, 49), "sustain", 60, 81, 52),
        ),
        melody_density=0.5,
        fills=False,
    ),
    "waltz": Style(
        name="waltz",
        tempo=(90, 170),
        meters=("3/4",),
        minor_probability=0.35,
        progressions={
            "major/verse": ("I IV V I", "I I V V", "I vi ii V"),
            "major/chorus": ("IV I V I", "I V7 V7 I", "IV V iii vi"),
            "major/bridge": ("vi ii V V", "IV IV V V"),
            "minor/verse": ("i iv V i", "i i V V", "i VI iv V"),
            "minor/chorus": ("iv i V i", "VI iv V i"),
            "minor/bridge": ("iv iv V V", "VI VI V V"),
        },
        drums={"3/4": ({KICK: "x...........", SNARE: "....x...x...", RIDE: "x...x...x..."},)},
        kits=(40, 0),
        bass_programs=(58, 32, 43),
        bass_figure="waltz",
        layers=(
            Layer((21, 0, 8), "waltz", 55, 76, 70),
            Layer((48, 49), "sustain", 55, 79, 58),
            Layer((46, 10), "arpeggio", 60, 84, 60),
        ),
        melody_density=0.5,
        fills=False,
    ),
    "electronic": Style(
        name="electronic",
        tempo=(116, 132),
        meters=("4/4",),
        minor_probability=0.65,
        progressions={
            "major/verse": ("vi IV I V", "I V vi IV", "IV vi I V"),
            "major/chorus": ("vi IV I V", "IV V vi vi"),
            "major/bridge": ("IV IV V V", "ii ii V V"),
            "minor/verse": ("i VI III VII", "i i VI VII", "i VII VI VII"),
            "minor/chorus": ("VI VII i i", "i VI III VII"),
            "minor/bridge": ("iv iv VI VII", "VI VI VII VII"),
        },
        drums={
            "4/4": (
                {
                    KICK: "X...X...X...X...",
                    CLAP: "....x.......x...",
                    OPEN_HAT: "..x...x...x...x.",
                    CLOSED_HAT: "x.x.x.x.x.x.x.x.",
                },
                {
                    KICK: "X...X...X...X..x",
                    SNARE: "....X.......X...",
                    CLOSED_HAT: "xxxxxxxxxxxxxxxx",
                },
            )
        },
        kits=(24, 25),
        bass_programs=(38, 39, 87),
        bass_figure="offbeat",
        layers=(
            Layer((81, 80, 84), "arp16", 57, 81, 64),
            Layer((90, 95, 88), "sustain", 55, 79, 56),
            Layer((62, 63), "stabs", 57, 76, 70),
        ),
        melody_density=0.5,
    ),
    "hiphop": Style(
        name="hiphop",
        tempo=(80, 100),
        meters=("4/4",),
        minor_probability=0.7,
        progressions={
            "major/verse": ("Imaj7 vi7 ii7 V7", "IVmaj7 iii7 vi7 vi7"),
            "major/chorus": ("IVmaj7 V7 iii7 vi7", "ii7 V7 Imaj7 vi7"),
            "major/bridge": ("ii7 ii7 V7 V7",),
            "minor/verse": ("i7 iv7 i7 v7", "i7 bVI7 i7 bVII7", "i9 iv7 bVImaj7 V7"),
            "minor/chorus": ("bVImaj7 bVII7 i7 i7", "iv7 v7 i7 i7"),
            "minor/bridge": ("bVImaj7 bVImaj7 V7 V7",),
        },
        drums={
            "4/4": (
                {
                    KICK: "X......x..x.....",
                    SNARE: "....X.......X...",
                    CLOSED_HAT: "x.x.x.x.x.x.x.x.",
                },
                {
                    KICK: "X.x.......X..x..",
                    CLAP: "....X.......X...",
                    CLOSED_HAT: "x.xxx.x.x.xxx.x.",
                },
            )
        },
        kits=(25, 0, 24),
        bass_programs=(38, 39, 33),
        bass_figure="sub",
        layers=(
            Layer((4, 5), "block", 55, 76, 66),
            Layer((48, 49, 11), "sustain", 55, 79, 54),
            Layer((45, 11), "arpeggio", 60, 81, 62),
        ),
        melody_density=0.6,
        swing=0.2,
    ),
}

STYLE_NAMES = tuple(STYLES)


def get_style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(f"unknown style {name!r}; choose from {', '.join(STYLE_NAMES)}") from None

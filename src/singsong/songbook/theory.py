"""Music theory the composer needs: keys, scales, Roman-numeral chords and voicings.

Pitches are MIDI note numbers; pitch classes are integers 0-11 with C = 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")

# Semitone offsets of the seven scale degrees. Minor is natural minor; the composer raises the
# seventh only inside dominant chords (harmonic minor), which is how minor-key pop and folk behave.
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}

# Chord qualities as semitone offsets from the root.
QUALITIES = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10),
    "sus4": (0, 5, 7),
    "sus2": (0, 2, 7),
    "add9": (0, 4, 7, 14),
    "min9": (0, 3, 7, 10, 14),
    "maj9": (0, 4, 7, 11, 14),
    "9": (0, 4, 7, 10, 14),
    "6": (0, 4, 7, 9),
    "min6": (0, 3, 7, 9),
    "5": (0, 7),  # power chord
}
_SUFFIX = {
    "maj": "",
    "min": "m",
    "dim": "dim",
    "aug": "aug",
    "7": "7",
    "maj7": "maj7",
    "min7": "m7",
    "m7b5": "m7b5",
    "sus4": "sus4",
    "sus2": "sus2",
    "add9": "add9",
    "min9": "m9",
    "maj9": "maj9",
    "9": "9",
    "6": "6",
    "min6": "m6",
    "5": "5",
}

_ROMAN = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}
_NUMERAL_RE = re.compile(r"^(?P<acc>[b#]?)(?P<num>[ivIV]+)(?P<suffix>.*)$")


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0-11
    mode: str  # "major" | "minor"

    def __post_init__(self) -> None:
        if not 0 <= self.tonic < 12 or self.mode not in MODES:
            raise ValueError(f"invalid key: tonic={self.tonic}, mode={self.mode!r}")

    @property
    def name(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> tuple[int, ...]:
        """The seven pitch classes of the key, starting at the tonic."""
        return tuple((self.tonic + s) % 12 for s in SCALES[self.mode])

    def degree_pitch_class(self, degree: int) -> int:
        """Pitch class of a 0-based scale degree (wraps around the octave)."""
        return self.scale[degree % 7]


ALL_KEYS = tuple(Key(t, m) for m in MODES for t in range(12))


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class
    quality: str  # key of QUALITIES
    numeral: str  # the Roman numeral it was written as, e.g. "V7"

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple(sorted({(self.root + i) % 12 for i in QUALITIES[self.quality]}))

    @property
    def symbol(self) -> str:
        return NOTE_NAMES[self.root] + _SUFFIX[self.quality]

    @property
    def triad(self) -> tuple[int, ...]:
        """Root, third (or suspension) and fifth as pitch classes: the tones a melody leans on."""
        return tuple((self.root + i) % 12 for i in QUALITIES[self.quality][:3])


def parse_numeral(numeral: str, key: Key) -> Chord:
    """A Roman numeral in a key -> Chord.

    Upper case = major triad, lower case = minor; a leading ``b``/``#`` alters the root.
    Suffixes: ``7``, ``maj7``, ``9``, ``maj9``, ``6``, ``sus2``, ``sus4``, ``add9``, ``5``, ``o``
    (diminished) and ``o7`` (half-diminished).
    In a minor key, ``V`` and ``V7`` take the raised leading tone, as harmonic minor does.
    """
    m = _NUMERAL_RE.match(numeral)
    if m is None or m["num"].lower() not in _ROMAN:
        raise ValueError(f"not a Roman numeral chord: {numeral!r}")
    num, suffix = m["num"], m["suffix"]
    # Roots are measured from the major scale, so "bVII" means the same in every mode.
    root = (key.tonic + SCALES["major"][_ROMAN[num.lower()]]) % 12
    if m["acc"] == "b":
        root = (root - 1) % 12
    elif m["acc"] == "#":
        root = (root + 1) % 12
    elif key.mode == "minor" and num.lower() in ("iii", "vi", "vii") and num.isupper():
        root = (root - 1) % 12  # III, VI, VII of minor sit on the lowered degrees
    upper = num.isupper()
    quality = {
        "": "maj" if upper else "min",
        "7": "7" if upper else "min7",
        "maj7": "maj7",
        "9": "9" if upper else "min9",
        "maj9": "maj9",
        "6": "6" if upper else "min6",
        "sus2": "sus2",
        "sus4": "sus4",
        "add9": "add9",
        "5": "5",
        "o": "dim",
        "o7": "m7b5",
    }.get(suffix)
    if quality is None:
        raise ValueError(f"unknown chord suffix {suffix!r} in {numeral!r}")
    return Chord(root=root, quality=quality, numeral=numeral)


def voice_chord(
    chord: Chord, *, low: int, high: int, previous: tuple[int, ...] = ()
) -> tuple[int, ...]:
    """Close voicing of ``chord`` inside [low, high], chosen for smooth voice leading.

    Every inversion whose notes fit the range is a candidate; the one whose mean pitch is nearest
    to the previous voicing (or to the middle of the range) wins, so chords move by small steps.
    """
    intervals = sorted({i % 12 for i in QUALITIES[chord.quality]})
    target = sum(previous) / len(previous) if previous else (low + high) / 2
    best: tuple[int, ...] = ()
    best_cost = float("inf")
    for inversion in range(len(intervals)):
        rotated = intervals[inversion:] + [i + 12 for i in intervals[:inversion]]
        for base in range(low - 12, high + 1):
            if (base - chord.root) % 12:
                continue
            notes = tuple(base + i for i in rotated)
            if notes[0] < low or notes[-1] > high:
                continue
            cost = abs(sum(notes) / len(notes) - target)
            if cost < best_cost:
                best, best_cost = notes, cost
    if not best:
        raise ValueError(f"range [{low}, {high}] too narrow for {chord.symbol}")
    return best


def nearest_pitch(pitch_classes: tuple[int, ...], target: float, *, low: int, high: int) -> int:
    """The MIDI pitch in [low, high] with one of ``pitch_classes`` nearest to ``target``."""
    candidates = [p for p in range(low, high + 1) if p % 12 in pitch_classes]
    if not candidates:
        raise ValueError(f"no pitch of {pitch_classes} in [{low}, {high}]")
    return min(candidates, key=lambda p: (abs(p - target), p))

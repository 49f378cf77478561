import itertools

import numpy as np
import pytest

from singsong.songbook.composer import compose
from singsong.songbook.styles import STYLE_NAMES, STYLES
from singsong.songbook.theory import Key, parse_numeral
from singsong.songbook.voice import LEXICON, VOICE_TYPES


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_every_style_composes_a_full_song(style):
    song = compose(7, styles=(style,))
    assert song.style == style
    assert song.meter in STYLES[style].meters
    assert 60 <= song.tempo <= 180
    names = [s.name for s in song.sections]
    assert names[0] == "intro" and names[-1] == "outro" and "verse" in names and "chorus" in names
    assert {p.stem for p in song.parts} >= {"drums", "bass", "other"}
    # The song ends on its tonic: the outro's final chord is a cadence home.
    tonic = parse_numeral("I" if song.key.mode == "major" else "i", song.key)
    assert song.chords[-1].symbol == tonic.symbol


def test_compose_is_deterministic():
    assert compose(11) == compose(11)
    assert compose(11) != compose(12)


@pytest.mark.parametrize("seed", range(6))
def test_melody_is_singable_and_fits_the_harmony(seed):
    song = compose(seed)
    voice = VOICE_TYPES[song.voice]
    notes = song.vocal
    assert len(notes) > 20
    for a, b in itertools.pairwise(notes):
        assert a.end <= b.start + 1e-6, "vocal notes overlap"
    assert all(voice.low <= n.pitch <= voice.high for n in notes)
    assert all(n.syllable in LEXICON for n in notes)
    # Chord tones on most onsets that fall on a chord change; mostly small intervals.
    key = song.key
    in_chord = 0
    for n in notes:
        chord = next(c for c in song.chords if c.start <= n.start + 1e-6 < c.end)
        pcs = parse_numeral(chord.numeral, key).pitch_classes
        in_chord += int(n.pitch) % 12 in pcs
        assert int(n.pitch) % 12 in key.scale or int(n.pitch) % 12 in pcs, "out of key"
    assert in_chord / len(notes) > 0.5
    intervals = np.abs(np.diff([n.pitch for n in notes]))
    assert np.median(intervals) <= 3
    # Phrases breathe: there are rests of at least a beat between some notes.
    beat = 60 / song.tempo
    gaps = [b.start - a.end for a, b in itertools.pairwise(notes)]
    assert sum(g >= beat * 0.9 for g in gaps) >= 4


def test_corpus_variety():
    songs = [compose(seed) for seed in range(120)]
    assert {s.style for s in songs} == set(STYLE_NAMES)
    assert len({(s.key.tonic, s.key.mode) for s in songs}) >= 20
    assert {s.meter for s in songs} == {"4/4", "3/4", "6/8"}
    assert {s.voice for s in songs} == {"high", "low"}
    programs = {p.program for s in songs for p in s.parts if not p.is_drum}
    assert len(programs) >= 24


def test_short_songs_are_short():
    assert compose(3, short=True).duration < 45


def test_unknown_style_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown style 'polka'"):
        compose(0, styles=("polka",))


def test_key_validation():
    with pytest.raises(ValueError):
        Key(12, "major")

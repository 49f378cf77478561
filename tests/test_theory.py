import pytest

from singsong.songbook.theory import ALL_KEYS, Key, nearest_pitch, parse_numeral, voice_chord


def test_all_24_keys_with_seven_note_scales():
    assert len({(k.tonic, k.mode) for k in ALL_KEYS}) == 24
    for key in ALL_KEYS:
        assert len(set(key.scale)) == 7 and key.scale[0] == key.tonic


@pytest.mark.parametrize(
    ("numeral", "key", "symbol"),
    [
        ("I", Key(0, "major"), "C"),
        ("vi", Key(0, "major"), "Am"),
        ("V7", Key(9, "minor"), "E7"),  # harmonic minor: raised leading tone
        ("VI", Key(9, "minor"), "F"),
        ("bVII5", Key(4, "major"), "D5"),
        ("iio7", Key(2, "minor"), "Em7b5"),
        ("IVmaj7", Key(7, "major"), "Cmaj7"),
    ],
)
def test_parse_numeral(numeral, key, symbol):
    assert parse_numeral(numeral, key).symbol == symbol


def test_parse_numeral_rejects_garbage():
    with pytest.raises(ValueError, match="Roman numeral"):
        parse_numeral("X7", Key(0, "major"))
    with pytest.raises(ValueError, match="suffix"):
        parse_numeral("Iwhat", Key(0, "major"))


def test_voicing_stays_in_range_and_leads_smoothly():
    key = Key(0, "major")
    previous: tuple[int, ...] = ()
    for numeral in ("I", "vi", "IV", "V7", "I"):
        chord = parse_numeral(numeral, key)
        voicing = voice_chord(chord, low=55, high=76, previous=previous)
        assert all(55 <= p <= 76 for p in voicing)
        assert {p % 12 for p in voicing} == set(chord.pitch_classes)
        if previous:  # smooth: the centre of the chord moves by less than a fourth
            assert abs(sum(voicing) / len(voicing) - sum(previous) / len(previous)) < 5
        previous = voicing


def test_nearest_pitch():
    assert nearest_pitch((0, 4, 7), 61.0, low=48, high=72) == 60
    with pytest.raises(ValueError):
        nearest_pitch((0,), 61.0, low=61, high=62)

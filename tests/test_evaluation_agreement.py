"""Key, tempo, beat, harmonic-fit and vocal-copy measures on synthetic music with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from singsong.errors import AudioError
from singsong.evaluation.agreement import (
    agreement,
    beat_alignment,
    harmonic_fit,
    level_checks,
    vocal_copy,
)
from singsong.evaluation.analysis import (
    Key,
    analyze,
    f0_bins,
    key_from_profile,
    mirex_key_score,
    tempo_match,
)
from tests.test_evaluation_synth import C_MAJOR_SCALE, SR, band, chords, clicks, melody

# A C-major triad held low (C2-G3), and a melody an octave or two above on its notes (so the
# band sounds the sung pitch classes, not the sung pitches), and one a tritone away (F#-A#-C#).
C_MAJOR_CHORDS = [[36, 48, 52, 55]]
IN_KEY = [72, 76, 79, 76, 84, 79, 76, 72]
OUT_OF_KEY = [n + 6 for n in IN_KEY]


@pytest.fixture(scope="module")
def c_chord() -> np.ndarray:
    return chords(C_MAJOR_CHORDS, 4.0)


def test_key_of_a_c_major_scale_from_the_voice_and_from_chords() -> None:
    sung = analyze(melody(C_MAJOR_SCALE + C_MAJOR_SCALE[::-1]), voice=True)
    assert sung.key == Key(0, "major")
    assert analyze(band(120, 4.0)).key == Key(0, "major")
    assert analyze(band(120, 4.0, transpose=2)).key == Key(2, "major")  # D major


def test_key_profiles_and_scores() -> None:
    profile = np.zeros(12)
    profile[[9, 0, 4]] = [3, 1, 1]  # A minor triad, A heaviest
    assert key_from_profile(profile) == Key(9, "minor")
    assert key_from_profile(np.zeros(12)).strength == 0.0
    c = Key.parse("C major")
    assert mirex_key_score(c, c) == 1.0
    assert mirex_key_score(Key.parse("G major"), c) == 0.5
    assert mirex_key_score(Key.parse("A minor"), c) == 0.3
    assert mirex_key_score(Key.parse("C minor"), c) == 0.2
    assert mirex_key_score(Key.parse("F# major"), c) == 0.0
    with pytest.raises(AudioError):
        Key.parse("H dorian")


def test_tempo_of_a_click_track_and_the_double_half_rule() -> None:
    f = analyze(clicks(120, 10.0))
    assert tempo_match(f.tempo, 120.0), f.tempo
    beats = np.diff(f.beats)
    assert np.median(beats) == pytest.approx(60 / f.tempo, rel=0.05)
    assert tempo_match(240.0, 120.0) and tempo_match(60.0, 120.0) and tempo_match(123.0, 120.0)
    assert not tempo_match(180.0, 120.0) and not tempo_match(130.0, 120.0)
    assert not tempo_match(0.0, 120.0)


def test_beat_alignment_is_one_when_locked_and_about_zero_at_random() -> None:
    beats = np.arange(0, 10, 0.5)
    assert beat_alignment(beats[2:-2], beats) == pytest.approx(1.0, abs=0.25)  # on the beats
    # on the beats and off-beats alike: locked to the half-beat
    halves = np.sort(np.concatenate([beats[2:-2], beats[2:-2] + 0.25]))
    assert beat_alignment(halves, beats) == pytest.approx(1.0, abs=0.2)
    rng = np.random.default_rng(0)
    assert abs(beat_alignment(rng.uniform(1, 9, 2000), beats)) < 0.05  # chance = 0
    assert np.isnan(beat_alignment(beats, beats[:1]))
    assert np.isnan(beat_alignment(beats[:2], beats))  # too few onsets


def test_vocal_onsets_lock_to_the_band_at_its_tempo_not_at_another() -> None:
    band_f = analyze(band(120, 4.0))
    on = analyze(melody(IN_KEY + IN_KEY), voice=True)  # one note per beat at 120 BPM
    off = analyze(melody(IN_KEY + IN_KEY, beat_s=0.37), voice=True)  # 162 BPM
    assert beat_alignment(on.onsets, band_f.beats) > 0.6
    assert beat_alignment(off.onsets, band_f.beats) < beat_alignment(on.onsets, band_f.beats) - 0.4


def test_harmonic_fit_higher_in_key_than_out_of_key(c_chord: np.ndarray) -> None:
    inst = analyze(c_chord)
    fit_in = harmonic_fit(analyze(melody(IN_KEY), voice=True), inst)
    fit_out = harmonic_fit(analyze(melody(OUT_OF_KEY), voice=True), inst)
    assert fit_in > 1.5 and fit_out < 1.0  # 1.0 = chance


def test_vocal_copy_flags_an_instrumental_that_echoes_the_voice(c_chord: np.ndarray) -> None:
    voice = melody(IN_KEY)
    v = analyze(voice, voice=True)
    clean = vocal_copy(v, analyze(c_chord))
    leaky = vocal_copy(v, analyze(c_chord + 0.5 * voice))
    itself = vocal_copy(v, analyze(voice))
    assert abs(clean) < 0.2 and leaky > clean + 0.5 and itself > leaky


def test_agreement_collects_every_metric(c_chord: np.ndarray) -> None:
    v = analyze(melody(IN_KEY), voice=True)
    inst = analyze(c_chord)
    m = agreement(v, inst, inst)
    assert m["key_vs_ref"] == 1.0 and m["tempo_vs_ref"] in (0.0, 1.0)
    assert set(m) == {"key_vs_ref", "key_vs_vocals", "tempo_vs_ref", "beat_alignment",
                      "harmonic_fit", "vocal_copy"}  # fmt: skip
    assert np.isnan(agreement(v, inst)["key_vs_ref"])


def test_level_checks_catch_silence_and_clipping() -> None:
    x = np.concatenate([np.zeros(SR, np.float32), np.ones(SR, np.float32)])
    checks = level_checks(x)
    assert checks["silence"] == pytest.approx(0.5) and checks["clipping"] == pytest.approx(0.5)


def test_analysis_errors_and_f0_bins() -> None:
    with pytest.raises(AudioError, match="at least"):
        analyze(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="NaN"):
        analyze(np.full(SR, np.nan, np.float32))
    bins = f0_bins(np.array([32.70, 261.63, np.nan, 10.0]))
    assert bins.tolist() == [0, 36, -1, -1]


def test_missing_dependency_names_the_extra() -> None:
    from singsong.errors import SingsongError
    from singsong.evaluation.analysis import require

    with pytest.raises(SingsongError, match=r"singsong\[eval\]"):
        require("no_such_module_for_singsong")

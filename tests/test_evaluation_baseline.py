"""The retrieval baseline: index, retrieval by key and tempo, shift/stretch, length; its CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from singsong.audio import load_audio
from singsong.errors import AudioError, SingsongError
from singsong.evaluation.analysis import Key, analyze
from singsong.evaluation.baseline import (
    INDEX_NAME,
    RetrievalBaseline,
    build_index,
    load_index,
)
from tests.test_evaluation_synth import SR, band, eval_parser, melody

# D major at 100 BPM (0.6 s a note): D F# A F# D' A F# D E G B G
D_MELODY = [74, 78, 81, 78, 86, 81, 78, 74, 76, 79, 83, 79]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    """Two instrumentals at 100 BPM: one in C major, one in F major."""
    root = tmp_path_factory.mktemp("library")
    sf.write(root / "c_major.wav", band(100, 9.6), SR)
    sf.write(root / "f_major.wav", band(100, 9.6, transpose=5), SR)
    return root


def test_index_round_trip(library, tmp_path) -> None:
    entries = build_index(library, tmp_path / "index.json", progress=False)
    assert [e.key for e in entries] == [Key(0, "major"), Key(5, "major")]
    assert all(abs(e.tempo - 100) < 5 or abs(e.tempo - 200) < 10 for e in entries)
    assert load_index(tmp_path / "index.json") == entries
    (tmp_path / "old.json").write_text('{"version": 0, "entries": []}')
    with pytest.raises(SingsongError, match="rebuild"):
        load_index(tmp_path / "old.json")


def test_baseline_shifts_the_nearest_key_to_the_voice_at_the_input_length(library) -> None:
    vocals = melody(D_MELODY, beat_s=0.6)[: int(7.3 * SR)]  # an odd length on purpose
    baseline = RetrievalBaseline(build_index(library, library / INDEX_NAME, progress=False))
    inst, got = baseline.accompany(vocals)
    assert got.vocal_key == Key(2, "major")
    assert got.entry.key == Key(0, "major") and got.shift == 2  # C -> D beats F -> D (-3)
    assert inst.shape == vocals.shape and inst.dtype == np.float32 and np.isfinite(inst).all()
    assert analyze(inst).key == Key(2, "major")
    with pytest.raises(SingsongError, match="excluding"):
        RetrievalBaseline([got.entry]).retrieve(analyze(vocals, voice=True),
                                                exclude_track=got.entry.track)  # fmt: skip


def test_baseline_refuses_silence_and_an_empty_library(library) -> None:
    baseline = RetrievalBaseline(build_index(library, library / INDEX_NAME, progress=False))
    with pytest.raises(AudioError, match="silent"):
        baseline.accompany(np.zeros(2 * SR, np.float32))
    with pytest.raises(SingsongError, match="empty"):
        RetrievalBaseline([])


def test_baseline_cli_writes_instrumental_and_mix(library, tmp_path) -> None:
    vocals = tmp_path / "voice.wav"
    sf.write(vocals, melody(D_MELODY, beat_s=0.6), SR)
    args = eval_parser().parse_args(
        ["baseline", str(vocals), "-o", str(tmp_path / "out"), "--library", str(library),
         "--index", str(tmp_path / "idx.json")]
    )  # fmt: skip
    assert args.run(args) == 0
    n = load_audio(vocals).size
    for name in ("instrumental", "mix"):
        assert load_audio(tmp_path / "out" / f"{name}.wav").size == n
    assert (tmp_path / "idx.json").is_file()


def test_baseline_cli_errors(library, tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    args = eval_parser().parse_args(["baseline", str(text), "--library", str(library)])
    with pytest.raises(AudioError, match="text file"):
        args.run(args)
    vocals = tmp_path / "voice.wav"
    sf.write(vocals, melody(D_MELODY), SR)
    args = eval_parser().parse_args(["baseline", str(vocals), "--library", str(tmp_path / "nope")])
    with pytest.raises(SingsongError, match="library not found"):
        args.run(args)

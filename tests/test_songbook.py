"""End-to-end tests of the songbook: render short songs into tmp_path and check the audio."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from singsong.cli import main
from singsong.errors import SingsongError
from singsong.songbook.corpus import SongbookConfig, build_songbook, plan
from singsong.songbook.voice import SungNote, pitch_error_cents

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (Debian)")
STEMS = ("vocals", "drums", "bass", "other")


def _load(song_dir, name):
    audio, sr = sf.read(song_dir / f"{name}.flac", dtype="float32")
    assert sr == 16000 and audio.ndim == 1
    return audio


@pytest.fixture(scope="module")
def rock_corpus(tmp_path_factory):
    """Two short 4/4 songs (about 20-30 s each), rendered once for the tests below."""
    out = tmp_path_factory.mktemp("songbook")
    config = SongbookConfig(out=out, hours=30 / 3600, seed=3, styles=("rock", "pop"), short=True)
    summary = build_songbook(config, progress=False)
    assert summary["failed"] == []
    return out, summary


def test_short_songs_render_in_seconds(rock_corpus):
    out, summary = rock_corpus
    assert summary["rendered"] >= 1
    assert summary["wall_seconds"] < 30
    assert len((out / "manifest.jsonl").read_text().splitlines()) == summary["songs"]
    assert not (out / ".partial").exists()


def test_stems_sum_to_mixture(rock_corpus):
    out, _ = rock_corpus
    for song_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        stems = [_load(song_dir, s) for s in STEMS]
        mixture = _load(song_dir, "mixture")
        meta = json.loads((song_dir / "meta.json").read_text())
        assert all(len(s) == len(mixture) for s in stems)
        assert len(mixture) == round(meta["duration"] * 16000)
        assert np.abs(np.sum(stems, axis=0) - mixture).max() < 1e-4  # 24-bit FLAC rounding
        assert np.abs(mixture).max() <= 0.99 + 1e-4
        for s in stems:  # every stem really sounds
            assert np.sqrt(np.mean(s**2)) > 1e-3


def test_vocal_pitch_follows_the_written_notes(rock_corpus):
    out, _ = rock_corpus
    song_dir = sorted(p for p in out.iterdir() if p.is_dir())[0]
    meta = json.loads((song_dir / "meta.json").read_text())
    notes = [SungNote(**n) for n in meta["vocal_notes"]]
    # Dry vocals would be cleaner, but the stem (with the room) is what users get.
    error, coverage = pitch_error_cents(_load(song_dir, "vocals"), 16000, notes)
    assert error < 50
    assert coverage > 0.6


def test_drum_tempo_matches_meta(rock_corpus):
    librosa = pytest.importorskip("librosa")
    out, _ = rock_corpus
    for song_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        meta = json.loads((song_dir / "meta.json").read_text())
        drums = _load(song_dir, "drums")
        onset = librosa.onset.onset_strength(y=drums, sr=16000, hop_length=256)
        tempo = float(
            np.atleast_1d(
                librosa.feature.tempo(
                    onset_envelope=onset, sr=16000, hop_length=256, start_bpm=meta["tempo"]
                )
            )[0]
        )
        ratios = [tempo / (meta["tempo"] * k) for k in (0.5, 1, 2)]
        assert min(abs(r - 1) for r in ratios) < 0.04, (tempo, meta["tempo"])


def test_same_seed_same_audio(rock_corpus, tmp_path):
    out, _ = rock_corpus
    first = sorted(p for p in out.iterdir() if p.is_dir())[0]
    config = SongbookConfig(
        out=tmp_path, hours=1 / 3600, seed=3, styles=("rock", "pop"), short=True
    )
    build_songbook(config, progress=False)
    again = tmp_path / first.name
    for name in (*STEMS, "mixture"):
        assert np.array_equal(_load(first, name), _load(again, name)), name
    meta_a = json.loads((first / "meta.json").read_text())
    meta_b = json.loads((again / "meta.json").read_text())
    assert meta_a == meta_b


def test_resume_skips_finished_songs_and_cleans_partials(tmp_path):
    config = SongbookConfig(out=tmp_path, hours=1 / 3600, seed=5, styles=("folk",), short=True)
    first = build_songbook(config, progress=False)
    assert first["rendered"] == 1
    song_id = plan(config)[0].song_id
    stamp = (tmp_path / song_id / "mixture.flac").stat().st_mtime_ns
    # An interrupted render of a second song left its partial folder behind.
    (tmp_path / ".partial" / "s5-00001").mkdir(parents=True)
    (tmp_path / ".partial" / "s5-00001" / "vocals.flac").write_bytes(b"half")
    bigger = SongbookConfig(out=tmp_path, hours=40 / 3600, seed=5, styles=("folk",), short=True)
    second = build_songbook(bigger, progress=False)
    assert second["skipped"] == 1 and second["rendered"] == second["songs"] - 1
    assert (tmp_path / song_id / "mixture.flac").stat().st_mtime_ns == stamp
    assert not (tmp_path / ".partial").exists()
    assert len((tmp_path / "manifest.jsonl").read_text().splitlines()) == second["songs"]


def test_parallel_jobs_give_the_same_songs(tmp_path):
    serial = SongbookConfig(
        out=tmp_path / "a", hours=40 / 3600, seed=9, styles=("waltz",), short=True
    )
    parallel = SongbookConfig(
        out=tmp_path / "b", hours=40 / 3600, seed=9, styles=("waltz",), short=True, jobs=2
    )
    assert build_songbook(serial, progress=False)["failed"] == []
    assert build_songbook(parallel, progress=False)["failed"] == []
    for song in plan(serial):
        assert np.array_equal(
            _load(tmp_path / "a" / song.song_id, "mixture"),
            _load(tmp_path / "b" / song.song_id, "mixture"),
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": 0}, "--hours must be positive"),
        ({"hours": 1, "jobs": 0}, "--jobs must be at least 1"),
        ({"hours": 1, "styles": ()}, "at least one style"),
        ({"hours": 1, "styles": ("polka",)}, "unknown style 'polka'"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, kwargs, message):
    with pytest.raises(SingsongError, match=message):
        SongbookConfig(out=tmp_path, **kwargs)


def test_cli_errors_exit_nonzero_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["songbook", "--hours", "-1", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["songbook", "--hours", "1", "--out", str(tmp_path), "--styles", "polka"])
    assert "invalid choice: 'polka'" in capsys.readouterr().err
    assert (
        main(
            [
                "songbook",
                "--hours",
                "1",
                "--out",
                str(tmp_path),
                "--soundfont",
                str(tmp_path / "missing.sf2"),
                "--jobs",
                "2",
            ]
        )
        == 2
    )
    assert "error: soundfont not found" in capsys.readouterr().err

"""The pairs stage: track discovery, vocal activity, clips, resume, failures, engines."""

import csv
import json
from functools import partial

import numpy as np
import pytest
import soundfile as sf

from singsong.data.engine import run_map
from singsong.data.pairs import (
    PairsConfig,
    build_pairs,
    clip_windows,
    discover_tracks,
    vocal_activity,
)
from singsong.errors import SingsongError
from tests.test_separate import make_song

SR = 16000


def test_vocal_activity_follows_the_voice_not_the_residue():
    rng = np.random.default_rng(0)
    band = 0.2 * rng.standard_normal(2 * SR).astype(np.float32)
    voice = np.zeros(2 * SR, np.float32)
    voice[SR:] = 0.2 * np.sin(2 * np.pi * 300 * np.arange(SR) / SR)
    residue = 0.01 * band  # -40 dB: what a separator leaves behind
    active = vocal_activity(voice + residue, voice + band)
    assert active.shape == (40,)
    assert not active[:20].any() and active[20:].all()


def test_clip_windows():
    cfg = PairsConfig(out="x", clip_seconds=10, hop_seconds=5, min_seconds=4)
    starts = [s for s, n in clip_windows(25 * SR, cfg) if n == 10 * SR]
    assert starts == [0, 5 * SR, 10 * SR, 15 * SR]  # the last clip ends exactly at 25 s
    assert clip_windows(6 * SR, cfg) == [(0, 6 * SR)]  # a short track is one shorter clip
    assert clip_windows(3 * SR, cfg) == []


def test_config_errors():
    with pytest.raises(SingsongError, match="min-activity"):
        PairsConfig(out="x", min_activity=1.5)
    with pytest.raises(SingsongError, match="positive"):
        PairsConfig(out="x", clip_seconds=0)


def test_discover_tracks(tmp_path):
    (tmp_path / "songs" / "album").mkdir(parents=True)
    sf.write(tmp_path / "songs" / "album" / "one.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "songs" / "two song.flac", np.zeros(SR, np.float32), SR)
    (tmp_path / "songs" / "notes.txt").write_text("not audio")
    tracks = discover_tracks(tmp_path / "songs")
    assert sorted(t.id for t in tracks) == ["album__one", "two_song"]
    for i in (0, 9):
        make_song(tmp_path / "book" / f"s0-{i:05d}", seconds=1.0)
    assert [t.id for t in discover_tracks(tmp_path / "book", split="valid")] == ["s0-00009"]
    assert [t.kind for t in discover_tracks(tmp_path / "book")] == ["songbook", "songbook"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SingsongError, match="no audio files"):
        discover_tracks(tmp_path / "empty")
    with pytest.raises(SingsongError, match="not found"):
        discover_tracks(tmp_path / "nope")


def test_discover_mir1k(tmp_path):
    root = tmp_path / "mir1k"
    (root / "audio").mkdir(parents=True)
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "singer", "sample_rate", "seconds"])
        w.writerow(["Ani_1_01", "Ani", 16000, 1.0])
        w.writerow(["amy_1_01", "amy", 16000, 1.0])
    tracks = discover_tracks(root, split="train")
    assert [(t.id, t.kind) for t in tracks] == [("amy_1_01", "mir1k")]


def test_pairs_with_the_oracle_resume_and_failures(tmp_path):
    book = tmp_path / "book"
    for i in range(3):
        make_song(book / f"s0-{i:05d}", seconds=9.0, seed=i)
    cfg = PairsConfig(
        out=str(tmp_path / "pairs"),
        separator="oracle",
        clip_seconds=4,
        hop_seconds=4,
        min_activity=0.5,
    )
    tracks = discover_tracks(book)
    summary = build_pairs(cfg, tracks, progress=False)
    assert summary["failed"] == [] and summary["processed"] == 3
    rows = [json.loads(line) for line in (tmp_path / "pairs" / "manifest.jsonl").open()]
    assert len(rows) == summary["clips"] == 6  # two 4 s clips per 9 s song
    row = rows[0]
    assert row["separator"] == "oracle" and row["duration"] == 4.0 and row["vocal_activity"] >= 0.5
    vocals, _ = sf.read(tmp_path / "pairs" / row["vocals"])
    assert len(vocals) == 9 * SR
    # Resume: everything is skipped; a plain file with the oracle fails without stopping the run.
    sf.write(tmp_path / "plain.wav", np.zeros(SR * 5, np.float32), SR)
    more = [*tracks, *discover_tracks(tmp_path / "plain.wav")]
    again = build_pairs(cfg, more, progress=False)
    assert again["skipped"] == 3 and len(again["failed"]) == 1
    assert "true stems" in again["failed"][0]
    assert again["clips"] == 6
    assert not list((tmp_path / "pairs" / "tracks").glob(".*partial"))


def test_pairs_skip_clips_without_singing(tmp_path):
    make_song(tmp_path / "book" / "s0-00000", seconds=8.0)
    cfg = PairsConfig(
        out=str(tmp_path / "pairs"),
        separator="oracle",
        clip_seconds=4,
        hop_seconds=4,
        min_activity=0.99,
    )  # the first 0.5 s of the song is silent
    summary = build_pairs(cfg, discover_tracks(tmp_path / "book"), progress=False)
    assert summary["clips"] == 1


def _square(item):
    return {"id": item["id"], "value": item["x"] ** 2}


def _make_square():
    return _square


def test_local_pool_engine_matches_serial():
    items = [{"id": str(i), "x": i} for i in range(6)]
    serial = sorted(r["value"] for r in run_map(_make_square, items, jobs=1))
    pooled = sorted(r["value"] for r in run_map(_make_square, items, jobs=2))
    assert serial == pooled == [i * i for i in range(6)]
    with pytest.raises(SingsongError, match="unknown engine"):
        run_map(_make_square, items, engine="spark")


def test_ray_engine_runs_the_pairs_stage(tmp_path):
    pytest.importorskip("ray")
    for i in range(2):
        make_song(tmp_path / "book" / f"s0-{i:05d}", seconds=5.0, seed=i)
    cfg = PairsConfig(
        out=str(tmp_path / "pairs"), separator="oracle", clip_seconds=4, hop_seconds=4
    )
    summary = build_pairs(
        cfg, discover_tracks(tmp_path / "book"), engine="ray", jobs=2, progress=False
    )
    assert summary["failed"] == [] and summary["clips"] == 2
    assert sorted(
        r["value"]
        for r in run_map(partial(_make_square), [{"id": "a", "x": 3}], engine="ray", jobs=2)
    ) == [9]

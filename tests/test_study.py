"""The listening study: Wilson intervals, win-rate tables, study folders, the API, the CLI."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from singsong.app import StudySettings, create_study_app
from singsong.app.study import (
    Answer,
    StudyDB,
    load_study,
    make_study,
    pair_results,
    system_results,
    wilson,
    write_results,
)
from singsong.app.study_server import LISTENER_COOKIE
from singsong.audio import loudness_lufs
from singsong.errors import SingsongError

SR = 16_000
SYSTEMS = ("retrieval", "singsong", "truth")


# --- Wilson interval ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wins", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (5, 10, 0.2366, 0.7634),
    ],
)
def test_wilson_matches_published_values(wins: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(wins, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_edge_cases() -> None:
    assert wilson(0, 0) == (0.0, 1.0)  # no data: anything is possible
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=5e-5)
    lo1, hi1 = wilson(66, 100)
    lo2, hi2 = wilson(660, 1000)
    assert lo1 < lo2 < 0.66 < hi2 < hi1  # more answers, narrower interval around the rate
    with pytest.raises(SingsongError):
        wilson(3, 2)


def test_win_rates_per_pair_and_per_system() -> None:
    def ans(a: str, b: str, choice: str) -> Answer:
        return Answer("l1", "x", a, b, choice, 0.0)

    answers = [
        ans("singsong", "retrieval", "a"),  # singsong wins (left)
        ans("retrieval", "singsong", "b"),  # singsong wins (right)
        ans("retrieval", "singsong", "a"),  # retrieval wins
        ans("truth", "singsong", "a"),  # truth wins
    ]
    pairs = {(r.system, r.other): r for r in pair_results(answers)}
    assert set(pairs) == {("retrieval", "singsong"), ("singsong", "truth")}
    r = pairs["retrieval", "singsong"]
    assert (r.n, r.wins, r.rate) == (3, 1, pytest.approx(1 / 3))
    assert (r.low, r.high) == wilson(1, 3)
    per = {r.system: (r.wins, r.n) for r in system_results(answers)}
    assert per == {"retrieval": (1, 3), "singsong": (2, 4), "truth": (1, 1)}


# --- study folders -------------------------------------------------------------------------------


def write_clip(path: Path, freq: float, amp: float, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def system_folders(root: Path, items: tuple[str, ...] = ("song-a", "song-b")) -> dict[str, Path]:
    folders = {}
    for k, name in enumerate(SYSTEMS):
        folders[name] = root / "mixes" / name
        for j, item in enumerate(items):
            write_clip(folders[name] / f"{item}.wav", 200 + 50 * k + 10 * j, 0.05 + 0.2 * k)
    for item in items:
        write_clip(root / "vocals" / f"{item}.wav", 300, 0.2)
    return folders


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    make_study(tmp_path / "study", system_folders(tmp_path), vocals=tmp_path / "vocals")
    return tmp_path / "study"


def test_make_study_matches_names_and_levels_loudness(tmp_path: Path) -> None:
    folders = system_folders(tmp_path)
    write_clip(folders["truth"] / "only-here.wav", 300, 0.1)
    study, skipped = make_study(tmp_path / "s", folders, vocals=tmp_path / "vocals")
    assert skipped == ["only-here"]
    assert [i.id for i in study.items] == ["song-a", "song-b"] and study.systems == SYSTEMS
    item = study.items[0]
    assert item.vocals is not None and item.vocals.is_file()
    levels = [loudness_lufs(sf.read(p, dtype="float32")[0], SR) for p in item.systems.values()]
    assert max(levels) - min(levels) < 0.5  # were 20 dB apart: loudness cannot decide
    data = json.loads((tmp_path / "s" / "study.json").read_text())
    assert data["items"][0]["systems"]["truth"] == "audio/song-a/truth.wav"  # relative paths


def test_make_study_refuses_what_cannot_be_compared(tmp_path: Path) -> None:
    folders = system_folders(tmp_path)
    with pytest.raises(SingsongError, match="at least two systems"):
        make_study(tmp_path / "s", {"truth": folders["truth"]})
    write_clip(tmp_path / "other" / "unrelated.wav", 200, 0.1)
    with pytest.raises(SingsongError, match="no file name is shared"):
        make_study(tmp_path / "s", {"truth": folders["truth"], "other": tmp_path / "other"})
    with pytest.raises(SingsongError, match="system"):
        make_study(tmp_path / "s", {"bad/name": folders["truth"], "x": folders["singsong"]})


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"items": []}, "at least one item"),
        ({"items": [{"id": "a", "systems": {"x": "m.wav"}}]}, "at least two systems"),
        ({"items": [{"id": "a", "systems": {"x": "m.wav", "y": "gone.wav"}}]}, "not found"),
        ({"items": [{"id": "../a", "systems": {"x": "m.wav", "y": "m.wav"}}]}, "letters"),
        (
            {"items": [{"id": "a", "systems": {"x": "m.wav", "y": "m.wav"}}] * 2},
            "appears twice",
        ),
    ],
)
def test_load_study_explains_bad_files(tmp_path: Path, content: object, words: str) -> None:
    write_clip(tmp_path / "m.wav", 200, 0.1)
    (tmp_path / "study.json").write_text(json.dumps(content))
    with pytest.raises(SingsongError, match=words):
        load_study(tmp_path)


# --- the API -----------------------------------------------------------------------------------


def test_trials_hide_system_names_and_answers_are_stored(study_dir: Path) -> None:
    app = create_study_app(StudySettings(study_dir), rng=random.Random(0))
    c = TestClient(app)
    page = c.get("/")
    assert page.status_code == 200 and LISTENER_COOKIE in page.cookies
    listener = page.cookies[LISTENER_COOKIE]
    seen = set()
    for k in range(6):  # 2 items x 3 pairs: least-judged first shows each once
        t = c.get("/api/trial")
        assert t.status_code == 200
        for name in SYSTEMS:
            assert name not in t.text
        trial = t.json()
        assert (trial["answered"], trial["total"]) == (k, 6)
        a = c.get(trial["a"])
        assert a.status_code == 200 and a.headers["content-type"].startswith("audio/")
        assert "clip-a" in a.headers["content-disposition"]  # no system name there either
        assert c.get(trial["vocals"]).status_code == 200
        r = c.post("/api/answer", json={"trial": trial["trial"], "choice": "ab"[k % 2]})
        assert r.json() == {"answered": k + 1}
        assert (
            c.post("/api/answer", json={"trial": trial["trial"], "choice": "a"}).status_code == 409
        )
    answers = StudyDB(study_dir / "answers.sqlite").answers()
    assert len(answers) == 6 and {a.listener for a in answers} == {listener}
    for a in answers:
        seen.add((a.item, *sorted((a.system_a, a.system_b))))
    assert len(seen) == 6  # every item and pair once
    assert {a.choice for a in answers} == {"a", "b"}


def test_trials_belong_to_their_listener(study_dir: Path) -> None:
    app = create_study_app(StudySettings(study_dir, study_dir / "other.sqlite"))
    alice, bob = TestClient(app), TestClient(app)
    alice.get("/")
    bob.get("/")
    trial = alice.get("/api/trial").json()
    assert bob.get(trial["a"]).status_code == 404
    assert bob.post("/api/answer", json={"trial": trial["trial"], "choice": "a"}).status_code == 404
    assert TestClient(app).get(trial["a"]).status_code == 404  # no cookie at all
    assert (
        alice.post("/api/answer", json={"trial": trial["trial"], "choice": "c"}).status_code == 422
    )
    assert alice.get(trial["trial"].join(["/api/trials/", "/../../study.json"])).status_code == 404
    assert (
        alice.post("/api/answer", json={"trial": trial["trial"], "choice": "b"}).status_code == 200
    )
    assert (study_dir / "other.sqlite").is_file() and not (study_dir / "answers.sqlite").exists()


# --- the command line ----------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    from singsong.cli.serve import add_study

    parser = argparse.ArgumentParser()
    add_study(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_study_make_and_results_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = system_folders(tmp_path)
    out = tmp_path / "study"
    argv = ["study", "make", str(out), *(f"--system={n}={p}" for n, p in folders.items())]
    args = parse(argv)
    assert args.run(args) == 0
    assert "2 items" in capsys.readouterr().out
    db = StudyDB(out / "answers.sqlite")
    for k in range(10):  # singsong beats retrieval 7 of 10 times
        db.add_trial(f"t{k}", "l1", "song-a", "singsong", "retrieval")
        db.answer(f"t{k}", "l1", "a" if k < 7 else "b")
    args = parse(["study", "results", str(out), "--out", str(tmp_path / "r.json")])
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "| retrieval | singsong | 10 | 3 | 30.0% |" in printed
    result = json.loads((tmp_path / "r.json").read_text())
    (pair,) = result["pairs"]
    assert (pair["system"], pair["wins"], pair["n"]) == ("retrieval", 3, 10)
    assert (pair["low"], pair["high"]) == pytest.approx(wilson(3, 10))
    assert write_results(tmp_path / "r.csv", db.answers()).read_text().startswith("system,")
    with pytest.raises(SingsongError, match="no answers database"):
        args = parse(["study", "results", str(tmp_path)])
        args.run(args)

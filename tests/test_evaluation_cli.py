"""``singsong eval fad`` and ``singsong eval run`` end to end on generated audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from singsong.errors import SingsongError
from singsong.evaluation.run import (
    EvalConfig,
    _with_truth,
    is_heldout,
    shuffle_partner,
    song_of,
)
from tests.test_evaluation_synth import SR, band, eval_parser, melody


def _run(argv: list[str]) -> int:
    args = eval_parser().parse_args(argv)
    return int(args.run(args))


def test_eval_fad_prints_a_distance(tmp_path, capsys) -> None:
    for name, shift in (("a", 0), ("b", 3)):
        (tmp_path / name).mkdir()
        for k in range(2):
            sf.write(tmp_path / name / f"{k}.wav", band(110 + 5 * k, 2.0, transpose=shift), SR)
    assert _run(["eval", "fad", str(tmp_path / "a"), str(tmp_path / "b"), "--json",
                 "--rounds", "5"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["fad"] > 0 and out["files_a"] == 2 and out["embedding"] == "musicfeat-v1"


def test_eval_fad_errors(tmp_path) -> None:
    (tmp_path / "one").mkdir()
    sf.write(tmp_path / "one" / "x.wav", band(120, 2.0), SR)
    with pytest.raises(SingsongError, match="at least 2"):
        _run(["eval", "fad", str(tmp_path / "one"), str(tmp_path / "one")])
    with pytest.raises(SingsongError, match="not a folder"):
        _run(["eval", "fad", str(tmp_path / "nope"), str(tmp_path / "one")])
    with pytest.raises(SingsongError, match="needs --weights"):
        _run(["eval", "fad", str(tmp_path / "one"), str(tmp_path / "one"), "--embedding", "clap"])
    with pytest.raises(SystemExit):
        eval_parser().parse_args(["eval", "fad", "a", "b", "--embedding", "inception"])


def _fake_pairs(root) -> None:
    """A songbook-like pairs folder: songs 0, 1 train; 9, 19 held out; 4 s clips with stems."""
    rows = []
    for index, transpose in ((0, 0), (1, 7), (9, 0), (19, 5)):
        track = f"s0-{index:05d}"
        src = root / "songbook" / track
        src.mkdir(parents=True)
        (src / "meta.json").write_text(json.dumps({"tonic": transpose, "mode": "major",
                                                   "tempo": 120.0}))  # fmt: skip
        folder = root / "pairs" / "tracks" / track
        folder.mkdir(parents=True)
        voice = melody([72 + transpose, 76 + transpose, 79 + transpose, 76 + transpose] * 2)
        inst = band(120, 4.0, transpose=transpose)
        for name, wav in (("true_vocals", voice), ("vocals", voice + 0.05 * inst),
                          ("true_instrumental", inst), ("instrumental", inst)):  # fmt: skip
            sf.write(folder / f"{name}.flac", wav, SR)
        row = {"id": f"{track}_0000", "offset": 0.0, "duration": 4.0, "track": track,
               "source": str(src), "source_kind": "songbook"}  # fmt: skip
        row |= {n: f"tracks/{track}/{n}.flac" for n in
                ("vocals", "instrumental", "true_vocals", "true_instrumental")}  # fmt: skip
        rows.append(row)
    (root / "pairs" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_eval_run_writes_report_and_numbers(tmp_path, monkeypatch) -> None:
    from singsong.errors import AudioError
    from singsong.evaluation.baseline import RetrievalBaseline

    def refuse(self, vocals, **kwargs):
        raise AudioError("refused")  # a system failing on a clip must not stop the run

    monkeypatch.setattr(RetrievalBaseline, "accompany", refuse)
    _fake_pairs(tmp_path)
    out = tmp_path / "eval"
    argv = ["eval", "run", str(tmp_path / "pairs" / "manifest.jsonl"), "--out", str(out),
            "--rounds", "50", "--model", "debug", "--save-audio"]  # fmt: skip
    assert _run(argv) == 0
    result = json.loads((out / "metrics.json").read_text())
    s = result["sets"]["pairs"]
    assert s["clips"] == 2
    systems = {"ground_truth", "shuffled", "baseline", "vocal_copy", "separated_inst",
               "model:debug"}  # fmt: skip
    for cond in ("isolated", "separated"):
        per = s["conditions"][cond]
        assert set(per) == systems
        assert per["ground_truth"]["key_vs_ref"]["mean"] == 1.0
        assert np.isfinite(per["baseline"]["fad"]["mean"])
        assert per["baseline"]["silence"]["mean"] == 1.0  # its failures count as silence
        assert per["vocal_copy"]["vocal_copy"]["mean"] > per["ground_truth"]["vocal_copy"]["mean"]
    assert s["failures"] == {name: 4 if name == "baseline" else 0 for name in systems}
    assert s["analysis_vs_truth"]["clips"] == 2
    assert set(s["separation"]["isolated"]) >= {"harmonic_fit", "beat_alignment", "vocal_copy"}
    listening = s["listening"]["separated"]["model:debug"]["harmonic_fit"]
    assert listening["low"] <= listening["mean"] <= listening["high"]
    report = (out / "report.md").read_text()
    assert "model:debug" in report and "![metrics](pairs/metrics.png)" in report
    assert "Does the model listen?" in report
    assert "**Failures**" in report and "baseline 4" in report
    assert (out / "pairs" / "metrics.png").stat().st_size > 0
    assert (out / "pairs" / "examples.png").stat().st_size > 0
    saved = sorted((out / "pairs" / "audio" / "isolated" / "model_debug").iterdir())
    assert [p.name for p in saved] == [
        "s0-00009_0000.instrumental.wav",
        "s0-00009_0000.mix.wav",
        "s0-00019_0000.instrumental.wav",
        "s0-00019_0000.mix.wav",
    ]
    lines = (out / "pairs" / "clips.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * len(systems)


def test_eval_run_input_errors(tmp_path) -> None:
    with pytest.raises(SingsongError, match="not found"):
        _run(["eval", "run", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    with pytest.raises(SingsongError, match="max-clips"):
        EvalConfig(manifests=("m",), out="o", max_clips=1)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "x", "track": "s0-00001",
                                                  "source_kind": "songbook"}) + "\n")  # fmt: skip
    with pytest.raises(SingsongError, match="held-out"):
        _run(["eval", "run", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o")])


def test_splits_and_shuffle_partners() -> None:
    assert is_heldout({"source_kind": "mir1k", "track": "Ani_1_01"})
    assert not is_heldout({"source_kind": "mir1k", "track": "abjones_1_01"})
    assert is_heldout({"source_kind": "songbook", "track": "s0-00019"})
    assert not is_heldout({"source_kind": "songbook", "track": "s0-00018"})
    assert song_of({"source_kind": "mir1k", "track": "Ani_1_01"}) == "Ani_1"
    oracle = {"separator": "oracle", "vocals": "v.flac", "instrumental": "i.flac"}
    assert _with_truth(oracle) == oracle | {"true_vocals": "v.flac", "true_instrumental": "i.flac"}
    assert _with_truth({"separator": "builtin", "vocals": "v.flac", "instrumental": "i"}) is None

    class C:
        def __init__(self, song: str) -> None:
            self.song = song

    clips = [C("a"), C("a"), C("b"), C("c")]
    partners = shuffle_partner(clips)  # type: ignore[arg-type]
    assert all(clips[j].song != clips[i].song for i, j in enumerate(partners))

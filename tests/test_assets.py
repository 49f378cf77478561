"""What ships inside the package: the default model and the example vocals, and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import singsong.cli
from singsong.assets import DEFAULT_MODEL, default_model_dir, example_vocals, resolve_model
from singsong.audio import load_audio
from singsong.pipeline import Accompanist
from singsong.pipeline.bundle import BUNDLE_FILE

SR = 16_000
MAX_MB = 60


def test_example_vocals_are_singing() -> None:
    wav = load_audio(example_vocals())
    assert 10 * SR <= len(wav) <= 15 * SR
    assert np.isfinite(wav).all() and np.sqrt(np.mean(wav**2)) > 0.01 and np.abs(wav).max() < 1
    info = json.loads(example_vocals().with_suffix(".json").read_text())
    assert "held-out" in info["source"] and info["lyrics"]


def test_bundled_model_is_complete_and_small() -> None:
    folder = default_model_dir()
    assert resolve_model(DEFAULT_MODEL) == folder and resolve_model("x") == "x"
    assert (folder / BUNDLE_FILE).is_file() and (folder / "MODEL_CARD.md").is_file()
    for part in ("semantic", "codec", "stage1", "stage2"):
        assert (folder / part / "config.json").is_file()
        assert (folder / part / "model.safetensors").is_file()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < MAX_MB * 2**20, f"bundled model is {size / 2**20:.1f} MB"


@pytest.fixture(scope="module")
def default() -> Accompanist:
    return Accompanist.from_pretrained(DEFAULT_MODEL)


def test_bundled_model_accompanies(default: Accompanist) -> None:
    vocals = load_audio(example_vocals())[: 2 * SR]
    out = default.accompany(vocals, SR, takes=1, seed=0)
    take = out.takes[0]
    assert take.instrumental.shape == take.mix.shape == (2 * SR,)
    assert np.isfinite(take.instrumental).all()
    assert np.sqrt(np.mean(take.instrumental**2)) > 1e-3  # not silence
    again = default.accompany(vocals, SR, takes=1, seed=0).takes[0]
    np.testing.assert_array_equal(take.instrumental, again.instrumental)


def test_demo_writes_the_example_and_its_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "demo"
    assert singsong.cli.main(["demo", "--model", "debug", "--out", str(out), "--takes", "1"]) == 0
    printed = capsys.readouterr().out
    assert (out / "vocals.flac").is_file()
    for name in ("instrumental", "mix"):
        path = out / "take-1" / f"{name}.wav"
        assert str(path) in printed
        data, sr = sf.read(path)
        assert sr == SR and len(data) == len(load_audio(example_vocals()))

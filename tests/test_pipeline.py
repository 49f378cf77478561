"""The accompany pipeline and CLI on the tiny debug bundle (random weights, short windows)."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

import singsong.cli
from singsong.cli.accompany import add_accompany
from singsong.errors import AudioError, SingsongError
from singsong.models import Codes, RendererModel
from singsong.pipeline import (
    Accompanist,
    Components,
    debug_components,
    load_bundle,
    plan_windows,
    save_bundle,
)
from singsong.pipeline.bundle import BUNDLE_FILE

SR = 16_000
# 2 s windows overlapping by 0.8 s: the windowed path runs on inputs of a few seconds
FAST: dict[str, Any] = {"window_seconds": 2.0, "overlap_seconds": 0.8}


@pytest.fixture(scope="module")
def parts() -> Components:
    return debug_components(**FAST)


@pytest.fixture(scope="module")
def acc(parts: Components) -> Accompanist:
    return Accompanist(parts)


@pytest.fixture(scope="module")
def bundle(parts: Components, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bundle(parts, tmp_path_factory.mktemp("bundle") / "model")


def singing(n: int, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """A gliding tone with a little noise: float32 [n]."""
    t = np.arange(n) / SR
    f0 = 220 * 2 ** (np.floor(t * 3) / 12)
    rng = np.random.default_rng(seed)
    wav = amp * np.sin(2 * np.pi * np.cumsum(f0) / SR) + 0.01 * rng.standard_normal(n)
    return wav.astype(np.float32)


def test_plan_windows() -> None:
    assert plan_windows(10, window=50, overlap=20) == [(0, 10)]
    assert plan_windows(50, window=50, overlap=20) == [(0, 50)]
    assert plan_windows(51, window=50, overlap=20) == [(0, 50), (30, 21)]
    spans = plan_windows(1000, window=50, overlap=20)
    assert spans[-1][0] + spans[-1][1] == 1000
    assert all(length > 20 for _, length in spans[1:])  # every window adds new frames


@pytest.mark.parametrize("n", [321, 8000, 16_000 + 77, 4 * SR + 123])
def test_output_length_equals_input(acc: Accompanist, n: int) -> None:
    result = acc.accompany(singing(n), SR, takes=1, seed=1)
    take = result.takes[0]
    assert take.instrumental.shape == take.mix.shape == (n,)
    assert take.mix.dtype == take.instrumental.dtype == np.float32
    assert np.isfinite(take.mix).all() and np.abs(take.mix).max() <= 0.99 + 1e-6
    assert (len(result.windows) > 1) == (n > 2 * SR)


def test_resamples_and_downmixes(acc: Accompanist) -> None:
    stereo = np.stack([singing(44_100), singing(44_100, seed=1)])  # [2, N] at 44.1 kHz
    take = acc.accompany(stereo, 44_100, seed=0).takes[0]
    assert take.mix.shape == (SR,)


def test_takes_differ_and_seed_reproduces(acc: Accompanist) -> None:
    wav = singing(3 * SR)
    a = acc.accompany(wav, SR, takes=2, seed=7)
    b = acc.accompany(wav, SR, takes=2, seed=7)
    c = acc.accompany(wav, SR, takes=2, seed=8)
    assert len(a.takes) == 2 and a.seed == 7
    assert not np.array_equal(a.takes[0].instrumental, a.takes[1].instrumental)
    for x, y in zip(a.takes, b.takes, strict=True):
        assert np.array_equal(x.instrumental, y.instrumental) and np.array_equal(x.mix, y.mix)
    assert not np.array_equal(a.takes[0].instrumental, c.takes[0].instrumental)
    d = acc.accompany(wav, SR, seed=None)
    assert isinstance(d.seed, int)
    e = acc.accompany(wav, SR, seed=d.seed)
    assert np.array_equal(d.takes[0].mix, e.takes[0].mix)  # the recorded seed reproduces


def test_sampling_settings_pass_through(acc: Accompanist) -> None:
    wav = singing(SR)
    greedy = [acc.accompany(wav, SR, seed=s, temperature=0.0).takes[0].mix for s in (1, 2)]
    assert np.array_equal(greedy[0], greedy[1])  # greedy ignores the seed
    top1 = acc.accompany(wav, SR, seed=3, top_k=1).takes[0].mix
    assert np.array_equal(top1, greedy[0])
    with pytest.raises(SingsongError, match="top_p"):
        acc.accompany(wav, SR, top_p=0.0)


def test_vocal_guidance(acc: Accompanist) -> None:
    wav = singing(3 * SR)
    plain = acc.accompany(wav, SR, seed=5).takes[0].mix
    assert np.array_equal(acc.accompany(wav, SR, seed=5, guidance=1.0).takes[0].mix, plain)
    guided = acc.accompany(wav, SR, seed=5, guidance=3.0).takes[0].mix
    assert not np.array_equal(guided, plain) and np.isfinite(guided).all()
    assert np.array_equal(acc.accompany(wav, SR, seed=5, guidance=3.0).takes[0].mix, guided)
    with pytest.raises(SingsongError, match="guidance"):
        acc.accompany(wav, SR, guidance=-1.0)


def test_mix_is_unclipped_and_stems_sum(acc: Accompanist) -> None:
    loud = np.clip(singing(2 * SR, amp=3.0), -1, 1)  # a clipped, full-scale recording
    for take in acc.accompany(loud, SR, takes=2, seed=0).takes:
        assert np.abs(take.mix).max() <= 0.99 + 1e-6
        assert np.abs(take.instrumental).max() <= 1.0
        vocals = take.mix - take.instrumental
        assert np.abs(vocals).max() > 0.01  # the voice is in the mix


def test_long_input_continues_window_to_window(acc: Accompanist) -> None:
    progress: list[tuple[int, int]] = []
    result = acc.accompany(
        singing(5 * SR), SR, takes=2, seed=0, progress=lambda d, t: progress.append((d, t))
    )
    windows = result.windows
    assert len(windows) == 4  # 125 frames: windows of 50 starting every 30
    assert progress == [(k + 1, 4) for k in range(4)]
    overlap = acc.config.overlap_frames
    for prev, cur in itertools.pairwise(windows):
        assert cur.start == prev.start + prev.frames - overlap
        # the prompt of the next window is the end of the previous one (all 12 levels)
        assert torch.equal(cur.semantic[:, :overlap], prev.semantic[:, -overlap:])
        assert torch.equal(cur.acoustic[:, :, : 2 * overlap], prev.acoustic[:, :, -2 * overlap :])
        assert cur.acoustic.shape == (2, 12, 2 * cur.frames)
        assert bool((cur.acoustic >= 0).all())  # every unknown code after the prompt sampled
    assert sum(w.frames for w in windows) - 3 * overlap == 125


def test_bundle_round_trip(acc: Accompanist, bundle: Path) -> None:
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    assert meta["config"]["featurization"] == "S" and meta["config"]["inference_snr_db"] == 20.0
    assert {p.name for p in bundle.iterdir()} >= {"semantic", "codec", "stage1", "stage2"}
    loaded = Accompanist.from_pretrained(bundle)
    wav = singing(SR + 5)
    a = acc.accompany(wav, SR, seed=4).takes[0].mix
    b = loaded.accompany(wav, SR, seed=4).takes[0].mix
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_featurization_sa() -> None:
    acc = Accompanist(debug_components(featurization="SA", **FAST))
    assert acc.accompany(singing(3 * SR), SR, seed=0).takes[0].mix.shape == (3 * SR,)


@pytest.mark.parametrize(
    ("wav", "match"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros(SR, np.float32), "silent"),
        (np.full(SR, np.nan, np.float32), "NaN"),
        (np.zeros(SR, np.int16), "float"),
    ],
)
def test_clear_errors_on_bad_audio(acc: Accompanist, wav: np.ndarray, match: str) -> None:
    with pytest.raises(AudioError, match=match):
        acc.accompany(wav, SR)


def test_too_long_is_refused(parts: Components) -> None:
    from dataclasses import replace

    short = Accompanist(replace(parts, config=replace(parts.config, max_seconds=1.0)))
    with pytest.raises(AudioError, match="at most 1 s"):
        short.accompany(singing(SR + 1), SR)


def test_bad_bundles(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(SingsongError, match="not found"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SingsongError, match="not a singsong model bundle"):
        load_bundle(tmp_path / "empty")
    # a semantic tokenizer other than the one the stages were trained on
    mixed = tmp_path / "mixed"
    shutil.copytree(bundle, mixed)
    debug_components(seed=1, **FAST).semantic.save_pretrained(mixed / "semantic")
    with pytest.raises(SingsongError, match="trained on semantic tokenizer"):
        load_bundle(mixed)
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    for key, value, match in [
        ("window_seconds", 0.4, "overlap"),
        ("window_seconds", 0.5, "whole number of 40 ms frames"),
        ("featurization", "A", "stage 1 reads S"),
    ]:
        (mixed / BUNDLE_FILE).write_text(
            json.dumps(meta | {"config": meta["config"] | {key: value}})
        )
        shutil.copytree(bundle / "semantic", mixed / "semantic", dirs_exist_ok=True)
        with pytest.raises(SingsongError, match=match):
            load_bundle(mixed)


# --- CLI ---------------------------------------------------------------------------------------


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    if add_accompany not in singsong.cli.COMMANDS:  # until it is registered
        monkeypatch.setattr(singsong.cli, "COMMANDS", (*singsong.cli.COMMANDS, add_accompany))
    return singsong.cli.main(argv)


def test_cli_writes_takes(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "voice.flac"
    sf.write(src, np.stack([singing(66_150)] * 2).T, 44_100)  # stereo, 44.1 kHz, 1.5 s
    out = tmp_path / "out"
    argv = ["accompany", str(src), "-o", str(out), "--model", str(bundle), "--takes", "2"]
    settings = ["--seed", "3", "--temperature", "0.9", "--top-k", "50", "--guidance", "2"]
    assert cli([*argv, *settings], monkeypatch) == 0
    printed = capsys.readouterr().out.split()
    expected = [
        out / f"take-{i}" / f"{name}.wav" for i in (1, 2) for name in ("instrumental", "mix")
    ]
    assert printed == [str(p) for p in expected]
    for path in expected:
        data, sr = sf.read(path)
        assert sr == SR and data.shape == (24_000,)
    assert not list(out.rglob(".*"))  # no temp files left


def test_cli_errors(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR), SR)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    monkeypatch.delenv("SINGSONG_MODEL", raising=False)
    cases = [
        ([str(text), "--model", str(bundle)], "cannot decode"),
        ([str(silent), "--model", str(bundle)], "silent"),
        ([str(empty), "--model", str(bundle)], "empty"),
        ([str(silent), "--model", str(tmp_path / "missing")], "model folder not found"),
        ([str(silent)], "silent"),  # the bundled model by default
    ]
    for args, message in cases:
        assert cli(["accompany", *args, "-o", str(tmp_path / "o")], monkeypatch) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written on failure


def test_cli_debug_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "voice.wav"
    sf.write(src, singing(SR // 2), SR)
    assert cli(["accompany", str(src), "--model", "debug"], monkeypatch) == 0
    out = tmp_path / "voice-accompaniment" / "take-1"
    assert capsys.readouterr().out.split() == [str(out / "instrumental.wav"), str(out / "mix.wav")]
    assert sf.read(out / "mix.wav")[0].shape == (SR // 2,)


def test_concurrent_calls_match_sequential(acc: Accompanist) -> None:
    """No per-call state on the object: a web server may call one Accompanist from threads."""
    from concurrent.futures import ThreadPoolExecutor

    wav = singing(SR)
    settings: list[dict[str, Any]] = [{"seed": 1}, {"seed": 2, "temperature": 0.7}, {"top_p": 0.9}]
    alone = [acc.accompany(wav, SR, **kw).takes[0].mix for kw in settings]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda kw: acc.accompany(wav, SR, **kw).takes[0].mix, settings))
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a, b)


def test_assemble_bundle_checks_the_stages_tokenizers(parts: Components, tmp_path: Path) -> None:
    from singsong.cli import main

    src = save_bundle(parts, tmp_path / "parts")
    args = ["bundle", "--semantic", str(src / "semantic"), "--codec", str(src / "codec")]
    args += ["--stage1", str(src / "stage1"), "--stage2", str(src / "stage2")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2  # no tokenizers.json: refused
    infos = {"semantic": parts.semantic.info.to_dict(), "acoustic": parts.codec.info.to_dict()}
    (src / "stage1" / "tokenizers.json").write_text(json.dumps(infos))
    (src / "stage2" / "tokenizers.json").write_text(json.dumps({"acoustic": infos["acoustic"]}))
    assert main([*args, "--out", str(tmp_path / "b"), "--window", "2", "--overlap", "0.8"]) == 0
    made = load_bundle(tmp_path / "b")
    assert made.config.window_seconds == 2.0 and made.config.featurization == "S"
    assert made.config.inference_snr_db == parts.stage1.config.inference_snr_db
    assert main([*args, "--out", str(tmp_path / "h"), "--fp16"]) == 0
    size = {d: (tmp_path / d / "stage1" / "model.safetensors").stat().st_size for d in "bh"}
    assert size["h"] < 0.6 * size["b"]
    a = Accompanist(load_bundle(tmp_path / "h")).accompany(np.zeros(SR, np.float32) + 0.1, SR)
    assert len(a.takes[0].instrumental) == SR
    other = dict(infos["acoustic"], version="other")
    (src / "stage2" / "tokenizers.json").write_text(json.dumps({"acoustic": other}))
    with pytest.raises(SingsongError, match="stage2 was trained on acoustic codes"):
        from singsong.pipeline.bundle import assemble_bundle

        assemble_bundle(semantic=src / "semantic", codec=src / "codec", stage1=src / "stage1",
                        stage2=src / "stage2", out=tmp_path / "c")  # fmt: skip


def test_planner_writes_the_semantic_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = debug_components(planner=True, **FAST)
    planner = parts.planner
    assert planner is not None
    plans: list[torch.Tensor] = []
    write = planner.generate

    def spy(*args: Any, **kwargs: Any) -> Codes:
        out = write(*args, **kwargs)
        plans.append(out.semantic)
        return out

    monkeypatch.setattr(planner, "generate", spy)
    acc = Accompanist(parts)
    result = acc.accompany(singing(3 * SR), SR, takes=2, seed=1)
    assert len(result.takes[0].instrumental) == 3 * SR
    # every window's semantic codes are the planner's, continued over the overlap
    assert len(plans) == len(result.windows) == 2
    for plan, window in zip(plans, result.windows, strict=True):
        assert torch.equal(window.semantic, plan)
    overlap = acc.config.overlap_frames
    for prev, cur in itertools.pairwise(result.windows):
        assert torch.equal(cur.semantic[:, :overlap], prev.semantic[:, -overlap:])
    monkeypatch.undo()
    # saved and loaded with the bundle: the same takes
    saved = save_bundle(parts, tmp_path / "m")
    loaded = Accompanist.from_pretrained(saved)
    assert loaded.parts.planner is not None
    again = loaded.accompany(singing(3 * SR), SR, takes=2, seed=1)
    np.testing.assert_allclose(again.takes[1].mix, result.takes[1].mix, atol=1e-6)
    # `singsong bundle --planner`
    from singsong.cli import main

    infos = {"semantic": parts.semantic.info.to_dict(), "acoustic": parts.codec.info.to_dict()}
    for stage in ("stage1", "stage2", "planner"):
        (saved / stage / "tokenizers.json").write_text(json.dumps(infos))
    args = ["bundle", "--semantic", str(saved / "semantic"), "--codec", str(saved / "codec")]
    args += ["--stage1", str(saved / "stage1"), "--stage2", str(saved / "stage2")]
    assert main([*args, "--planner", str(saved / "planner"), "--out", str(tmp_path / "c")]) == 0
    assert load_bundle(tmp_path / "c").planner is not None
    assert main([*args, "--planner", str(saved / "stage1"), "--out", str(tmp_path / "d")]) == 2
    # a planner must write semantic codes only, and stage 1 must write coarse ones
    with pytest.raises(SingsongError, match="semantic codes only"):
        replace(parts, planner=parts.stage1).check()
    with pytest.raises(SingsongError, match="is a planner"):
        replace(parts, stage1=planner).check()


def test_a_renderer_writes_the_coarse_codes_of_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    parts = debug_components(renderer=True, **FAST)
    assert isinstance(parts.stage1, RendererModel) and parts.planner is not None
    acc = Accompanist(parts)
    result = acc.accompany(singing(3 * SR), SR, takes=2, seed=1, guidance=2.0)
    assert len(result.takes[1].mix) == 3 * SR and len(result.windows) == 2
    overlap = acc.config.overlap_frames
    for prev, cur in itertools.pairwise(result.windows):  # continued over the overlap
        assert torch.equal(cur.semantic[:, :overlap], prev.semantic[:, -overlap:])
        assert torch.equal(cur.acoustic[:, :, : 2 * overlap], prev.acoustic[:, :, -2 * overlap :])
    saved = save_bundle(parts, tmp_path / "m", fp16=True)
    loaded = Accompanist.from_pretrained(saved)
    assert isinstance(loaded.parts.stage1, RendererModel)
    again = loaded.accompany(singing(3 * SR), SR, takes=2, seed=1, guidance=2.0)
    assert again.takes[0].mix.shape == result.takes[0].mix.shape
    # `singsong bundle --stage1 RENDERER --planner PLANNER`, and a renderer alone is refused
    from singsong.cli import main

    infos = {"semantic": parts.semantic.info.to_dict(), "acoustic": parts.codec.info.to_dict()}
    for stage in ("stage1", "stage2", "planner"):
        (saved / stage / "tokenizers.json").write_text(json.dumps(infos))
    args = ["bundle", "--semantic", str(saved / "semantic"), "--codec", str(saved / "codec")]
    args += ["--stage1", str(saved / "stage1"), "--stage2", str(saved / "stage2")]
    planner = ["--planner", str(saved / "planner"), "--guidance", "2"]
    assert main([*args, *planner, "--out", str(tmp_path / "c")]) == 0
    bundle = load_bundle(tmp_path / "c")
    assert isinstance(bundle.stage1, RendererModel) and bundle.config.guidance == 2.0
    assert main([*args, "--out", str(tmp_path / "d")]) == 2
    # plan guidance is stored in the renderer's config; it needs one trained with plan dropout
    assert main([*args, *planner, "--plan-guidance", "2", "--out", str(tmp_path / "e")]) == 2
    assert "plan_dropout" in capsys.readouterr().err
    renderer = parts.stage1
    renderer.config = replace(renderer.config, plan_dropout=0.1)
    renderer.save_pretrained(saved / "stage1")
    assert main([*args, *planner, "--plan-guidance", "2", "--out", str(tmp_path / "e")]) == 0
    guided = load_bundle(tmp_path / "e").stage1
    assert isinstance(guided, RendererModel) and guided.config.plan_guidance == 2.0
    timed = [*args[:5], "--stage1", str(saved / "planner"), *args[7:]]
    assert main([*timed, "--plan-guidance", "2", "--out", str(tmp_path / "f")]) == 2
    assert "renderer's setting" in capsys.readouterr().err
    with pytest.raises(SingsongError, match="there is no planner"):
        replace(parts, planner=None).check()

"""Tone match: fitting, applying and storing a bundle's equaliser curve."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from singsong.errors import SingsongError
from singsong.pipeline import Accompanist, BundleConfig, debug_components, load_bundle, save_bundle
from singsong.pipeline.tone import (
    TONE_BANDS_HZ,
    adapt_tone,
    apply_tone,
    band_spectrum,
    fit_balance,
    fit_tone,
    match_tone,
)
from tests.test_evaluation_cli import _fake_pairs
from tests.test_pipeline import FAST, singing

SR = 16_000


def noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def dull(x: np.ndarray) -> np.ndarray:
    """A one-pole low-pass: about -10 dB at 4 kHz relative to 500 Hz."""
    y = np.empty_like(x)
    acc = 0.0
    for i, v in enumerate(x):
        acc = 0.6 * acc + 0.4 * float(v)
        y[i] = acc
    return y


def test_band_spectrum_sees_balance_not_level() -> None:
    x = noise(SR)
    np.testing.assert_allclose(band_spectrum(x), band_spectrum(3.0 * x), atol=1e-6)
    low, high = band_spectrum(dull(x)), band_spectrum(x)
    assert low[-1] - low[5] < high[-1] - high[5] - 6  # the low-pass tilts it down
    with pytest.raises(SingsongError, match="mono audio"):
        band_spectrum(np.zeros(100, np.float32))


def test_fit_and_apply_bring_the_balance_to_the_truth() -> None:
    pairs = [(dull(noise(SR, s)), noise(SR, s + 10)) for s in range(3)]
    curve = fit_tone(pairs)
    assert len(curve) == len(TONE_BANDS_HZ) and curve[-1] > 6 and abs(curve[8]) < 3
    gen, truth = dull(noise(SR, 99)), noise(SR, 98)  # unseen clip
    before = np.abs(band_spectrum(gen) - band_spectrum(truth)).mean()
    after = np.abs(band_spectrum(apply_tone(gen, curve)) - band_spectrum(truth)).mean()
    assert after < before / 3
    with pytest.raises(SingsongError, match="at least one"):
        fit_tone([])


def test_apply_tone_flat_and_errors() -> None:
    x = noise(4001)
    assert apply_tone(x, ()) is x
    y = apply_tone(x, (0.0,) * len(TONE_BANDS_HZ))
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1e-5)
    loud = apply_tone(x, (6.0,) * len(TONE_BANDS_HZ))
    np.testing.assert_allclose(loud, x * 10 ** (6 / 20), rtol=1e-4, atol=1e-5)
    with pytest.raises(SingsongError, match="23 gains"):
        apply_tone(x, (1.0, 2.0))


def test_adapt_tone_moves_each_clip_part_of_the_way_to_the_balance() -> None:
    balance = fit_balance([noise(SR, s) for s in range(3)])
    assert len(balance) == len(TONE_BANDS_HZ)
    gen = dull(noise(SR, 99))

    mid = (np.asarray(TONE_BANDS_HZ) >= 200) & (np.asarray(TONE_BANDS_HZ) <= 2000)

    def error(x: np.ndarray) -> np.ndarray:  # [bands], re-centred like the curves
        d = band_spectrum(x) - np.asarray(balance)
        return d - d[mid].mean()  # type: ignore[no-any-return]

    before = np.abs(error(gen)).mean()
    full = adapt_tone(gen, balance, 1.0)
    half = adapt_tone(gen, balance, 0.5)
    assert full.shape == gen.shape and full.dtype == np.float32
    assert np.abs(error(full)).mean() < before / 3
    # half the strength leaves about half of the tilt (top band against the middle)
    ratio = error(half)[-1] / error(gen)[-1]
    assert 0.35 < ratio < 0.65, ratio
    # a brighter clip is made duller: the gains follow the clip, not a fixed curve
    bright = apply_tone(noise(SR, 98), (0.0,) * 16 + (8.0,) * 7)  # +8 dB above 2 kHz
    assert error(bright)[-1] > 6 and abs(error(adapt_tone(bright, balance, 1.0))[-1]) < 2
    # unchanged: strength 0, no balance, silence, too short to measure
    for args in ((gen, balance, 0.0), (gen, (), 1.0), (np.zeros(SR, np.float32), balance, 1.0),
                 (gen[:500], balance, 1.0)):  # fmt: skip
        assert adapt_tone(*args) is args[0]
    with pytest.raises(SingsongError, match=r"\[0, 1\]"):
        adapt_tone(gen, balance, 1.5)
    with pytest.raises(SingsongError, match="23 values"):
        adapt_tone(gen, (1.0, 2.0), 1.0)
    with pytest.raises(SingsongError, match="at least one"):
        fit_balance([])


def test_bundle_config_checks_and_converts_the_curve() -> None:
    cfg = BundleConfig(tone_db=[1, 2] + [0] * (len(TONE_BANDS_HZ) - 2))  # type: ignore[arg-type]
    assert isinstance(cfg.tone_db, tuple) and cfg.tone_db[1] == 2.0
    with pytest.raises(SingsongError, match="tone_db"):
        BundleConfig(tone_db=(1.0, 2.0))
    with pytest.raises(SingsongError, match="tone_db"):
        BundleConfig(tone_db=(float("nan"),) * len(TONE_BANDS_HZ))
    with pytest.raises(SingsongError, match="tone_db"):
        BundleConfig(tone_db="loud")  # type: ignore[arg-type]
    flat = [0] * len(TONE_BANDS_HZ)
    cfg = BundleConfig(tone_balance_db=flat, tone_adapt=1)  # type: ignore[arg-type]
    assert cfg.tone_balance_db == (0.0,) * len(TONE_BANDS_HZ) and cfg.tone_adapt == 1.0
    with pytest.raises(SingsongError, match="tone_balance_db"):
        BundleConfig(tone_balance_db=(1.0,))
    for bad in (-0.1, 1.5, "half", float("nan")):
        with pytest.raises(SingsongError, match="tone_adapt must be"):
            BundleConfig(tone_balance_db=tuple(flat), tone_adapt=bad)  # type: ignore[arg-type]
    with pytest.raises(SingsongError, match="needs tone_balance_db"):
        BundleConfig(tone_adapt=0.5)


def test_a_fitted_curve_is_applied_stored_and_can_be_switched_off(tmp_path: Path) -> None:
    parts = debug_components(**FAST)
    vocals, truth = singing(2 * SR, seed=1), noise(2 * SR, seed=2)
    curve = match_tone(Accompanist(parts), [(vocals, truth)], shift_semitones=0)
    acc = Accompanist(replace(parts, config=replace(parts.config, tone_db=curve)))
    toned = acc.accompany(vocals, SR, seed=0).takes[0].instrumental
    raw = acc.accompany(vocals, SR, seed=0, tone=False).takes[0].instrumental
    flat = Accompanist(parts).accompany(vocals, SR, seed=0).takes[0].instrumental
    np.testing.assert_array_equal(raw, flat)  # tone=False is the codec's output, as before
    assert toned.shape == raw.shape and not np.allclose(toned, raw)
    error = {k: np.abs(band_spectrum(x) - band_spectrum(truth)).mean() for k, x in
             (("toned", toned), ("raw", raw))}  # fmt: skip
    assert error["toned"] < error["raw"] / 2  # fitted on this clip: its balance now matches
    # the per-clip adaptation, towards this clip's own balance: closer still; off with tone
    cfg = replace(acc.config, tone_balance_db=fit_balance([truth]), tone_adapt=1.0)
    adapted = Accompanist(replace(acc.parts, config=cfg))
    matched = adapted.accompany(vocals, SR, seed=0).takes[0].instrumental
    assert np.abs(band_spectrum(matched) - band_spectrum(truth)).mean() < 0.8 * error["toned"]
    np.testing.assert_array_equal(adapted.accompany(vocals, SR, seed=0, tone=False).takes[0]
                                  .instrumental, raw)  # fmt: skip
    loaded = load_bundle(save_bundle(adapted.parts, tmp_path / "adapted")).config
    assert (loaded.tone_balance_db, loaded.tone_adapt) == (cfg.tone_balance_db, 1.0)
    folder = save_bundle(acc.parts, tmp_path / "model")
    assert load_bundle(folder).config.tone_db == curve
    from singsong.cli import main

    sf.write(tmp_path / "voice.wav", vocals, SR)
    for name, expected, extra in (("toned", toned, []), ("raw", raw, ["--no-tone"])):
        argv = ["accompany", str(tmp_path / "voice.wav"), "-o", str(tmp_path / name)]
        assert main([*argv, "--model", str(folder), *extra]) == 0
        wav, _ = sf.read(tmp_path / name / "take-1" / "instrumental.wav", dtype="float32")
        np.testing.assert_allclose(wav, expected, atol=1e-3)


def test_cli_fits_the_tone_on_training_clips(tmp_path: Path) -> None:
    from singsong.cli import main

    parts = debug_components(**FAST)
    src = save_bundle(parts, tmp_path / "parts")
    infos = {"semantic": parts.semantic.info.to_dict(), "acoustic": parts.codec.info.to_dict()}
    (src / "stage1" / "tokenizers.json").write_text(json.dumps(infos))
    (src / "stage2" / "tokenizers.json").write_text(json.dumps({"acoustic": infos["acoustic"]}))
    _fake_pairs(tmp_path)
    args = ["bundle", "--semantic", str(src / "semantic"), "--codec", str(src / "codec")]
    args += ["--stage1", str(src / "stage1"), "--stage2", str(src / "stage2")]
    args += ["--window", "2", "--overlap", "0.8", "--out", str(tmp_path / "b")]
    args += ["--tone-match", str(tmp_path / "pairs" / "manifest.jsonl"), "--tone-clips", "2"]
    assert main(args) == 0
    curve = load_bundle(tmp_path / "b").config.tone_db
    assert len(curve) == len(TONE_BANDS_HZ) and any(g != 0 for g in curve)
    assert load_bundle(tmp_path / "b").config.tone_adapt == 0.0  # off unless asked for
    assert main([*args, "--tone-adapt", "0.75"]) == 0
    cfg = load_bundle(tmp_path / "b").config
    assert cfg.tone_adapt == 0.75 and cfg.tone_db == curve  # the same clips, the same curve
    assert len(cfg.tone_balance_db) == len(TONE_BANDS_HZ)
    missing = [*args[:-4], "--tone-match", str(tmp_path / "nope.jsonl")]
    assert main(missing) == 2  # a clear error, not a traceback
    assert main([*args[:-4], "--tone-adapt", "0.5"]) == 2  # nothing to fit its target on

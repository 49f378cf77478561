"""Separators, chunked application and the training loop of the builtin separator."""

import json
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch

from singsong.errors import SingsongError
from singsong.metrics import si_sdr
from singsong.separate.base import Track, apply_chunked
from singsong.separate.baselines import RepetSimSeparator
from singsong.separate.builtin import BuiltinSeparator
from singsong.separate.model import UnmixConfig, UnmixModel
from singsong.separate.oracle import OracleSeparator
from singsong.separate.train import TrainConfig, train

SR = 16000


def make_song(folder, seconds=3.0, seed=0):
    """A fake songbook song: a sine 'voice' over a noise-and-bass 'band', stems summing to mix."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    vocals = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) * (t > 0.5)
    drums = 0.05 * rng.standard_normal(t.size)
    bass = 0.2 * np.sin(2 * np.pi * 55 * t)
    other = 0.1 * np.sin(2 * np.pi * 330 * t)
    folder.mkdir(parents=True)
    for name, x in {
        "vocals": vocals,
        "drums": drums,
        "bass": bass,
        "other": other,
        "mixture": vocals + drums + bass + other,
    }.items():
        sf.write(folder / f"{name}.flac", x.astype(np.float32), SR, subtype="PCM_24")
    (folder / "meta.json").write_text(json.dumps({"song_id": folder.name, "duration": seconds}))
    return vocals.astype(np.float32), (drums + bass + other).astype(np.float32)


@pytest.mark.parametrize("length", [100, 1000, 1001, 4567])
@pytest.mark.parametrize("overlap", [0, 50])
def test_apply_chunked_is_exact_for_a_pointwise_function(length, overlap):
    wav = np.random.default_rng(0).standard_normal(length).astype(np.float32)
    out = apply_chunked(lambda x: np.stack([2 * x, -x]), wav, segment=1000, overlap=overlap)
    assert out.shape == (2, length)
    np.testing.assert_allclose(out[0], 2 * wav, atol=1e-5)
    np.testing.assert_allclose(out[1], -wav, atol=1e-5)


def test_apply_chunked_rejects_bad_overlap():
    with pytest.raises(ValueError):
        apply_chunked(lambda x: x[None], np.zeros(10, np.float32), segment=4, overlap=4)


def test_si_sdr():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    assert si_sdr(3 * ref, ref) > 80  # scale-invariant
    noisy = ref + 0.1 * rng.standard_normal(16000)
    assert si_sdr(noisy, ref) == pytest.approx(20, abs=0.5)
    with pytest.raises(ValueError):
        si_sdr(ref[:10], ref)


def test_oracle_reads_true_stems(tmp_path):
    vocals, inst = make_song(tmp_path / "s0-00000")
    result = OracleSeparator().separate_track(Track("s", str(tmp_path / "s0-00000"), "songbook"))
    np.testing.assert_allclose(result.vocals, vocals, atol=1e-5)
    np.testing.assert_allclose(result.instrumental, inst, atol=1e-5)
    sf.write(tmp_path / "plain.wav", vocals, SR)
    with pytest.raises(SingsongError, match="needs true stems"):
        OracleSeparator().separate_track(Track("p", str(tmp_path / "plain.wav")))


def test_mir1k_track_channels(tmp_path):
    stereo = np.stack([np.full(SR, 0.1), np.full(SR, 0.2)], axis=1).astype(np.float32)
    sf.write(tmp_path / "a.ogg", stereo, SR)
    track = Track("a", str(tmp_path / "a.ogg"), "mir1k")
    stems = track.load_true_stems()
    assert stems is not None
    assert abs(stems.vocals.mean() - 0.2) < 0.02 and abs(stems.instrumental.mean() - 0.1) < 0.02
    assert abs(track.load_mixture().mean() - 0.3) < 0.03


def test_repet_sim_shapes_and_errors():
    sep = RepetSimSeparator(segment_seconds=2.0)
    mix = np.random.default_rng(0).standard_normal(int(2.5 * SR)).astype(np.float32) * 0.1
    out = sep.separate(mix)
    assert out.vocals.shape == out.instrumental.shape == mix.shape
    with pytest.raises(SingsongError, match="empty"):
        sep.separate(np.zeros(0, np.float32))
    with pytest.raises(SingsongError, match="mono"):
        sep.separate(np.zeros((2, 100), np.float32))


def test_builtin_shapes_roundtrip_and_chunking(tmp_path):
    torch.manual_seed(0)
    sep = BuiltinSeparator(
        UnmixModel(UnmixConfig.preset("debug")), segment_seconds=1.0, overlap_seconds=0.25
    )
    mix = np.random.default_rng(1).standard_normal(int(2.6 * SR)).astype(np.float32) * 0.1
    out = sep.separate(mix)
    assert out.vocals.shape == mix.shape and np.isfinite(out.vocals).all()
    short = sep.separate(mix[:100])  # shorter than one STFT window
    assert short.vocals.shape == (100,)
    sep.save_pretrained(tmp_path / "release")
    again = BuiltinSeparator.from_pretrained(
        tmp_path / "release", segment_seconds=1.0, overlap_seconds=0.25
    )
    np.testing.assert_array_equal(again.separate(mix).vocals, out.vocals)
    (tmp_path / "release" / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(SingsongError, match="broken weights"):
        BuiltinSeparator.from_pretrained(tmp_path / "release")


def test_masks_are_causal_in_nothing_but_bounded():
    model = UnmixModel(UnmixConfig.preset("debug"))
    masks = model.masks(torch.rand(2, 129, 20))
    assert masks.shape == (2, 2, 129, 20)
    assert (masks >= 0).all() and (masks <= 1).all()


def test_training_learns_resumes_and_releases(tmp_path):
    for i in range(10):  # song 9 is held out by the shared split
        make_song(tmp_path / "book" / f"s0-{i:05d}", seed=i)
    cfg = TrainConfig(
        preset="debug",
        steps=30,
        batch_size=4,
        crop_seconds=1.0,
        lr=3e-3,
        valid_every=15,
        valid_tracks=2,
    )
    release = train(
        tmp_path / "run", songbook=tmp_path / "book", mir1k=None, cfg=cfg, progress=False
    )
    rows = list(csv_rows(tmp_path / "run" / "log.csv"))
    assert [r["step"] for r in rows] == ["15", "30"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    BuiltinSeparator.from_pretrained(release)
    longer = TrainConfig(**{**cfg.__dict__, "steps": 45})
    train(tmp_path / "run", songbook=tmp_path / "book", mir1k=None, cfg=longer, progress=False)
    assert [r["step"] for r in csv_rows(tmp_path / "run" / "log.csv")] == ["15", "30", "45"]


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)


def test_training_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(SingsongError, match="no training audio"):
        train(tmp_path / "run", songbook=None, mir1k=None, cfg=TrainConfig(preset="debug"))


def test_demucs_wrapper_with_a_stand_in(monkeypatch, tmp_path):
    """The wrapper's plumbing (rates, channels, sources) with a fake Demucs package."""

    class FakeModel(torch.nn.Module):
        samplerate, audio_channels = 44100, 2
        sources = ("drums", "bass", "other", "vocals")

    def apply_model(model, mix, **kwargs):  # vocals = left channel x 0.5, others share the rest
        b, c, n = mix.shape
        out = torch.zeros(b, 4, c, n)
        out[:, 3] = 0.5 * mix
        out[:, :3] = 0.5 * mix[:, None] / 3
        return out

    demucs = types.ModuleType("demucs")
    states = types.ModuleType("demucs.states")
    states.load_model = lambda package: FakeModel()
    apply = types.ModuleType("demucs.apply")
    apply.apply_model = apply_model
    monkeypatch.setitem(sys.modules, "demucs", demucs)
    monkeypatch.setitem(sys.modules, "demucs.states", states)
    monkeypatch.setitem(sys.modules, "demucs.apply", apply)
    from singsong.separate.demucs import DemucsSeparator

    torch.save({"fake": 1}, tmp_path / "model.th")
    sep = DemucsSeparator.from_path(tmp_path / "model.th")
    mix = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    out = sep.separate(mix)
    assert out.vocals.shape == mix.shape
    np.testing.assert_allclose(out.vocals[1000:-1000], 0.5 * mix[1000:-1000], atol=2e-3)
    np.testing.assert_allclose(out.instrumental[1000:-1000], 0.5 * mix[1000:-1000], atol=2e-3)
    with pytest.raises(SingsongError, match="not found"):
        DemucsSeparator.from_path(tmp_path / "missing.th")

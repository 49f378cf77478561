"""Fréchet distance against independent references; the embedding backends' shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from singsong.errors import SingsongError
from singsong.evaluation.embeddings import (
    VGGish,
    _vggish_mel_matrix,
    _vggish_network,
    load_embedding,
    vggish_log_mel,
)
from singsong.evaluation.fad import Gaussian, bootstrap_fad, fad, fad_folders, frechet_distance
from tests.test_evaluation_synth import SR, band, tone


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, 2 * d))
    return a @ a.T / (2 * d)


def _reference(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("d", [1, 3, 16])
def test_frechet_matches_scipy_sqrtm(d: int) -> None:
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    got = frechet_distance(Gaussian(mu1, s1), Gaussian(mu2, s2))
    assert got == pytest.approx(_reference(mu1, s1, mu2, s2), rel=1e-6, abs=1e-9)


def test_frechet_diagonal_closed_form() -> None:
    rng = np.random.default_rng(7)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(Gaussian(mu1, np.diag(v1)), Gaussian(mu2, np.diag(v2)))
    assert got == pytest.approx(expected, rel=1e-9)


def test_fad_of_samples_zero_for_same_set_and_grows_with_shift() -> None:
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(50, 4)) for _ in range(10)]
    assert fad(a, a) == pytest.approx(0.0, abs=1e-8)
    b = [x + 1.0 for x in a]  # mean shift of 1 in 4 dims: distance 4
    assert fad(a, b) == pytest.approx(4.0, rel=1e-6)
    value, low, high = bootstrap_fad(b, a, rounds=50)
    assert low <= value <= high and value == pytest.approx(4.0, rel=1e-6)


def test_frechet_refuses_mismatched_sizes() -> None:
    with pytest.raises(SingsongError, match="sizes differ"):
        frechet_distance(Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.zeros(3), np.eye(3)))
    with pytest.raises(SingsongError, match="at least 2"):
        Gaussian.fit(np.zeros((1, 3)))


def test_musicfeat_embedding_is_deterministic_and_separates_noise(tmp_path) -> None:
    import soundfile as sf

    emb = load_embedding("musicfeat")
    x = band(120, 3.0)
    e = emb.embed(x)
    assert e.shape == (1 + (150 - 48) // 24, emb.dim) and np.isfinite(e).all()
    np.testing.assert_array_equal(e, emb.embed(x))
    rng = np.random.default_rng(0)
    for name, shift in (("a", 0), ("b", 2), ("c", 0)):
        for k in range(3):
            folder = tmp_path / name
            folder.mkdir(exist_ok=True)
            wav = band(100 + 10 * k, 3.0, transpose=shift + k)
            if name == "c":  # degraded: loud white noise over the music
                wav = wav + 0.2 * rng.normal(size=wav.size).astype(np.float32)
            sf.write(folder / f"{k}.wav", np.clip(wav, -1, 1), SR)
    close = fad_folders(tmp_path / "b", tmp_path / "a", emb, rounds=10).fad
    far = fad_folders(tmp_path / "c", tmp_path / "a", emb, rounds=10).fad
    assert far > 3 * close


def test_vggish_front_end_and_network_shapes() -> None:
    patches = vggish_log_mel(tone(60, 2.0))  # 2 s -> 2 patches of 0.96 s
    assert patches.shape == (2, 96, 64)
    net = _vggish_network().eval()
    with torch.inference_mode():
        out = net(torch.from_numpy(patches)[:, None])
    assert out.shape == (2, 128)


def test_vggish_mel_weights_are_htk_triangles_in_band() -> None:
    w = _vggish_mel_matrix()  # [257, 64]
    hz = np.linspace(0, SR / 2, 257)
    assert w.shape == (257, 64) and w.max() <= 1.0 and not w[0].any()
    used = hz[w.sum(axis=1) > 0]
    assert used.min() > 125.0 and used.max() < 7500.0
    centers = hz[np.argmax(w, axis=0)]  # rise with the band index, mel-spaced
    assert np.all(np.diff(centers) >= 0) and np.diff(centers)[-1] > 4 * np.diff(centers)[5]


def test_vggish_and_clap_need_local_weights(tmp_path) -> None:
    with pytest.raises(SingsongError, match="needs --weights"):
        load_embedding("vggish")
    with pytest.raises(SingsongError, match="not found"):
        load_embedding("vggish", tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(SingsongError, match="not a VGGish state dict"):
        VGGish(bad)
    with pytest.raises(SingsongError, match="not found"):
        load_embedding("clap", tmp_path / "no-clap")
    with pytest.raises(SingsongError, match="unknown embedding"):
        load_embedding("inception")


def test_clap_backend_from_a_local_folder(tmp_path) -> None:
    """A tiny random CLAP saved like a real checkpoint loads offline and embeds any length."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ClapConfig(
        text_config=dict(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=37),
        audio_config=dict(spec_size=64, window_size=4, num_mel_bins=16, patch_size=2,
                          patch_stride=2, patch_embeds_hidden_size=16, hidden_size=32,
                          depths=[1, 1], num_attention_heads=[1, 1]),
        projection_dim=16,
    )  # fmt: skip
    transformers.ClapModel(cfg).save_pretrained(tmp_path)
    transformers.ClapFeatureExtractor(
        feature_size=16, sampling_rate=48_000, hop_length=480, max_length_s=2
    ).save_pretrained(tmp_path)
    emb = load_embedding("clap", tmp_path)
    x = band(120, 5.0)
    out = emb.embed(x)
    assert out.shape == (4, 16) and np.isfinite(out).all()  # 2 s windows, hop 1 s
    np.testing.assert_allclose(out, emb.embed(x), rtol=1e-5, atol=1e-6)  # no random crops

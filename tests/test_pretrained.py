"""Tests for singsong.tokenizers.pretrained: tiny random-weight DAC/EnCodec saved and reloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never the hub

import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from singsong.errors import SingsongError
from singsong.tokenizers.base import Tokenizer
from singsong.tokenizers.pretrained import DacTokenizer, EncodecTokenizer

transformers = pytest.importorskip("transformers")


def tiny_dac(folder: Path, seed: int = 0) -> Path:
    """DAC with the dac_16khz hop structure (2*4*5*8 = 320 at 16 kHz), 4 x 64 codes, tiny dims."""
    torch.manual_seed(seed)
    config = transformers.DacConfig(
        encoder_hidden_size=4,
        downsampling_ratios=[2, 4, 5, 8],
        upsampling_ratios=[8, 5, 4, 2],
        decoder_hidden_size=16,
        hidden_size=8,
        n_codebooks=4,
        codebook_size=64,
        codebook_dim=4,
        sampling_rate=16000,
    )
    transformers.DacModel(config).save_pretrained(folder)
    return folder


def tiny_encodec(folder: Path, seed: int = 0) -> Path:
    """EnCodec at 24 kHz, hop 320 (75 Hz), 64 codes; 0.9 / 1.8 kbps = 2 / 4 levels."""
    torch.manual_seed(seed)
    config = transformers.EncodecConfig(
        num_filters=4,
        hidden_size=8,
        codebook_size=64,
        codebook_dim=8,
        num_lstm_layers=1,
        target_bandwidths=[0.9, 1.8],
        sampling_rate=24000,
    )
    model = transformers.EncodecModel(config)
    for layer in model.quantizer.layers:  # fresh codebooks are all zeros: every code would be 0
        layer.codebook.embed.normal_()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"dac": tiny_dac(root / "dac"), "encodec": tiny_encodec(root / "encodec")}


@pytest.fixture(scope="module")
def dac(folders: dict[str, Path]) -> DacTokenizer:
    return DacTokenizer.from_pretrained(folders["dac"])


@pytest.fixture(scope="module")
def encodec(folders: dict[str, Path]) -> EncodecTokenizer:
    return EncodecTokenizer.from_pretrained(folders["encodec"])


def test_contract(dac: DacTokenizer, encodec: EncodecTokenizer) -> None:
    assert isinstance(dac, Tokenizer) and dac.can_decode
    assert (dac.name, dac.sample_rate, dac.hop_length) == ("dac", 16000, 320)
    assert (dac.num_codebooks, dac.codebook_size, dac.frame_rate) == (4, 64, 50.0)
    assert (encodec.name, encodec.sample_rate, encodec.hop_length) == ("encodec", 24000, 320)
    assert (encodec.num_codebooks, encodec.codebook_size) == (4, 64)  # largest: 6 kbps not offered
    for tok in (dac, encodec):
        assert len(tok.version) == 16 and int(tok.version, 16) >= 0
        assert tok.info.to_dict()["version"] == tok.version


def test_version_follows_weights_not_folder(folders: dict[str, Path], tmp_path: Path) -> None:
    copy = shutil.copytree(folders["dac"], tmp_path / "renamed")
    other = tiny_dac(tmp_path / "other", seed=1)
    v = DacTokenizer.from_pretrained(folders["dac"]).version
    assert DacTokenizer.from_pretrained(copy).version == v
    assert DacTokenizer.from_pretrained(other).version != v


@pytest.mark.parametrize("which", ["dac", "encodec"])
@pytest.mark.parametrize("n", [1, 319, 320, 321, 4800, 4801])
def test_frame_rule(which: str, n: int, dac: DacTokenizer, encodec: EncodecTokenizer) -> None:
    tok = {"dac": dac, "encodec": encodec}[which]
    codes = tok.encode(0.1 * torch.randn(2, n))
    frames = math.ceil(n / tok.hop_length)
    assert (
        codes.shape == (2, tok.num_codebooks, frames) == (2, tok.num_codebooks, tok.num_frames(n))
    )
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < tok.codebook_size
    for k in range(1, tok.num_codebooks + 1):
        wav = tok.decode(codes[:, :k])
        assert wav.shape == (2, frames * tok.hop_length) and wav.dtype == torch.float32
        assert torch.isfinite(wav).all()


@pytest.mark.parametrize("which", ["dac", "encodec"])
def test_deterministic_and_shapes(
    which: str, folders: dict[str, Path], dac: DacTokenizer, encodec: EncodecTokenizer
) -> None:
    tok = {"dac": dac, "encodec": encodec}[which]
    wav = 0.3 * torch.randn(3200)
    codes = tok.encode(wav)  # [N] is a batch of one
    assert codes.shape == (1, tok.num_codebooks, 10)
    assert torch.equal(codes, tok.encode(wav[None, None]))  # [B, 1, N]
    assert len(codes.unique()) > 1  # random weights still give varied codes
    again = type(tok).from_pretrained(folders[which])
    assert torch.equal(again.encode(wav), codes)
    assert torch.equal(tok.decode(codes[:, :2]), again.decode(codes[:, :2]))
    with pytest.raises(SingsongError, match="codebooks"):
        tok.decode(torch.zeros(1, tok.num_codebooks + 1, 5, dtype=torch.long))
    with pytest.raises(SingsongError, match="out of range"):
        tok.decode(torch.full((1, 1, 5), tok.codebook_size))
    with pytest.raises(SingsongError, match="empty"):
        tok.encode(torch.zeros(1, 0))


def test_encodec_bandwidth(folders: dict[str, Path]) -> None:
    low = EncodecTokenizer.from_pretrained(folders["encodec"], bandwidth=0.9)
    full = EncodecTokenizer.from_pretrained(folders["encodec"], bandwidth=1.8)
    assert low.num_codebooks == 2 and full.num_codebooks == 4
    wav = 0.3 * torch.randn(1, 2400)
    assert torch.equal(low.encode(wav), full.encode(wav)[:, :2])  # residual VQ: a prefix
    with pytest.raises(SingsongError, match=r"bandwidth 3\.0"):
        EncodecTokenizer.from_pretrained(folders["encodec"], bandwidth=3.0)


def test_encodec_refuses_chunked_models(encodec: EncodecTokenizer) -> None:
    config = encodec.model.config
    old = config.chunk_length_s, config.overlap
    try:
        config.chunk_length_s, config.overlap = 1.0, 0.01
        with pytest.raises(SingsongError, match=r"chunk_length_s=1\.0"):
            EncodecTokenizer(model=encodec.model, version="x")
    finally:
        config.chunk_length_s, config.overlap = old


def test_clear_errors(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SingsongError, match="not found"):
        DacTokenizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(SingsongError, match=r"no config\.json"):
        DacTokenizer.from_pretrained(tmp_path)
    with pytest.raises(SingsongError, match="'encodec' model, not a 'dac'"):
        DacTokenizer.from_pretrained(folders["encodec"])
    with pytest.raises(SingsongError, match="'dac' model, not a 'encodec'"):
        EncodecTokenizer.from_pretrained(folders["dac"])
    (tmp_path / "config.json").write_text('{"model_type": "dac"')
    with pytest.raises(SingsongError, match="broken"):
        DacTokenizer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "dac"}')
    with pytest.raises(SingsongError, match="no weights"):
        DacTokenizer.from_pretrained(tmp_path)
    broken = shutil.copytree(folders["dac"], tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(SingsongError, match="cannot load the dac model"):
        DacTokenizer.from_pretrained(broken)


def test_missing_transformers(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(SingsongError, match=r"pip install 'singsong\[hf\]'"):
        DacTokenizer.from_pretrained(folders["dac"])


def test_frames_are_fitted_to_the_rule() -> None:
    from singsong.tokenizers.pretrained import _fit_frames

    codes = torch.arange(6).reshape(1, 2, 3)  # [B, K, T']
    assert torch.equal(_fit_frames(codes, 2), codes[..., :2])
    assert _fit_frames(codes, 5).tolist() == [[[0, 1, 2, 2, 2], [3, 4, 5, 5, 5]]]

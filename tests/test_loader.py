"""Tests for singsong.tokenizers.loader.load_tokenizer: dispatch on config.json."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never the hub

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from singsong.errors import SingsongError
from singsong.tokenizers.base import Tokenizer
from singsong.tokenizers.loader import load_tokenizer


class FakeCodec(Tokenizer):
    """What a singsong release folder of kind "codec" would load into."""

    name, version, sample_rate, hop_length, num_codebooks, codebook_size = (
        "fake", "1", 16000, 320, 2, 8,
    )  # fmt: skip

    def __init__(self, *, path: Path) -> None:
        self.path = path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> FakeCodec:
        return cls(path=Path(path))

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.zeros(1, 2, self.num_frames(wav.shape[-1]), dtype=torch.long)


def folder_with(tmp_path: Path, name: str, config: object) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_singsong_kind_dispatches_by_module_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("singsong.tokenizers.codec")
    fake.CodecTokenizer = FakeCodec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "singsong.tokenizers.codec", fake)
    folder = folder_with(tmp_path, "codec", {"kind": "codec", "version": "1", "config": {}})
    tok = load_tokenizer(folder)
    assert isinstance(tok, FakeCodec) and tok.path == folder


def test_backend_without_the_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules,
        "singsong.tokenizers.semantic",
        types.ModuleType("singsong.tokenizers.semantic"),
    )
    folder = folder_with(tmp_path, "sem", {"kind": "semantic", "config": {}})
    with pytest.raises(SingsongError, match="has no SemanticTokenizer"):
        load_tokenizer(folder)


def test_backend_not_importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "singsong.tokenizers.codec", None)  # import -> ImportError
    folder = folder_with(tmp_path, "codec", {"kind": "codec", "config": {}})
    with pytest.raises(SingsongError, match=r"singsong\.tokenizers\.codec is unavailable"):
        load_tokenizer(folder)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"kind": "stage1", "config": {}}, "'stage1' model, which is not a tokenizer"),
        ({"model_type": "bert"}, "'bert' model, which is not a supported codec"),
        ({"hello": 1}, "cannot tell what"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_refuses_what_it_cannot_load(tmp_path: Path, config: object, match: str) -> None:
    folder = folder_with(tmp_path, "x", config)
    with pytest.raises(SingsongError, match=match) as info:
        load_tokenizer(folder)
    if isinstance(config, dict):  # the message lists what is accepted
        for accepted in ("codec", "semantic", "dac", "encodec"):
            assert accepted in str(info.value)


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SingsongError, match="not found"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(SingsongError, match=r"no config\.json"):
        load_tokenizer(tmp_path)


def test_transformers_codecs(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from singsong.tokenizers.pretrained import DacTokenizer, EncodecTokenizer

    dac_config = transformers.DacConfig(
        encoder_hidden_size=2,
        downsampling_ratios=[4, 4],
        upsampling_ratios=[4, 4],
        decoder_hidden_size=4,
        hidden_size=4,
        n_codebooks=2,
        codebook_size=16,
        codebook_dim=2,
        sampling_rate=16000,
    )
    transformers.DacModel(dac_config).save_pretrained(tmp_path / "dac")
    encodec_config = transformers.EncodecConfig(
        num_filters=2,
        hidden_size=4,
        codebook_size=16,
        codebook_dim=4,
        num_lstm_layers=1,
        upsampling_ratios=[4, 4],
        sampling_rate=16000,
        target_bandwidths=[4.0],
    )
    transformers.EncodecModel(encodec_config).save_pretrained(tmp_path / "encodec")
    dac = load_tokenizer(tmp_path / "dac")
    assert isinstance(dac, DacTokenizer) and dac.hop_length == 16 and dac.num_codebooks == 2
    encodec = load_tokenizer(tmp_path / "encodec")
    assert isinstance(encodec, EncodecTokenizer) and encodec.hop_length == 16
    assert encodec.encode(torch.zeros(1, 100)).shape == (1, encodec.num_codebooks, 7)

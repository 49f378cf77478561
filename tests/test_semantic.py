"""Tests for the semantic tokenizer: features, k-means, artifacts, CLI, transformers backend."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from singsong.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from singsong.cli.semantic import add_semantic
from singsong.errors import SingsongError
from singsong.tokenizers import Tokenizer
from singsong.tokenizers.semantic import (
    HFFeatureConfig,
    MusicFeatures,
    SemanticConfig,
    SemanticTokenizer,
    assign,
    fit_kmeans,
    fit_semantic,
)

SR = 16_000
LENGTHS = [1, 639, 640, 641, 16000]


def tone(midi: float, seconds: float = 1.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    """A harmonic tone (5 partials) at MIDI pitch ``midi``: float32 [N]."""
    t = np.arange(round(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    wav = sum(amp / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 6))
    return np.asarray(wav, dtype=np.float32)


def training_audio() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    clips = [tone(m) for m in (48, 52, 55, 60, 64, 67)]
    clips.append((0.1 * rng.standard_normal(SR)).astype(np.float32))
    return clips


@pytest.fixture(scope="module")
def tokenizer() -> SemanticTokenizer:
    return fit_semantic(SemanticConfig(codebook_size=8), training_audio(), passes=10).tokenizer


# ---------------------------------------------------------------- features


@pytest.mark.parametrize("n", LENGTHS)
def test_music_features_frame_count(n: int) -> None:
    fx = MusicFeatures()
    feats = fx(torch.randn(2, n))
    assert feats.shape == (2, -(-n // 640), fx.dim)
    assert torch.isfinite(feats).all()


def test_music_features_segments_equal_one_pass() -> None:
    wav = torch.from_numpy(tone(57, 1.5))[None] + 0.01 * torch.randn(1, 24000)
    whole = MusicFeatures()(wav)
    fx = MusicFeatures()
    fx.segment_hops = 7  # many segments, each with its context
    torch.testing.assert_close(fx(wav), whole, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("midi", [45, 57, 62, 71])
def test_music_features_read_pitch(midi: int) -> None:
    fx = MusicFeatures()
    feats = fx(torch.from_numpy(tone(midi))[None])[0, 5:-5]  # [T, D]
    pitch, chroma = feats[:, :48].mean(0), feats[:, 48:60].mean(0)
    assert 36 + int(pitch.argmax()) == midi
    assert int(chroma.argmax()) == midi % 12


def test_silence_features_are_finite() -> None:
    feats = MusicFeatures()(torch.zeros(1, SR))
    assert torch.isfinite(feats).all()


# ---------------------------------------------------------------- k-means


def test_kmeans_recovers_separable_blobs() -> None:
    gen = torch.Generator().manual_seed(1)
    centers = torch.tensor([[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]])
    x = torch.cat([c + 0.3 * torch.randn(200, 3, generator=gen) for c in centers])
    truth = torch.arange(4).repeat_interleave(200)
    result = fit_kmeans(x, 4, seed=0)
    labels = assign(x, result.centroids)
    for blob in range(4):  # each blob is exactly one cluster, and clusters are distinct
        assert len(labels[truth == blob].unique()) == 1
    assert len(labels.unique()) == 4
    dist = torch.cdist(centers, result.centroids).min(1).values
    assert (dist < 0.2).all()


def test_kmeans_passes_improve_on_seeding() -> None:
    x = torch.randn(2000, 4, generator=torch.Generator().manual_seed(3))
    one, many = fit_kmeans(x, 16, passes=1), fit_kmeans(x, 16, passes=30)
    assert many.passes > 2 and many.inertia < 0.95 * one.inertia


def test_assign_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(2)
    x, c = torch.randn(1000, 6, generator=gen), torch.randn(32, 6, generator=gen)
    assert torch.equal(assign(x, c, chunk=77), torch.cdist(x, c).argmin(1))


def test_kmeans_survives_duplicate_points() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]).repeat(10, 1)
    result = fit_kmeans(x, 5, seed=0)
    assert torch.isfinite(result.centroids).all() and result.centroids.shape == (5, 2)


def test_kmeans_refuses_bad_input() -> None:
    with pytest.raises(SingsongError, match="at least 8 frames"):
        fit_kmeans(torch.randn(5, 2), 8)
    with pytest.raises(SingsongError, match="NaN"):
        fit_kmeans(torch.full((10, 2), float("nan")), 2)


# ---------------------------------------------------------------- tokenizer


def test_contract(tokenizer: SemanticTokenizer) -> None:
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.name == "singsong-semantic-music"
    assert (tokenizer.sample_rate, tokenizer.hop_length, tokenizer.frame_rate) == (SR, 640, 25.0)
    assert (tokenizer.num_codebooks, tokenizer.codebook_size) == (1, 8)
    assert not tokenizer.can_decode
    with pytest.raises(SingsongError, match="cannot decode"):
        tokenizer.decode(torch.zeros(1, 1, 4, dtype=torch.long))


@pytest.mark.parametrize("n", LENGTHS)
def test_encode_frame_count(tokenizer: SemanticTokenizer, n: int) -> None:
    codes = tokenizer.encode(0.1 * torch.randn(3, n))
    assert codes.shape == (3, 1, tokenizer.num_frames(n)) == (3, 1, -(-n // 640))
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 8


def test_encode_accepts_b1n_and_is_deterministic(tokenizer: SemanticTokenizer) -> None:
    wav = torch.from_numpy(tone(60, 2.0))[None]
    a = tokenizer.encode(wav)
    assert torch.equal(a, tokenizer.encode(wav[:, None]))
    assert torch.equal(a, tokenizer.encode(torch.cat([wav, wav]))[:1])


def test_fit_is_deterministic(tokenizer: SemanticTokenizer) -> None:
    again = fit_semantic(SemanticConfig(codebook_size=8), training_audio(), passes=10).tokenizer
    assert again.version == tokenizer.version
    assert torch.equal(again.centroids, tokenizer.centroids)


def test_codes_follow_pitch(tokenizer: SemanticTokenizer) -> None:
    codes = [int(tokenizer.encode(torch.from_numpy(tone(m))[None])[0, 0, 12]) for m in (48, 55)]
    assert codes[0] != codes[1]


@pytest.mark.parametrize(
    ("wav", "match"),
    [
        (torch.zeros(1, 0), "empty"),
        (torch.full((1, 100), float("nan")), "NaN"),
        (torch.zeros(1, 100, dtype=torch.int16), "float"),
        (torch.zeros(1, 2, 100), "mono"),
    ],
)
def test_bad_input(tokenizer: SemanticTokenizer, wav: torch.Tensor, match: str) -> None:
    with pytest.raises(SingsongError, match=match):
        tokenizer.encode(wav)


def test_save_load_round_trip(tokenizer: SemanticTokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = SemanticTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.info == tokenizer.info
    wav = torch.from_numpy(np.concatenate([tone(50), tone(62)]))[None]
    assert torch.equal(loaded.encode(wav), tokenizer.encode(wav))


def _edit_config(directory: Path, edit: dict) -> None:
    meta = json.loads((directory / CONFIG_FILE).read_text())
    for key, value in edit.items():
        target = meta
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    (directory / CONFIG_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"kind": "codec"}, "not a 'semantic'"),
        ({"version": "0"}, "format"),
        ({"config.dim": 5}, "features"),
        ({"config.codebook_size": 16}, "centroids has shape"),
        ({"config.music.n_mels": 24}, "features"),
        ({"config.surprise": 1}, "does not match"),
        ({"config.music.surprise": 1}, "does not match"),
        ({"config.music.pitch_weight": 3.0}, "inconsistent"),
    ],
)
def test_mismatched_artifact_refused(
    tokenizer: SemanticTokenizer, tmp_path: Path, edit: dict, match: str
) -> None:
    tokenizer.save_pretrained(tmp_path)
    _edit_config(tmp_path, edit)
    with pytest.raises(SingsongError, match=match):
        SemanticTokenizer.from_pretrained(tmp_path)


def test_broken_artifact_refused(tokenizer: SemanticTokenizer, tmp_path: Path) -> None:
    with pytest.raises(SingsongError, match="not a model folder"):
        SemanticTokenizer.from_pretrained(tmp_path / "missing")
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(SingsongError, match="broken weights"):
        SemanticTokenizer.from_pretrained(tmp_path)


# ---------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="singsong")
    add_semantic(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args))


def _fake_songbook(root: Path) -> None:
    for index, midi in zip((0, 1, 9), (55, 60, 64), strict=True):  # s0-00009 is held out
        song = root / f"s0-{index:05d}"
        song.mkdir(parents=True)
        (song / "meta.json").write_text(json.dumps({"duration": 1.0}))
        for stem, m in (("vocals", midi), ("drums", 40), ("bass", 36), ("other", midi + 4)):
            sf.write(song / f"{stem}.flac", tone(m, amp=0.1), SR)


def test_cli_fit_and_encode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_songbook(tmp_path / "songbook")
    out = tmp_path / "tok"
    argv = ["semantic", "fit", "--songbook", str(tmp_path / "songbook"), "--out", str(out)]
    assert _cli([*argv, "--k", "4", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sources"] == 2 and summary["k"] == 4  # the held-out song is not read
    audio = tmp_path / "in.wav"
    sf.write(audio, tone(57, 1.3, sr=44_100), 44_100)  # another rate: converted at the edge
    codes_dir = tmp_path / "codes"
    argv = ["semantic", "encode", str(audio), "--tokenizer", str(out), "--out", str(codes_dir)]
    assert _cli([*argv, "--quiet"]) == 0
    codes = np.load(codes_dir / "in.npy", allow_pickle=False)
    assert codes.dtype == np.uint16 and codes.shape == (1, 33)  # ceil(1.3 * 16000 / 640)
    assert _cli([*argv, "--quiet"]) == 0  # already encoded: skipped
    assert "skipped 1" in capsys.readouterr().err


def test_cli_encode_writes_sidecar(tokenizer: SemanticTokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path / "tok")
    audio = tmp_path / "a.flac"
    sf.write(audio, tone(60, 0.5), SR)
    out = tmp_path / "codes"
    assert _cli(["semantic", "encode", str(audio), "--tokenizer", str(tmp_path / "tok"),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    codes = np.load(out / "a.npy", allow_pickle=False)
    assert codes.dtype == np.uint16 and codes.shape == (1, 13)
    meta = json.loads((out / "a.json").read_text())
    assert meta["tokenizer"] == tokenizer.info.to_dict() and meta["frame_rate"] == 25.0


def test_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(SingsongError, match="--songbook"):
        _cli(["semantic", "fit", "--out", str(tmp_path / "t")])
    with pytest.raises(SingsongError, match="--model"):
        _cli(["semantic", "fit", "--out", str(tmp_path / "t"), "--mir1k", str(tmp_path),
              "--backend", "transformers"])  # fmt: skip
    with pytest.raises(SingsongError, match="manifest"):
        _cli(["semantic", "fit", "--out", str(tmp_path / "t"), "--mir1k", str(tmp_path)])


# ---------------------------------------------------------------- transformers backend


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("hubert")
    config = transformers.HubertConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    transformers.HubertModel(config).save_pretrained(path)
    return Path(path)


def test_transformers_backend(
    tiny_hubert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = SemanticConfig(
        backend="transformers", codebook_size=4, normalization="dim",
        hf=HFFeatureConfig(str(tiny_hubert), layer=1),
    )  # fmt: skip
    tok = fit_semantic(config, training_audio()[:3], passes=5).tokenizer
    assert tok.name == "singsong-semantic-transformers" and tok.extractor.dim == 16
    for n in LENGTHS:
        assert tok.encode(0.1 * torch.randn(2, n)).shape == (2, 1, -(-n // 640))
    # 50 Hz model frames are averaged in pairs: frame t = mean of model frames 2t and 2t + 1.
    wav = 0.1 * torch.randn(1, 6400)
    model = tok.extractor.model  # type: ignore[attr-defined]
    padded = torch.nn.functional.pad(wav, (40, 40))
    hidden = model(padded, output_hidden_states=True).hidden_states[1]  # [1, 20, 16]
    expected = hidden.reshape(1, 10, 2, 16).mean(2)
    torch.testing.assert_close(tok.extractor(wav), expected, rtol=1e-4, atol=1e-5)
    tok.save_pretrained(tmp_path / "tok")
    meta = json.loads((tmp_path / "tok" / CONFIG_FILE).read_text())
    assert meta["config"]["hf"] == {"model_path": str(tiny_hubert), "layer": 1,
                                    "trust_remote_code": False}  # fmt: skip
    assert (tmp_path / "tok" / WEIGHTS_FILE).stat().st_size < 2000  # not the model's weights
    loaded = SemanticTokenizer.from_pretrained(tmp_path / "tok")
    assert torch.equal(loaded.encode(wav), tok.encode(wav))


def test_transformers_backend_errors(tiny_hubert: Path, tmp_path: Path) -> None:
    hub_id = SemanticConfig(backend="transformers", hf=HFFeatureConfig("facebook/hubert-base"))
    with pytest.raises(SingsongError, match="no transformers model"):
        fit_semantic(hub_id, training_audio())
    with pytest.raises(SingsongError, match="layer must be"):
        fit_semantic(
            SemanticConfig(backend="transformers", hf=HFFeatureConfig(str(tiny_hubert), layer=9)),
            training_audio(),
        )


def test_cli_fit_transformers(
    tiny_hubert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_songbook(tmp_path / "songbook")
    argv = ["semantic", "fit", "--songbook", str(tmp_path / "songbook"),
            "--out", str(tmp_path / "t"), "--backend", "transformers",
            "--model", str(tiny_hubert), "--layer", "2", "--k", "3", "--quiet"]  # fmt: skip
    assert _cli(argv) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "singsong-semantic-transformers"
    assert SemanticTokenizer.from_pretrained(tmp_path / "t").config.hf.layer == 2  # type: ignore[union-attr]


def test_missing_transformers_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(SingsongError, match=r"pip install 'singsong\[hf\]'"):
        fit_semantic(SemanticConfig(backend="transformers", hf=HFFeatureConfig(str(tmp_path))), [])

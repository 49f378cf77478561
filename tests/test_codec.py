"""The acoustic codec: Tokenizer contract, round trips, release artifacts, errors, training."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from singsong.cli.codec import add_codec
from singsong.errors import SingsongError
from singsong.modules import istft_same, stft_same
from singsong.tokenizers.codec import Codec, CodecConfig, CodecTokenizer
from singsong.tokenizers.codec.losses import CodecLoss, LossWeights, si_sdr
from singsong.tokenizers.codec.train import TrainConfig, train

SR = 16000


def _signal(n: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    """A few decaying partials plus a little noise: [batch, n]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    out = []
    for _ in range(batch):
        f0 = 110 + 330 * torch.rand(1, generator=g)
        x = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 5))
        out.append(0.2 * x + 0.01 * torch.randn(n, generator=g))
    return torch.stack(out).float()


@pytest.fixture(scope="module")
def tok() -> CodecTokenizer:
    torch.manual_seed(0)
    model = Codec(CodecConfig.preset("debug")).train()
    model(_signal(6400, batch=4))  # fits the codebooks (k-means init)
    return CodecTokenizer(model)


def test_interface(tok: CodecTokenizer) -> None:
    assert tok.name == "singsong-codec" and tok.version.startswith("1-")
    assert (tok.sample_rate, tok.hop_length, tok.frame_rate) == (16000, 320, 50.0)
    assert (tok.num_codebooks, tok.codebook_size, tok.can_decode) == (12, 1024, True)
    assert tok.info.frame_rate == 50.0


@pytest.mark.parametrize("n", [1, 319, 320, 321, 16000])
def test_frame_counts(tok: CodecTokenizer, n: int) -> None:
    codes = tok.encode(_signal(n))
    assert codes.shape == (2, 12, math.ceil(n / 320)) == (2, 12, tok.num_frames(n))
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 1024


def test_accepts_mono_layouts(tok: CodecTokenizer) -> None:
    x = _signal(960, batch=1)
    ref = tok.encode(x)
    assert torch.equal(tok.encode(x[:, None]), ref) and torch.equal(tok.encode(x[0]), ref)


@pytest.mark.parametrize("levels", [1, 4, 12])
def test_round_trip_shapes(tok: CodecTokenizer, levels: int) -> None:
    codes = tok.encode(_signal(3300))
    wav = tok.decode(codes[:, :levels])
    assert wav.shape == (2, 11 * 320) and torch.isfinite(wav).all()


def test_deterministic(tok: CodecTokenizer) -> None:
    x = _signal(4000, seed=3)
    a = tok.encode(x)
    tok.decode(a)
    assert torch.equal(a, tok.encode(x))
    assert torch.equal(tok.decode(a), tok.decode(a))


def test_stft_pair_reconstructs() -> None:
    x = torch.randn(2, 3200)
    for n_fft in (640, 1280):
        w = torch.hann_window(n_fft)
        spec = stft_same(x, n_fft=n_fft, hop=320, window=w)
        assert spec.shape[-1] == 10
        y = istft_same(spec, n_fft=n_fft, hop=320, window=w)
        assert torch.allclose(x, y, atol=1e-4)


def test_save_load_round_trip(tok: CodecTokenizer, tmp_path: Path) -> None:
    x = _signal(5000, seed=4)
    tok.save_pretrained(tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "config.json").read_text())
    assert meta["kind"] == "codec" and meta["tokenizer"]["name"] == "singsong-codec"
    back = CodecTokenizer.from_pretrained(tmp_path / "c")
    assert back.version == tok.version
    assert torch.equal(back.encode(x), tok.encode(x))
    assert torch.allclose(back.decode(tok.encode(x)), tok.decode(tok.encode(x)))
    tok.save_pretrained(tmp_path / "half", dtype=torch.float16)
    half = CodecTokenizer.from_pretrained(tmp_path / "half")
    assert half.version == tok.version and half.encode(x).shape == tok.encode(x).shape


@pytest.mark.parametrize(
    "wav",
    [
        torch.zeros(2, 2, 320),  # stereo
        torch.zeros(1, 1, 1, 320),  # 4-D
        torch.zeros(1, 0),  # empty
        torch.full((1, 640), float("nan")),
        torch.zeros(1, 640, dtype=torch.int16),
    ],
)
def test_bad_audio(tok: CodecTokenizer, wav: torch.Tensor) -> None:
    with pytest.raises(SingsongError):
        tok.encode(wav)


@pytest.mark.parametrize(
    "codes",
    [
        torch.full((1, 12, 5), 1024),
        torch.full((1, 4, 5), -1),
        torch.zeros(1, 13, 5, dtype=torch.long),  # too many levels
        torch.zeros(1, 0, 5, dtype=torch.long),  # no level
        torch.zeros(12, 5, dtype=torch.long),  # no batch
        torch.zeros(1, 4, 5),  # float
    ],
)
def test_bad_codes(tok: CodecTokenizer, codes: torch.Tensor) -> None:
    with pytest.raises(SingsongError):
        tok.decode(codes)


def test_untrained_refused() -> None:
    with pytest.raises(SingsongError, match="untrained"):
        CodecTokenizer(Codec(CodecConfig.preset("debug"))).encode(torch.zeros(1, 320))


def test_broken_artifacts_refused(tok: CodecTokenizer, tmp_path: Path) -> None:
    with pytest.raises(SingsongError):
        CodecTokenizer.from_pretrained(tmp_path / "missing")
    good = tok.save_pretrained(tmp_path / "good")

    def variant(name: str, edit: dict | None = None, weights: bytes | None = None) -> Path:
        d = tmp_path / name
        d.mkdir()
        meta = json.loads((good / "config.json").read_text())
        for key, value in (edit or {}).items():
            if key == "config":
                meta["config"] |= value
            else:
                meta[key] = value
        (d / "config.json").write_text(json.dumps(meta))
        w = (good / "model.safetensors").read_bytes() if weights is None else weights
        (d / "model.safetensors").write_bytes(w)
        return d

    bad = [
        variant("kind", {"kind": "separator"}),
        variant("field", {"config": {"no_such_field": 1}}),
        variant("shape", {"config": {"latent_dim": 12}}),  # weights don't fit
        variant("decoder", {"config": {"decoder": "wavenet"}}),
        variant("format", {"version": "0-abc"}),
        variant("truncated", weights=(good / "model.safetensors").read_bytes()[:100]),
    ]
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text((good / "config.json").read_text())
    (tmp_path / "badjson").mkdir()
    (tmp_path / "badjson" / "config.json").write_text("{not json")
    for d in [*bad, tmp_path / "noweights", tmp_path / "badjson"]:
        with pytest.raises(SingsongError):
            CodecTokenizer.from_pretrained(d)


def test_training_steps_reduce_loss() -> None:
    torch.manual_seed(0)
    model = Codec(CodecConfig.preset("debug")).train()
    crit = CodecLoss(weights=LossWeights())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = _signal(4800, batch=4)
    full = torch.full((4,), 12)
    losses = []
    for _ in range(25):
        out = model(x, num_levels=full)
        loss, _ = crit(out.wav, x, out.commit_loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_si_sdr() -> None:
    x = _signal(3200)
    assert (si_sdr(0.5 * x, x) > 80).all()
    assert (si_sdr(x + 0.1 * x.std() * torch.randn_like(x), x) - 20).abs().max() < 1.0


def _songbook(root: Path) -> Path:
    """Two tiny songs (one train, one held out) with all five stems."""
    for i, song in enumerate(("s0-00000", "s0-00009")):
        d = root / song
        d.mkdir(parents=True)
        (d / "meta.json").write_text("{}")
        stems = _signal(16000, seed=i, batch=4).numpy()
        for stem, wav in zip(("vocals", "drums", "bass", "other"), stems, strict=True):
            sf.write(d / f"{stem}.flac", wav, SR)
        sf.write(d / "mixture.flac", stems.sum(0) / 4, SR)
    return root


def test_train_resume_and_cli(tmp_path: Path) -> None:
    songbook = _songbook(tmp_path / "songbook")
    run = tmp_path / "run"
    cfg = TrainConfig.preset("debug")
    kw = dict(config=CodecConfig.preset("debug"), train_config=cfg, songbook=songbook, mir1k=None)
    release = train(run, minutes=0.01, quiet=True, **kw)  # type: ignore[arg-type]
    for name in ("checkpoint.pt", "log.csv", "curves.png"):
        assert (run / name).is_file()
    with pytest.raises(SingsongError, match="resume"):
        train(run, minutes=0.02, quiet=True, **kw)  # type: ignore[arg-type]
    steps = len((run / "log.csv").read_text().splitlines())
    train(run, minutes=0.02, quiet=True, resume=True, **kw)  # type: ignore[arg-type]
    assert len((run / "log.csv").read_text().splitlines()) > steps

    parser = argparse.ArgumentParser()
    add_codec(parser.add_subparsers(dest="command"))

    def cli(*argv: str) -> int:
        args = parser.parse_args(["codec", *map(str, argv)])
        return int(args.run(args))

    audio = tmp_path / "in.wav"
    sf.write(audio, _signal(8000, batch=1)[0].numpy(), SR)
    codes = tmp_path / "codes.npy"
    assert cli("encode", audio, "-o", codes, "--codec", release) == 0
    arr = np.load(codes)
    assert arr.dtype == np.uint16 and arr.shape == (12, 25)
    assert json.loads(codes.with_suffix(".json").read_text())["num_samples"] == 8000
    out = tmp_path / "out.wav"
    assert cli("decode", codes, "-o", out, "--codec", release, "--levels", "4") == 0
    assert sf.info(str(out)).frames == 8000
    other = tmp_path / "other"
    CodecTokenizer(Codec(CodecConfig.preset("debug")).train(), version="1-other")
    meta = json.loads(codes.with_suffix(".json").read_text())
    meta["tokenizer"]["version"] = "1-other"
    codes.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(SingsongError, match="re-encode"):
        cli("decode", codes, "-o", other.with_suffix(".wav"), "--codec", release)


@pytest.mark.parametrize("adversarial", [True, False])
def test_finetune_decoder_keeps_the_codes(tmp_path: Path, adversarial: bool) -> None:
    from singsong.tokenizers.codec.finetune import FinetuneConfig, finetune_decoder

    songbook = _songbook(tmp_path / "songbook")
    torch.manual_seed(0)
    model = Codec(CodecConfig.preset("debug")).train()
    model(_signal(6400, batch=4))
    before = CodecTokenizer(model, version="1-mine").save_pretrained(tmp_path / "before")
    cfg = FinetuneConfig(batch_size=2, threads=1, decoder_lr=1e-3)
    if not adversarial:
        cfg = dataclasses.replace(cfg, adv_weight=0.0, fm_weight=0.0)
    after = finetune_decoder(before, tmp_path / "after", songbook=songbook, mir1k=None,
                             minutes=5.0, max_steps=3, config=cfg, quiet=True)  # fmt: skip
    old, new = CodecTokenizer.from_pretrained(before), CodecTokenizer.from_pretrained(after)
    assert new.version == old.version == "1-mine"  # stage models trained on it stay valid
    x = _signal(3200, seed=5, batch=1)
    codes = old.encode(x)
    assert torch.equal(new.encode(x), codes)  # encoder and quantizer frozen
    assert not torch.allclose(new.decode(codes), old.decode(codes))  # the decoder learned
    with pytest.raises(SingsongError, match="training audio"):
        finetune_decoder(before, tmp_path / "x", songbook=None, mir1k=None, minutes=1.0)
    with pytest.raises(SingsongError, match="not both"):
        finetune_decoder(before, tmp_path / "x", songbook=songbook, mir1k=None, audio=songbook,
                         minutes=1.0)  # fmt: skip
    if not adversarial:  # the command line, briefly: a folder of audio, exports kept, fp16
        parser = argparse.ArgumentParser()
        add_codec(parser.add_subparsers(dest="command"))

        def cli(*extra: str) -> int:
            argv = ["codec", "finetune", "--codec", str(before), "--out", str(tmp_path / "cli"),
                    "--audio", str(songbook), "--minutes", "0.001", "--no-adversarial",
                    "--threads", "1", "--quiet", *extra]  # fmt: skip
            args = parser.parse_args(argv)
            return int(args.run(args))

        assert cli("--set", "batch_size=2", "--set", "save_minutes=1e-9", "--keep-exports",
                   "--fp16") == 0  # fmt: skip
        assert CodecTokenizer.from_pretrained(tmp_path / "cli").version == "1-mine"
        kept = sorted((tmp_path / "cli").glob("step-*"))
        assert kept and kept[0].name == "step-000001"  # an export after every step
        with safe_open(str(kept[0] / "model.safetensors"), "pt") as f:
            assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
        for bad, why in [("nope=1", "KEY one of"), ("batch_size=x", "not a valid"),
                         ("batch_size=0", "positive"), ("decoder_lr", "KEY=VALUE")]:  # fmt: skip
            with pytest.raises(SingsongError, match=why):
                cli("--set", bad)
        with pytest.raises(SingsongError, match="unknown device"):
            cli("--device", "gpu")
        if not torch.cuda.is_available():
            with pytest.raises(SingsongError, match="no CUDA GPU"):
                cli("--device", "cuda")


def test_folder_crops(tmp_path: Path) -> None:
    from singsong.tokenizers.codec.data import FolderCrops

    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "one.flac", _signal(SR, seed=1, batch=1)[0].numpy(), SR)
    sf.write(tmp_path / "two.wav", _signal(SR // 2, seed=2, batch=1)[0].numpy(), SR)
    (tmp_path / "notes.txt").write_text("not audio")
    crops = FolderCrops(tmp_path, seed=3)
    assert crops.seconds == pytest.approx(1.5)
    batch = crops.batch(4, 4000)
    assert batch.shape == (4, 4000) and batch.dtype == np.float32
    assert 0 < np.abs(batch).max() <= 0.99
    np.testing.assert_array_equal(FolderCrops(tmp_path, seed=3).batch(4, 4000), batch)
    assert not np.array_equal(FolderCrops(tmp_path, seed=4).batch(4, 4000), batch)
    long = crops.crop(3 * SR)  # longer than any file: zero-padded at the end
    assert long.shape == (3 * SR,) and not long[-SR:].any()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SingsongError, match="no audio files"):
        FolderCrops(tmp_path / "empty")


def test_discriminator_shapes_and_losses() -> None:
    from singsong.tokenizers.codec.adversarial import (
        MultiResolutionDiscriminator,
        discriminator_loss,
        generator_losses,
    )

    torch.manual_seed(0)
    disc = MultiResolutionDiscriminator(ffts=(64, 128), channels=4)
    real, fake = _signal(3200, seed=1), torch.randn(2, 3200, requires_grad=True)
    outs = disc(real)
    assert len(outs) == 2 and all(logits.shape[:2] == (2, 1) for logits, _ in outs)
    assert len(outs[0][1]) == 5  # features of every conv layer
    d = discriminator_loss(disc, real, fake)
    d.backward()
    assert fake.grad is None  # the discriminator's step does not reach the generator
    adv, fm = generator_losses(disc, real, fake)
    (adv + fm).backward()
    assert fake.grad is not None and fm.item() > 0
    _, same = generator_losses(disc, real, real)
    assert same.item() == 0.0  # matching features of the real audio itself cost nothing

"""Tests for singsong.tokenizers.shards and ``singsong tokenize``, with stand-in tokenizers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from singsong import SAMPLE_RATE
from singsong.audio import load_audio, resample
from singsong.cli.tokenize import add_tokenize
from singsong.errors import SingsongError
from singsong.tokenizers import shards
from singsong.tokenizers.base import Tokenizer, TokenizerInfo, as_batch
from singsong.tokenizers.shards import read_manifest, tokenize_manifest
from singsong.tokenizers.token_dataset import TokenDataset


class RmsTokenizer(Tokenizer):
    """Deterministic and frame-local: level k of frame t is a function of that frame's RMS, so
    encoding a hop-aligned slice gives exactly the matching frames of the whole clip."""

    def __init__(
        self,
        *,
        name: str,
        hop: int,
        num_codebooks: int,
        sample_rate: int = SAMPLE_RATE,
        codebook_size: int = 1024,
        version: str = "1",
    ) -> None:
        self.name, self.version, self.hop_length = name, version, hop
        self.sample_rate, self.num_codebooks, self.codebook_size = (
            sample_rate,
            num_codebooks,
            codebook_size,
        )
        self.calls = 0

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        batch = as_batch(wav, hop_length=self.hop_length)  # [B, N']
        frames = batch.reshape(batch.shape[0], -1, self.hop_length)  # [B, T, hop]
        level = (frames.pow(2).mean(-1).sqrt() * 4096).long()  # [B, T]
        k = torch.arange(self.num_codebooks)[None, :, None]  # [1, K, 1]
        return (level[:, None] * (k + 1) + k) % self.codebook_size  # [B, K, T]


def semantic_tok(**kw: object) -> RmsTokenizer:
    return RmsTokenizer(name="rms-semantic", hop=640, num_codebooks=1, **kw)  # type: ignore[arg-type]


def acoustic_tok(**kw: object) -> RmsTokenizer:
    return RmsTokenizer(name="rms-acoustic", hop=320, num_codebooks=4, **kw)  # type: ignore[arg-type]


def expect() -> dict[str, TokenizerInfo]:
    return {"semantic": semantic_tok().info, "acoustic": acoustic_tok().info}


def noise(seconds: float, seed: int) -> np.ndarray:
    """Noise with a random envelope (so codes change from frame to frame): [N]."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    env = np.repeat(rng.uniform(0.05, 0.6, n // 160 + 1), 160)[:n]
    return (env * rng.uniform(-1, 1, n)).astype(np.float32)


def make_manifest(tmp_path: Path, rows: list[dict] | None = None, songs: int = 3) -> Path:
    """Songs of 2 s (vocals + instrumental files) and 2 clips each: whole song and [0.4, 1.6)."""
    audio = tmp_path / "audio"
    audio.mkdir(exist_ok=True)
    if rows is None:
        rows = []
        for s in range(songs):
            for stem, seed in (("vocals", 2 * s), ("instrumental", 2 * s + 1)):
                sf.write(audio / f"s{s}-{stem}.wav", noise(2.0, seed), SAMPLE_RATE, "FLOAT")
            pair = {
                "vocals": f"audio/s{s}-vocals.wav",
                "instrumental": f"audio/s{s}-instrumental.wav",
            }
            rows.append({"id": f"s{s}-a", **pair, "song": f"s{s}"})
            rows.append({"id": f"s{s}-b", **pair, "offset": 0.4, "duration": 1.2, "song": f"s{s}"})
    path = tmp_path / "clips.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(manifest: Path, out: Path, **kw: object) -> dict:
    args: dict = {"semantic": semantic_tok(), "acoustic": acoustic_tok(), "progress": False}
    return tokenize_manifest(manifest, out=out, **(args | kw))


def direct(clip: shards.Clip, tok: Tokenizer) -> dict[str, torch.Tensor]:
    """Codes [K, T] of the clip's vocals and instrumental, encoded straight from the files."""
    result = {}
    for source in ("vocals", "instrumental"):
        wav = load_audio(getattr(clip, source))
        start = round(clip.offset * SAMPLE_RATE)
        end = len(wav) if clip.duration is None else start + round(clip.duration * SAMPLE_RATE)
        seg = resample(wav[start:end], SAMPLE_RATE, tok.sample_rate)
        result[source] = tok.encode(torch.from_numpy(seg))[0]
    return result


def test_round_trip_equals_direct_encoding(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    summary = run(manifest, tmp_path / "tok", shard_size=4)
    assert summary["clips"] == summary["tokenized"] == 6 and summary["failed"] == []
    assert summary["shards_written"] == 2
    ds = TokenDataset(tmp_path / "tok", expect=expect())
    assert len(ds) == 6 and ds.ids == [c.id for c in read_manifest(manifest)]
    for clip in read_manifest(manifest):
        got = ds.clip(clip.id)
        for role, tok in (("semantic", semantic_tok()), ("acoustic", acoustic_tok())):
            want = direct(clip, tok)
            for source in ("vocals", "instrumental"):
                codes = got[f"{source}_{role}"]
                assert codes.dtype == torch.int64
                assert torch.equal(codes, want[source])
    assert got["vocals_semantic"].shape == (1, 30)  # 1.2 s at 25 Hz
    assert got["vocals_acoustic"].shape == (4, 60)  # ... and at 50 Hz
    for npy in (tmp_path / "tok").glob("shard-*/*.npy"):
        arr = np.load(npy, allow_pickle=False)
        assert arr.dtype == np.uint16 and arr.ndim == 2
    meta = json.loads((tmp_path / "tok" / "tokens.json").read_text())
    assert meta["tokenizers"]["acoustic"] == acoustic_tok().info.to_dict()
    assert meta["complete"] and [c["id"] for c in meta["clips"]] == ds.ids
    assert meta["clips"][1]["provenance"]["song"] == "s0"  # extra manifest fields are kept
    assert not (tmp_path / "tok" / ".partial").exists()


def test_vocal_levels_and_resampling(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, songs=1)
    slow = RmsTokenizer(name="rms-8k", hop=160, num_codebooks=4, sample_rate=8000)
    run(manifest, tmp_path / "tok", acoustic=slow, vocal_levels=2)
    ds = TokenDataset(tmp_path / "tok", expect={"acoustic": slow.info})
    assert set(ds[0]) == {"vocals_acoustic", "instrumental_acoustic"}  # only expected roles
    assert ds[0]["vocals_acoustic"].shape == (2, 100)  # 2 s at 8 kHz / 160
    assert ds[0]["instrumental_acoustic"].shape == (4, 100)
    want = direct(read_manifest(manifest)[0], slow)
    assert torch.equal(ds[0]["vocals_acoustic"], want["vocals"][:2])
    with pytest.raises(SingsongError, match="vocal levels"):
        run(manifest, tmp_path / "tok2", vocal_levels=5)


def test_streams_narrow_what_is_served(tmp_path: Path) -> None:
    run(make_manifest(tmp_path, songs=1), tmp_path / "tok")
    for f in (tmp_path / "tok").glob("shard-*/vocals*.npy"):
        f.unlink()  # a copy with the instrumental streams alone: never opened, not needed
    ds = TokenDataset(tmp_path / "tok", expect=expect(), streams={"instrumental_acoustic"})
    assert set(ds[0]) == {"instrumental_acoustic"}
    other = tmp_path / "other"  # two folders read as one are narrowed alike
    other.mkdir()
    rows = [json.loads(r) for r in make_manifest(other, songs=1).read_text().splitlines()]
    renamed = "".join(json.dumps(r | {"id": "x" + r["id"]}) + "\n" for r in rows)
    (other / "clips.jsonl").write_text(renamed)
    run(other / "clips.jsonl", other / "tok")
    both = TokenDataset([tmp_path / "tok", other / "tok"], expect=expect(),
                        streams={"instrumental_acoustic"})  # fmt: skip
    assert set(both.streams) == {"instrumental_acoustic"} and len(both) == 2 * len(ds)
    window = next(iter(ds.windows(seconds=0.4, seed=0)))
    assert set(window) == {"id", "start", "instrumental_acoustic"}
    with pytest.raises(SingsongError, match="cannot read token shard"):  # a stream it needs
        TokenDataset(tmp_path / "tok", expect=expect(), streams={"vocals_semantic"})[0]
    with pytest.raises(SingsongError, match="hold no stream nope"):
        TokenDataset(tmp_path / "tok", expect=expect(), streams={"nope"})


def test_slim_copy_keeps_what_a_model_reads(tmp_path: Path) -> None:
    from singsong.tokenizers.slim import slim_copy

    run(make_manifest(tmp_path, songs=1), tmp_path / "tok")
    keep = {"instrumental_semantic", "instrumental_acoustic"}
    slim = slim_copy(tmp_path / "tok", tmp_path / "slim", streams=keep,
                     levels={"instrumental_acoustic": 2})  # fmt: skip
    assert {p.name for p in slim.glob("shard-*/*.npy")} == {f"{s}.npy" for s in keep}
    full = TokenDataset(tmp_path / "tok", expect=expect())
    thin = TokenDataset(slim, expect=expect(), streams=keep)
    assert thin.ids == full.ids
    for i in range(len(full)):
        assert torch.equal(thin[i]["instrumental_semantic"], full[i]["instrumental_semantic"])
        assert torch.equal(thin[i]["instrumental_acoustic"], full[i]["instrumental_acoustic"][:2])
    for kw, why in [({"streams": {"nope"}}, "holds no stream nope"),
                    ({"streams": keep, "levels": {"vocals_acoustic": 1}}, "not kept"),
                    ({"streams": keep, "levels": {"instrumental_acoustic": 99}}, "cannot keep"),
                    ({"streams": keep}, "exists")]:  # fmt: skip
        with pytest.raises(SingsongError, match=why):
            slim_copy(tmp_path / "tok", slim, **kw)  # type: ignore[arg-type]


def test_windows_are_aligned(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    run(manifest, tmp_path / "tok")
    ds = TokenDataset(tmp_path / "tok", expect=expect())
    clips = {c.id: c for c in read_manifest(manifest)}
    windows = list(ds.windows(seconds=0.4, seed=3))
    # 2 s clips hold 5 windows of 0.4 s, the 1.2 s clips 3
    assert len(windows) == 3 * (5 + 3)
    for w in windows:
        assert w["vocals_semantic"].shape == (1, 10) and w["instrumental_semantic"].shape == (1, 10)
        assert w["vocals_acoustic"].shape == (4, 20) and w["instrumental_acoustic"].shape == (4, 20)
        clip = clips[w["id"]]
        start = clip.offset + w["start"]
        window = shards.Clip(clip.id, clip.vocals, clip.instrumental, start, 0.4, {})
        for role, tok in (("semantic", semantic_tok()), ("acoustic", acoustic_tok())):
            want = direct(window, tok)
            assert torch.equal(w[f"vocals_{role}"], want["vocals"])
            assert torch.equal(w[f"instrumental_{role}"], want["instrumental"])
    again = [(w["id"], w["start"]) for w in ds.windows(seconds=0.4, seed=3)]
    assert again == [(w["id"], w["start"]) for w in windows]  # seeded
    stream = ds.windows(seconds=0.4, seed=3)
    stream.set_epoch(1)
    assert [(w["id"], w["start"]) for w in stream] != again
    with pytest.raises(SingsongError, match=r"multiple of 0\.04"):
        ds.windows(seconds=0.05)
    batch = next(iter(torch.utils.data.DataLoader(ds.windows(seconds=0.4), batch_size=4)))
    assert batch["vocals_acoustic"].shape == (4, 4, 20)


def test_ddp_sharding_partitions_clips(tmp_path: Path) -> None:
    run(make_manifest(tmp_path), tmp_path / "tok")  # 6 clips
    ds = TokenDataset(tmp_path / "tok", expect=expect())
    for world in (2, 3, 4):
        parts = [
            {w["id"] for w in ds.windows(seconds=0.4, rank=r, world_size=world)}
            for r in range(world)
        ]
        assert all(len(p) == 6 // world for p in parts)  # equal clip counts (remainder dropped)
        assert len(set().union(*parts)) == sum(len(p) for p in parts)  # disjoint
        if 6 % world == 0:
            assert set().union(*parts) == set(ds.ids)
    with pytest.raises(SingsongError, match="rank"):
        ds.windows(seconds=0.4, rank=2, world_size=2)


def test_resume_skips_finished_shards(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    out = tmp_path / "tok"
    run(manifest, out, shard_size=2)
    before = {p: p.stat().st_mtime_ns for p in out.glob("shard-*/*")}
    sem, ac = semantic_tok(), acoustic_tok()
    summary = run(manifest, out, shard_size=2, semantic=sem, acoustic=ac)
    assert summary["shards_skipped"] == 3 and summary["shards_written"] == 0
    assert sem.calls == ac.calls == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("shard-*/*")} == before
    (out / "shard-00001" / "index.json").unlink()  # a damaged shard is redone
    summary = run(manifest, out, shard_size=2, semantic=sem, acoustic=ac)
    assert summary["shards_written"] == 1 and sem.calls == 2 and summary["tokenized"] == 6
    # another shard size re-plans every shard; shards no longer planned are removed
    summary = run(manifest, out, shard_size=4)
    assert summary["shards_written"] == 2 and not (out / "shard-00002").exists()
    assert len(TokenDataset(out, expect=expect())) == 6


def test_refuses_other_tokenizers(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, songs=1)
    out = tmp_path / "tok"
    run(manifest, out)
    other = expect() | {"acoustic": acoustic_tok(version="2").info}
    with pytest.raises(SingsongError, match=r"refusing.*version"):
        TokenDataset(out, expect=other)
    layout = expect() | {
        "semantic": RmsTokenizer(name="rms-semantic", hop=320, num_codebooks=1).info
    }
    with pytest.raises(SingsongError, match="hop_length"):
        TokenDataset(out, expect=layout)
    with pytest.raises(SingsongError, match=r"acoustic version: '1' -> '2'"):
        run(manifest, out, acoustic=acoustic_tok(version="2"))
    with pytest.raises(SingsongError, match="not a token folder"):
        TokenDataset(tmp_path, expect=expect())
    meta = json.loads((out / "tokens.json").read_text())
    (out / "tokens.json").write_text(json.dumps(meta | {"complete": False}))
    with pytest.raises(SingsongError, match="did not finish"):
        TokenDataset(out, expect=expect())
    with pytest.raises(SingsongError, match="uint16"):
        run(manifest, tmp_path / "big", acoustic=acoustic_tok(codebook_size=70_000))


def test_broken_clip_is_counted_not_fatal(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, songs=2)
    (tmp_path / "audio" / "bad.wav").write_text("not audio")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows.insert(1, rows[0] | {"id": "broken", "vocals": "audio/bad.wav"})
    rows.insert(2, rows[0] | {"id": "late", "offset": 5.0})
    rows.insert(3, rows[0] | {"id": "long", "duration": 3.0})
    make_manifest(tmp_path, rows=rows)
    summary = run(manifest, tmp_path / "tok", shard_size=4)
    assert summary["tokenized"] == 4
    assert [f["id"] for f in summary["failed"]] == ["broken", "late", "long"]
    assert "past the end" in summary["failed"][1]["error"]
    ds = TokenDataset(tmp_path / "tok", expect=expect())
    assert ds.ids == ["s0-a", "s0-b", "s1-a", "s1-b"]
    sem = semantic_tok()
    summary = run(manifest, tmp_path / "tok", shard_size=4, semantic=sem)
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 1  # failures retried


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no clips"),
        ("{not json\n", r"clips.jsonl:1: not a JSON line"),
        ("[1, 2]\n", "JSON object"),
        ('{"vocals": "a.wav", "instrumental": "b.wav"}\n', "'id'"),
        ('{"id": "x", "instrumental": "b.wav"}\n', "'vocals'"),
        ('{"id": "x", "vocals": "a", "instrumental": "b", "offset": -1}\n', "offset"),
        ('{"id": "x", "vocals": "a", "instrumental": "b", "duration": 0}\n', "duration"),
        ('{"id": "x", "vocals": "a", "instrumental": "b"}\n' * 2, r":2: duplicate clip id"),
    ],
)
def test_bad_manifest(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "clips.jsonl").write_text(text)
    with pytest.raises(SingsongError, match=match):
        run(tmp_path / "clips.jsonl", tmp_path / "tok")
    assert not (tmp_path / "tok").exists()


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(SingsongError, match="manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import singsong.tokenizers.loader as loader

    fakes = {"sem": semantic_tok(), "ac": acoustic_tok()}
    monkeypatch.setattr(loader, "load_tokenizer", lambda path: fakes[Path(path).name])
    parser = argparse.ArgumentParser()
    add_tokenize(parser.add_subparsers(dest="command"))
    manifest = make_manifest(tmp_path, songs=1)
    argv = [str(manifest), "--semantic", "sem", "--acoustic", "ac", "--out", str(tmp_path / "t")]
    args = parser.parse_args(
        ["tokenize", *argv, "--shard-size", "1", "--vocal-levels", "2", "--quiet"]
    )
    assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tokenized"] == 2 and summary["failed"] == 0 and summary["shards_written"] == 2
    ds = TokenDataset(tmp_path / "t", expect=expect())
    assert ds[0]["vocals_acoustic"].shape[0] == 2


def test_noisy_vocal_streams_and_splits(tmp_path: Path) -> None:
    rows = []
    make_manifest(tmp_path, songs=2)
    for song, (kind, track) in enumerate([("mir1k", "Ani_1_01"), ("songbook", "s0-00001")]):
        pair = {
            "vocals": f"audio/s{song}-vocals.wav",
            "instrumental": f"audio/s{song}-instrumental.wav",
        }
        rows.append({"id": f"c{song}", **pair, "source_kind": kind, "track": track})
    manifest = make_manifest(tmp_path, rows)
    spec = shards.NoiseSpec((10.0, 30.0), seed=0)
    run(manifest, tmp_path / "a", noise=spec)
    run(manifest, tmp_path / "b", noise=spec)
    meta = json.loads((tmp_path / "a" / "tokens.json").read_text())
    assert meta["streams"]["vocals_noisy_acoustic"]["noise_snr_db"] == [10.0, 30.0]
    a, b = (TokenDataset(tmp_path / d, expect=expect()) for d in ("a", "b"))
    for i in range(2):
        assert all(torch.equal(a[i][s], b[i][s]) for s in a.streams)  # same seed, same codes
        noisy, clean = a[i]["vocals_noisy_acoustic"], a[i]["vocals_acoustic"]
        assert noisy.shape == clean.shape and not torch.equal(noisy, clean)
    # the noise depends on the clip id, not on what else the manifest holds
    (tmp_path / "x").mkdir()
    only = make_manifest(
        tmp_path / "x", [rows[1] | {k: f"../{rows[1][k]}" for k in ("vocals", "instrumental")}]
    )
    run(only, tmp_path / "c", noise=spec)
    c = TokenDataset(tmp_path / "c", expect=expect())
    assert torch.equal(c.clip("c1")["vocals_noisy_acoustic"], a.clip("c1")["vocals_noisy_acoustic"])
    # splits: MIR-1K singer Ani is held out; songbook song 1 is a training song
    run(manifest, tmp_path / "valid", split="valid")
    assert TokenDataset(tmp_path / "valid", expect=expect()).ids == ["c0"]
    run(manifest, tmp_path / "train", split="train")
    assert TokenDataset(tmp_path / "train", expect=expect()).ids == ["c1"]
    (tmp_path / "y").mkdir()
    with pytest.raises(SingsongError, match="source_kind"):
        run(make_manifest(tmp_path / "y", songs=1), tmp_path / "d", split="train")
    with pytest.raises(SingsongError, match="SNR range"):
        shards.NoiseSpec((30.0, 10.0))


def test_cli_default_noise_is_the_training_range() -> None:
    from singsong.cli.tokenize import DEFAULT_NOISE_SNR_DB
    from singsong.models.noise import TRAIN_SNR_DB

    assert DEFAULT_NOISE_SNR_DB == TRAIN_SNR_DB

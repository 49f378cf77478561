"""Tests for singsong.training: the generic trainer, its config, checkpoints, DDP and the CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from singsong import SAMPLE_RATE
from singsong.cli.train import main as train_main
from singsong.errors import SingsongError
from singsong.models.noise import TRAIN_SNR_DB
from singsong.models.renderer import RendererModel
from singsong.models.stage1 import Stage1Config, Stage1Model
from singsong.models.stage2 import Stage2Model
from singsong.tokenizers.base import TokenizerInfo
from singsong.tokenizers.token_dataset import TokenDataset
from singsong.training import TrainConfig, Trainer, load_run_config, train_stage
from singsong.training.trainer import CHECKPOINT_FILE

VOCAB = 64  # small codebooks: the debug models are sized to the folder's vocabularies
SEMANTIC = TokenizerInfo("fake-semantic", "1", SAMPLE_RATE, 640, 1, VOCAB)  # 25 Hz
ACOUSTIC = TokenizerInfo("fake-acoustic", "1", SAMPLE_RATE, 320, 12, VOCAB)  # 50 Hz
EXPECT = {"semantic": SEMANTIC, "acoustic": ACOUSTIC}


def make_tokens(
    folder: Path,
    *,
    clips: int = 8,
    seconds: float = 2.0,
    seed: int = 0,
    noise_snr: tuple[float, float] | None = TRAIN_SNR_DB,
    prefix: str = "clip",
) -> Path:
    """A token folder as ``tokenize_manifest`` writes it, with learnable synthetic codes: the
    instrumental's codes are a fixed function of the vocals' (so the loss can fall). With
    ``noise_snr``, ``vocals_noisy_*`` streams too (here: the vocal codes, a few changed)."""
    rng = np.random.default_rng(seed)
    t = round(seconds * 25)
    streams: dict[str, dict[str, object]] = {}
    sources = ("vocals", "instrumental") + (("vocals_noisy",) if noise_snr else ())
    for source in sources:
        for role, k in (("semantic", 1), ("acoustic", 12 if source == "instrumental" else 4)):
            streams[f"{source}_{role}"] = {"source": source, "tokenizer": role, "num_codebooks": k}
            if source == "vocals_noisy" and noise_snr is not None:
                streams[f"{source}_{role}"] |= {"noise_snr_db": list(noise_snr), "noise_seed": 0}
    arrays: dict[str, list[np.ndarray]] = {s: [] for s in streams}
    rows = []
    for i in range(clips):
        sem = rng.integers(0, VOCAB, (t, 1))
        ac = np.repeat(sem, 2, axis=0) * np.arange(1, 13) % VOCAB  # [2T, 12]
        arrays["vocals_semantic"].append(sem)
        arrays["vocals_acoustic"].append(ac[:, :4])
        arrays["instrumental_semantic"].append((sem * 5 + 3) % VOCAB)
        arrays["instrumental_acoustic"].append((ac * 7 + 1) % VOCAB)
        frames = {"vocals_semantic": t, "vocals_acoustic": 2 * t, "instrumental_semantic": t,
                  "instrumental_acoustic": 2 * t}  # fmt: skip
        if noise_snr:
            flip = rng.random(sem.shape) < 0.1  # noise changes a few codes
            arrays["vocals_noisy_semantic"].append(np.where(flip, (sem + 1) % VOCAB, sem))
            arrays["vocals_noisy_acoustic"].append(ac[:, :4])
            frames |= {"vocals_noisy_semantic": t, "vocals_noisy_acoustic": 2 * t}
        rows.append({"id": f"{prefix}{i}", "frames": frames})
    infos = {role: info.to_dict() for role, info in EXPECT.items()}
    shard = folder / "shard-00000"
    shard.mkdir(parents=True)
    for s, parts in arrays.items():
        np.save(shard / f"{s}.npy", np.concatenate(parts).astype(np.uint16))
    index = {"tokenizers": infos, "streams": streams, "clips": rows, "failed": []}
    (shard / "index.json").write_text(json.dumps(index))
    meta = {"format": "singsong-tokens", "format_version": 1, "complete": True}
    meta |= {"tokenizers": infos, "streams": streams, "shards": ["shard-00000"]}
    (folder / "tokens.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokens(tmp_path_factory.mktemp("tokens"))


def small_cfg(**kw: object) -> TrainConfig:
    base = TrainConfig(steps=30, batch_size=4, window_seconds=0.4, lr=3e-3, warmup_steps=3,
                       eval_every=10, eval_batches=2, checkpoint_every=10, log_every=5,
                       precision="fp32", num_workers=0)  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def stage1(seed: int = 0) -> Stage1Model:
    torch.manual_seed(seed)
    config = Stage1Config.preset(
        "debug", semantic_codebook_size=VOCAB, acoustic_codebook_size=VOCAB
    )
    return Stage1Model(config)


def trainer(run_dir: Path, tokens: Path, cfg: TrainConfig, model: torch.nn.Module) -> Trainer:
    ds = TokenDataset(tokens, expect=EXPECT if isinstance(model, Stage1Model) else
                      {"acoustic": ACOUSTIC}, streams=model.token_streams)  # fmt: skip
    return Trainer(
        model=model,
        config=cfg,
        train_data=ds.windows(seconds=cfg.window_seconds, seed=cfg.seed),
        valid_data=ds.windows(seconds=cfg.window_seconds, seed=cfg.seed, shuffle=False),
        run_dir=run_dir,
        device="cpu",  # the exact-resume check needs deterministic kernels
        progress=False,
    )


def losses(history: list[dict[str, float]], key: str = "train_loss") -> list[float]:
    return [r[key] for r in history if key in r]


def test_stage1_loss_falls_and_run_folder(tmp_path: Path, tokens: Path) -> None:
    history = trainer(tmp_path, tokens, small_cfg(), stage1()).fit()
    train = losses(history)
    assert train[-1] < 0.85 * train[0], train
    valid = losses(history, "valid_loss")
    assert len(valid) == 3 and valid[-1] < valid[0]
    assert {"valid_acc_semantic", "valid_acc_acoustic4", "valid_listen_gap"} <= set(history[-1])
    for name in (CHECKPOINT_FILE, "log.csv", "curves.png", "release/model.safetensors"):
        assert (tmp_path / name).is_file(), name
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [float(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    released = Stage1Model.from_pretrained(tmp_path / "release")
    assert released.config.semantic_codebook_size == VOCAB
    with pytest.raises(SingsongError, match="already holds a checkpoint"):
        trainer(tmp_path, tokens, small_cfg(), stage1()).fit()


def test_resume_matches_uninterrupted(tmp_path: Path, tokens: Path) -> None:
    # 8 clips x 5 windows / batch 4 = 10 batches an epoch: 24 steps cross an epoch boundary,
    # and the interruption at 14 falls mid-epoch
    cfg = small_cfg(steps=24, eval_every=6, checkpoint_every=7, log_every=1)
    whole = trainer(tmp_path / "a", tokens, cfg, stage1()).fit()
    trainer(tmp_path / "b", tokens, cfg, stage1()).fit(stop_at=14)
    assert not (tmp_path / "b" / "release").exists()
    resumed = trainer(tmp_path / "b", tokens, cfg, stage1(seed=123)).fit(resume=True)
    assert [r["step"] for r in resumed] == [r["step"] for r in whole]
    np.testing.assert_allclose(losses(resumed), losses(whole), rtol=1e-5)
    np.testing.assert_allclose(losses(resumed, "valid_loss"), losses(whole, "valid_loss"), 1e-5)
    a = Stage1Model.from_pretrained(tmp_path / "a" / "release").state_dict()
    b = Stage1Model.from_pretrained(tmp_path / "b" / "release").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_overfits_a_few_windows(tmp_path: Path) -> None:
    folder = make_tokens(tmp_path / "tok", clips=2, seconds=0.8, seed=1)  # 4 windows of 0.4 s
    cfg = small_cfg(steps=150, lr=1e-2, warmup_steps=10, eval_every=150, checkpoint_every=150,
                    log_every=50, eval_batches=1)  # fmt: skip
    history = trainer(tmp_path / "run", folder, cfg, stage1()).fit()
    assert history[-1]["valid_acc"] > 0.9, history[-1]
    # the instrumental is a function of the vocals here: other vocals must cost loss
    assert history[-1]["valid_listen_gap"] > 0.2, history[-1]  # (measured 0.42; ~0 if deaf)


def test_stage2_trains(tmp_path: Path, tokens: Path) -> None:
    torch.manual_seed(0)
    from singsong.models.stage2 import Stage2Config

    model = Stage2Model(Stage2Config.preset("debug", acoustic_codebook_size=VOCAB))
    history = trainer(tmp_path, tokens, small_cfg(steps=20, eval_every=20), model).fit()
    assert losses(history)[-1] < losses(history)[0]
    assert "valid_acc_acoustic12" in history[-1]
    Stage2Model.from_pretrained(tmp_path / "release")


def test_a_planner_trains_on_the_semantic_codes_alone(tmp_path: Path, tokens: Path) -> None:
    torch.manual_seed(0)
    config = Stage1Config.preset(
        "debug", semantic_codebook_size=VOCAB, acoustic_codebook_size=VOCAB, coarse_levels=0
    )
    model = Stage1Model(config)
    assert model.token_streams == {"vocals_noisy_semantic", "instrumental_semantic"}
    slim = tmp_path / "slim"  # a copy without the acoustic codes (what travels to a GPU)
    shutil.copytree(tokens, slim)
    for f in slim.glob("shard-*/*_acoustic.npy"):
        f.unlink()
    history = trainer(tmp_path, slim, small_cfg(steps=20, eval_every=20), model)
    rows = history.fit()
    assert losses(rows)[-1] < losses(rows)[0]
    assert "valid_acc_semantic" in rows[-1] and "valid_acc_acoustic1" not in rows[-1]
    assert "valid_listen_gap_start" in rows[-1]
    assert Stage1Model.from_pretrained(tmp_path / "release").config.coarse_levels == 0


def test_cli_and_two_process_gloo_matches_one(tmp_path: Path, tokens: Path) -> None:
    spec = tmp_path / "run.json"
    train = {"steps": 16, "batch_size": 4, "log_every": 2, "eval_every": 8, "eval_batches": 1,
             "checkpoint_every": 8, "warmup_steps": 2}  # fmt: skip
    spec.write_text(json.dumps({"model": {"preset": "debug"}, "train": train}))
    # CPU + gloo even on a GPU host (two ranks cannot share one GPU under NCCL)
    args = ["stage1", "--config", str(spec), "--tokens", str(tokens), "--no-progress"]
    args += ["--device", "cpu"]
    assert train_main([*args, "--out", str(tmp_path / "one")]) == 0
    src = str(Path(__file__).parents[1] / "src")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": src}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "singsong.training", *args, "--out", str(tmp_path / "two")]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    curve = {}
    for run in ("one", "two"):
        rows = list(csv.DictReader((tmp_path / run / "log.csv").open()))
        curve[run] = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    # the ranks read other windows than the single process (clips are split by rank), so the
    # curves agree within sampling noise, not exactly
    assert len(curve["one"]) == len(curve["two"]) == 8
    # (measured: within 1.5 %; the loss falls by 7 % over these 16 steps)
    np.testing.assert_allclose(curve["two"], curve["one"], rtol=0.03)
    assert curve["two"][-1] < 0.97 * curve["two"][0]
    assert (tmp_path / "two" / "release" / "model.safetensors").is_file()


def test_bad_configs(tmp_path: Path, tokens: Path) -> None:
    with pytest.raises(SingsongError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(SingsongError, match="precision"):
        TrainConfig(precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(SingsongError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=2.0)
    with pytest.raises(SingsongError, match="unknown stage"):
        load_run_config("stage3", "debug")
    with pytest.raises(SingsongError, match="neither a preset"):
        load_run_config("stage1", "huge")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"stepz": 3}}))
    with pytest.raises(SingsongError, match="stepz"):
        load_run_config("stage1", bad)
    bad.write_text(json.dumps({"model": {"preset": "debug", "dim": 33}}))
    with pytest.raises(SingsongError, match="heads"):
        load_run_config("stage2", bad)
    run = load_run_config("stage1", "debug")
    with pytest.raises(SingsongError, match="not a whole number of frames"):
        train_stage(replace(run, train=replace(run.train, window_seconds=0.03)),
                    tokens=tokens, out=tmp_path / "r", device="cpu", progress=False)  # fmt: skip
    with pytest.raises(SingsongError, match="not a token folder"):
        train_stage(run, tokens=tmp_path, out=tmp_path / "r", progress=False)
    with pytest.raises(SingsongError, match="nothing to resume"):
        train_stage(run, tokens=tokens, out=tmp_path / "r2", resume=True, progress=False)
    assert train_main(["stage1", "--tokens", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_lr_schedule() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert cfg.lr_factor(0) == pytest.approx(0.1) and cfg.lr_factor(9) == pytest.approx(1.0)
    assert cfg.lr_factor(10) == pytest.approx(1.0)
    assert cfg.lr_factor(55) == pytest.approx(0.55)
    assert cfg.lr_factor(100) == pytest.approx(0.1) and cfg.lr_factor(500) == pytest.approx(0.1)


def test_vocal_noise_streams_and_several_folders(tmp_path: Path, tokens: Path) -> None:
    run = load_run_config("stage1", "debug")
    run = replace(run, train=replace(run.train, steps=4, eval_every=2, checkpoint_every=2))
    clean = make_tokens(tmp_path / "clean", noise_snr=None, seed=1, prefix="clean")
    with pytest.raises(SingsongError, match=r"no noisy vocal streams.*--noise-snr 10 30"):
        train_stage(run, tokens=clean, out=tmp_path / "a", device="cpu", progress=False)
    other = make_tokens(tmp_path / "other", noise_snr=(0.0, 5.0), seed=2, prefix="other")
    with pytest.raises(SingsongError, match="SNR"):
        train_stage(run, tokens=[tokens, other], out=tmp_path / "b", device="cpu", progress=False)
    # a clean-vocal model trains on the clean streams of any folder
    quiet = replace(run, model=replace(run.model, vocal_noise=False))
    train_stage(quiet, tokens=clean, out=tmp_path / "c", device="cpu", progress=False)
    assert Stage1Model.from_pretrained(tmp_path / "c" / "release").config.vocal_noise is False
    # two folders read as one dataset; a clip id in both is refused
    more = make_tokens(tmp_path / "more", seed=3)
    with pytest.raises(SingsongError, match="repeat"):
        TokenDataset([tokens, more], expect=EXPECT)
    ds = TokenDataset([tokens, clean], expect=EXPECT)  # serves the streams both hold
    assert len(ds) == 16 and ds.folders == [tokens, clean]
    assert "vocals_noisy_semantic" not in ds.streams and "vocals_semantic" in ds.streams
    assert ds.clip("clean3")["vocals_semantic"].shape == (1, 50)
    with pytest.raises(SingsongError, match="other settings"):
        TokenDataset([tokens, other], expect=EXPECT)


def test_init_fine_tunes_from_a_release(
    tmp_path: Path, tokens: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = load_run_config("stage1", "debug")
    run = replace(run, train=replace(run.train, steps=4, eval_every=4, checkpoint_every=4))
    base = train_stage(run, tokens=tokens, out=tmp_path / "base", device="cpu", progress=False)
    # a fine-tune of one step at a negligible learning rate releases the weights it started from
    still = replace(run, train=replace(run.train, steps=1, lr=1e-12, warmup_steps=0))
    tuned = train_stage(still, tokens=tokens, out=tmp_path / "tuned", init=base, device="cpu",
                        progress=False)  # fmt: skip
    fresh = train_stage(still, tokens=tokens, out=tmp_path / "fresh", device="cpu", progress=False)
    a, b = (Stage1Model.from_pretrained(p).state_dict() for p in (base, tuned))
    c = Stage1Model.from_pretrained(fresh).state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    assert any(not torch.allclose(c[k], a[k]) for k in a)
    # settings that change no weight may differ (said on stderr); other shapes are refused
    aided = replace(still, model=replace(still.model, target_dropout=0.2))
    train_stage(aided, tokens=tokens, out=tmp_path / "aided", init=base, progress=False)
    assert "target_dropout 0.0 != 0.2" in capsys.readouterr().err
    wider = replace(still, model=replace(still.model, dim=64))
    with pytest.raises(SingsongError, match="dim 32 != 64"):
        train_stage(wider, tokens=tokens, out=tmp_path / "w", init=base, progress=False)
    (base / "tokenizers.json").unlink()
    with pytest.raises(SingsongError, match="not a training release"):
        train_stage(still, tokens=tokens, out=tmp_path / "n", init=base, progress=False)
    argv = ["stage1", "--config", "debug", "--tokens", str(tokens), "--out", str(tmp_path / "cli")]
    assert train_main([*argv, "--init", str(tmp_path / "missing")]) == 2


def test_semantic_features_come_from_the_tokens_tokenizer(tmp_path: Path, tokens: Path) -> None:
    from singsong.tokenizers.semantic.tokenizer import SemanticConfig, SemanticTokenizer

    cfg = SemanticConfig(codebook_size=VOCAB, dim=84)
    torch.manual_seed(0)
    tok = SemanticTokenizer(config=cfg, centroids=torch.randn(VOCAB, 84), mean=torch.zeros(84),
                            std=torch.ones(84))  # fmt: skip
    tok.save_pretrained(tmp_path / "semantic")
    # a token folder written with that tokenizer's semantic codes
    folder = make_tokens(tmp_path / "tok", seed=4, prefix="f")
    for path in (folder / "tokens.json", folder / "shard-00000" / "index.json"):
        meta = json.loads(path.read_text())
        meta["tokenizers"]["semantic"] = tok.info.to_dict()
        path.write_text(json.dumps(meta))
    run = load_run_config("stage1", "debug")
    run = replace(run, model=replace(run.model, semantic_features=84),
                  train=replace(run.train, steps=2, eval_every=2, checkpoint_every=2))  # fmt: skip
    with pytest.raises(SingsongError, match="--semantic"):
        train_stage(run, tokens=folder, out=tmp_path / "a", device="cpu", progress=False)
    with pytest.raises(SingsongError, match="token folders' semantic codes are fake-semantic"):
        train_stage(run, tokens=tokens, out=tmp_path / "b", semantic=tmp_path / "semantic",
                    device="cpu", progress=False)  # fmt: skip
    release = train_stage(run, tokens=folder, out=tmp_path / "c", semantic=tmp_path / "semantic",
                          device="cpu", progress=False)  # fmt: skip
    table = Stage1Model.from_pretrained(release).lm.semantic_table
    assert table is not None
    torch.testing.assert_close(table, tok.centroids)  # a buffer: training leaves it alone


def test_a_renderer_trains_from_the_cli(tmp_path: Path, tokens: Path) -> None:
    spec = tmp_path / "run.json"
    train = {"steps": 40, "batch_size": 4, "log_every": 5, "eval_every": 40, "eval_batches": 2,
             "checkpoint_every": 40, "warmup_steps": 3, "lr": 3e-3}  # fmt: skip
    spec.write_text(json.dumps({"model": {"preset": "debug"}, "train": train}))
    args = ["renderer", "--config", str(spec), "--tokens", str(tokens), "--no-progress"]
    args += ["--out", str(tmp_path / "run")]
    # stopped halfway on request: released as it is, and resumable
    assert train_main([*args, "--stop-at", "20"]) == 0
    half = RendererModel.from_pretrained(tmp_path / "run" / "release").state_dict()
    assert torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["step"] == 20
    assert train_main([*args, "--resume"]) == 0
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [float(r["step"]) for r in rows][-1] == 40
    done = RendererModel.from_pretrained(tmp_path / "run" / "release").state_dict()
    assert not torch.equal(half["out"], done["out"])
    curve = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    assert curve[-1] < 0.9 * curve[0]
    last = rows[-1]
    assert float(last["valid_plan_gap"]) > 0  # the codes follow the plan: it is read
    assert {"valid_acc_acoustic1", "valid_acc_acoustic4"} <= set(last)
    release = RendererModel.from_pretrained(tmp_path / "run" / "release")
    assert release.config.acoustic_codebook_size == VOCAB
    info = json.loads((tmp_path / "run" / "release" / "tokenizers.json").read_text())
    assert set(info) == {"semantic", "acoustic"}
    # a stage-1 config is not a renderer config
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"preset": "debug", "featurization": "S"}}))
    assert train_main(["renderer", "--config", str(bad), "--tokens", str(tokens),
                       "--out", str(tmp_path / "bad")]) == 2  # fmt: skip

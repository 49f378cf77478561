"""Train the builtin separator on songbook songs and MIR-1K train singers.

Random crops of (vocals, instrumental) are remixed with random gains, half of the time across
songs (a voice over another song's band), so the model learns what a voice is rather than which
voice goes with which band. Loss: L1 between the masked and the true magnitude spectrograms of
both sources. Validation: median SI-SDR on held-out songbook songs and MIR-1K singers.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from singsong.data.mir1k import list_clips
from singsong.data.splits import is_valid_song
from singsong.errors import SingsongError
from singsong.metrics import si_sdr
from singsong.separate.base import Track
from singsong.separate.builtin import BuiltinSeparator
from singsong.separate.model import UnmixConfig, UnmixModel


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "default"
    steps: int = 4000
    batch_size: int = 16
    crop_seconds: float = 4.0
    lr: float = 1e-3
    remix_probability: float = 0.5
    seed: int = 0
    valid_every: int = 250
    valid_tracks: int = 12  # per corpus


@dataclass(frozen=True)
class _Source:
    kind: str  # "songbook" (folder) | "mir1k" (stereo file)
    path: str
    frames: int


def find_sources(songbook: Path | None, mir1k: Path | None, *, valid: bool) -> list[_Source]:
    sources = []
    if songbook is not None:
        for folder in sorted(p for p in songbook.iterdir() if (p / "meta.json").is_file()):
            if is_valid_song(folder.name) == valid:
                sources.append(
                    _Source("songbook", str(folder), sf.info(folder / "vocals.flac").frames)
                )
    if mir1k is not None:
        for clip in list_clips(mir1k, "valid" if valid else "train"):
            sources.append(_Source("mir1k", str(clip.audio), sf.info(clip.audio).frames))
    if not sources:
        raise SingsongError("no training audio: give --songbook and/or --mir1k")
    return sources


def _crop(source: _Source, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, instrumental) float32 [n] from ``start`` (zero-padded past the end)."""
    if source.kind == "songbook":
        folder = Path(source.path)
        vocals, _ = sf.read(folder / "vocals.flac", start=start, frames=n, dtype="float32")
        mixture, _ = sf.read(folder / "mixture.flac", start=start, frames=n, dtype="float32")
        inst = mixture - vocals  # stems sum exactly to the mixture
    else:
        stereo, _ = sf.read(source.path, start=start, frames=n, dtype="float32")
        vocals, inst = stereo[:, 1], stereo[:, 0]
    pad = n - len(vocals)
    return np.pad(vocals, (0, pad)), np.pad(inst, (0, pad))


def _batch(
    sources: list[_Source], cfg: TrainConfig, n: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> mixture [B, N], targets [B, 2, N]."""
    mixes, targets = [], []
    for _ in range(cfg.batch_size):
        a = sources[int(rng.integers(len(sources)))]
        vocals, inst = _crop(a, int(rng.integers(max(1, a.frames - n))), n)
        if rng.random() < cfg.remix_probability:
            b = sources[int(rng.integers(len(sources)))]
            _, inst = _crop(b, int(rng.integers(max(1, b.frames - n))), n)
        vocals = vocals * 10 ** (rng.uniform(-6, 6) / 20)
        inst = inst * 10 ** (rng.uniform(-6, 6) / 20)
        mix = vocals + inst
        peak = max(1.0, float(np.abs(mix).max()) / 0.99)
        mixes.append(mix / peak)
        targets.append(np.stack([vocals, inst]) / peak)
    return torch.from_numpy(np.stack(mixes)), torch.from_numpy(np.stack(targets))


def validate(separator: BuiltinSeparator, tracks: list[Track]) -> dict[str, float]:
    v, i = [], []
    for track in tracks:
        truth = track.load_true_stems()
        assert truth is not None
        est = separator.separate_track(track)
        v.append(si_sdr(est.vocals, truth.vocals))
        i.append(si_sdr(est.instrumental, truth.instrumental))
    return {"si_sdr_vocals": float(np.median(v)), "si_sdr_instrumental": float(np.median(i))}


def train(
    run: Path, *, songbook: Path | None, mir1k: Path | None, cfg: TrainConfig, progress: bool = True
) -> Path:
    """Train (resuming from ``run/checkpoint.pt`` if present); returns the release folder."""
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train_sources = find_sources(songbook, mir1k, valid=False)
    valid_sources = find_sources(songbook, mir1k, valid=True)
    rng_valid = np.random.default_rng(0)
    valid_tracks = []
    for kind in ("songbook", "mir1k"):
        of_kind = [s for s in valid_sources if s.kind == kind]
        for k in rng_valid.permutation(len(of_kind))[: cfg.valid_tracks]:
            valid_tracks.append(
                Track(id=Path(of_kind[k].path).stem, path=of_kind[k].path, kind=kind)
            )
    model = UnmixModel(UnmixConfig.preset(cfg.preset))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr / 20)
    step = 0
    ckpt = run / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
    (run / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    rng = np.random.default_rng([cfg.seed, step])  # a resumed run draws new crops
    n = int(cfg.crop_seconds * 16000)
    log = (run / "log.csv").open("a", newline="")
    writer = csv.writer(log)
    if step == 0:
        writer.writerow(["step", "train_loss", "si_sdr_vocals", "si_sdr_instrumental", "seconds"])
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="separator")
    start, losses = time.perf_counter(), []
    while step < cfg.steps:
        model.train()
        mix, target = _batch(train_sources, cfg, n, rng)
        _, masked = model(mix)  # [B, 2, F, T]
        true_mag = model.stft(target.flatten(0, 1)).abs().view_as(masked)
        loss = (masked.abs() - true_mag).abs().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % cfg.valid_every == 0 or step == cfg.steps:
            scores = validate(BuiltinSeparator(model), valid_tracks)
            model.train()
            writer.writerow(
                [
                    step,
                    f"{np.mean(losses):.5f}",
                    f"{scores['si_sdr_vocals']:.3f}",
                    f"{scores['si_sdr_instrumental']:.3f}",
                    f"{time.perf_counter() - start:.1f}",
                ]
            )
            log.flush()
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", vocals=f"{scores['si_sdr_vocals']:.2f}")
            losses = []
            tmp = ckpt.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "step": step,
                },
                tmp,
            )
            tmp.replace(ckpt)
    bar.close()
    log.close()
    release = run / "release"
    BuiltinSeparator(model.eval()).save_pretrained(release, extra={"trained_steps": step})
    return release

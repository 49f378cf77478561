"""Training loop for the codec: time-budgeted, resumable, logged to CSV and a PNG of curves.

A run folder holds ``checkpoint.pt`` (model + optimizer + progress, written atomically every
few minutes; loaded with ``weights_only=True``), ``log.csv`` (train rows every few steps,
validation rows every few minutes), ``curves.png``, and at the end ``release/`` (the
artifact :meth:`CodecTokenizer.from_pretrained` reads). The learning-rate schedule follows
the *time* budget (warm-up, then cosine to 10 %), so a run of M minutes anneals properly
however fast the machine is, and ``--resume`` continues on the same schedule.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singsong.audio import atomic_path
from singsong.errors import SingsongError
from singsong.tokenizers.codec.data import CropSampler, FolderCrops, validation_set
from singsong.tokenizers.codec.losses import CodecLoss, LossWeights, MelDistance, si_sdr
from singsong.tokenizers.codec.model import Codec, CodecConfig
from singsong.tokenizers.codec.tokenizer import CodecTokenizer

CHECKPOINT = "checkpoint.pt"
LOG_FIELDS = ["step", "minutes", "split", "loss", "mel", "stft", "sisdr", "commit"]
LOG_FIELDS += ["mel@12", "sisdr@12", "mel@4", "sisdr@4"]


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 8
    min_seconds: float = 1.0
    max_seconds: float = 2.0
    lr: float = 8e-4
    linear_lr_scale: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    loss: LossWeights = field(default_factory=LossWeights)
    init_clips: int = 100  # 2 s clips for the PCA + k-means initialisation
    valid_clips: int = 24  # per held-out set
    valid_seconds: float = 2.0
    valid_minutes: float = 5.0
    checkpoint_minutes: float = 3.0
    log_every: int = 20
    threads: int = 2
    seed: int = 0

    @staticmethod
    def preset(name: str) -> TrainConfig:
        if name == "default":
            return TrainConfig()
        if name == "debug":
            return TrainConfig(
                batch_size=2, min_seconds=0.2, max_seconds=0.4, warmup_steps=1, valid_clips=2,
                valid_seconds=0.5, init_clips=4, log_every=1, lr=3e-3, threads=1,
            )  # fmt: skip
        raise ValueError(f"unknown train config {name!r} (choose debug or default)")

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        return TrainConfig(**(d | {"loss": LossWeights(**d["loss"])}))


def lr_factor(step: int, fraction: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to 0.1 over the time budget."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    return warm * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, fraction))))


class Prefetcher:
    """Fills a small queue of batches [B, N] in a thread (libsndfile releases the GIL)."""

    def __init__(self, sampler: CropSampler | FolderCrops, cfg: TrainConfig, hop: int) -> None:
        self.sampler, self.cfg, self.hop = sampler, cfg, hop
        self.queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=4)
        self.rng = random.Random(cfg.seed + 1)
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        lo, hi = (round(s * 16000 / self.hop) for s in (self.cfg.min_seconds, self.cfg.max_seconds))
        try:
            while not self.stop.is_set():
                length = self.rng.randint(lo, hi) * self.hop
                batch = self.sampler.batch(self.cfg.batch_size, length)
                while not self.stop.is_set():
                    try:
                        self.queue.put(batch, timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # surfaced in get()
            self.error = e

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5.0)

    def get(self) -> torch.Tensor:
        while True:
            if self.error is not None:
                raise SingsongError(f"reading training audio failed: {self.error}")
            try:
                return torch.from_numpy(self.queue.get(timeout=1.0))
            except queue.Empty:
                continue


@torch.no_grad()
def evaluate(model: Codec, clips: torch.Tensor, mel: MelDistance) -> dict[str, float]:
    """Held-out crops [n, N] -> mel distance and SI-SDR at 12 and 4 levels."""
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    for levels in (12, 4):
        mels, sdrs = [], []
        for chunk in clips.split(8):
            est = model(chunk, num_levels=torch.full((len(chunk),), levels)).wav
            mels.append(mel(est, chunk, per_item=True))
            sdrs.append(si_sdr(est, chunk))
        out[f"mel@{levels}"] = torch.cat(mels).mean().item()
        out[f"sisdr@{levels}"] = torch.cat(sdrs).mean().item()
    model.train(was_training)
    return out


def plot_curves(log: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log.open()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    train = [r for r in rows if r["split"] == "train"]
    axes[0].plot([float(r["minutes"]) for r in train], [float(r["mel"]) for r in train], lw=0.8)
    axes[0].set(title="train mel distance (random levels)", xlabel="minutes")
    for split in sorted({r["split"] for r in rows} - {"train"}):
        vr = [r for r in rows if r["split"] == split]
        m = [float(r["minutes"]) for r in vr]
        for k in (12, 4):
            axes[1].plot(m, [float(r[f"mel@{k}"]) for r in vr], marker=".", label=f"{split} @{k}")
            axes[2].plot(m, [float(r[f"sisdr@{k}"]) for r in vr], marker=".", label=f"{split} @{k}")
    axes[1].set(title="valid mel distance", xlabel="minutes")
    axes[2].set(title="valid SI-SDR (dB)", xlabel="minutes")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train(
    run_dir: Path,
    *,
    config: CodecConfig,
    train_config: TrainConfig,
    songbook: Path | None,
    mir1k: Path | None,
    minutes: float,
    resume: bool = False,
    export: Path | None = None,
    quiet: bool = False,
) -> Path:
    """Train for ``minutes`` of wall time in total (counting earlier runs when resuming);
    export the release artifact to ``export`` (default ``run_dir / "release"``)."""
    cfg = train_config
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = run_dir / CHECKPOINT, run_dir / "log.csv"
    state: dict[str, Any] | None = None
    if ckpt_path.exists():
        if not resume:
            raise SingsongError(f"{run_dir} already holds a run: pass --resume or another --out")
        try:
            state = torch.load(ckpt_path, weights_only=True)
        except Exception as e:
            raise SingsongError(f"cannot read checkpoint {ckpt_path}: {e}") from None
        config = CodecConfig(**state["codec_config"])
        cfg = TrainConfig.from_dict(state["train_config"])
    model = Codec(config).train()
    # The PCA-initialised linear paths already work: move them 10x more slowly than the rest.
    linear = [p for n, p in model.named_parameters() if n.endswith("linear.weight")]
    others = [p for n, p in model.named_parameters() if not n.endswith("linear.weight")]
    opt = torch.optim.AdamW(
        [{"params": others, "scale": 1.0}, {"params": linear, "scale": cfg.linear_lr_scale}],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    step, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"], strict=True)
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        if not quiet:
            print(f"resuming {run_dir} at step {step} ({elapsed / 60:.1f} min)", flush=True)
    crit = CodecLoss(weights=cfg.loss, sample_rate=config.sample_rate)
    sampler = CropSampler(songbook=songbook, mir1k=mir1k, seed=cfg.seed + step)
    valid = {
        k: torch.from_numpy(v)
        for k, v in validation_set(
            songbook=songbook, mir1k=mir1k, clips=cfg.valid_clips, seconds=cfg.valid_seconds
        ).items()
    }
    if state is None:  # data-driven init: PCA linear paths, then k-means codebooks
        init = torch.from_numpy(sampler.batch(cfg.init_clips, 2 * config.sample_rate))
        model.init_linear_paths(init[:32])
        with torch.no_grad():
            model(init)  # k-means on ~10 frames per code: fewer would just memorise the batch
    prefetch = Prefetcher(sampler, cfg, config.hop_length)
    new_log = not log_path.exists()
    log_file = log_path.open("a", newline="")
    log = csv.DictWriter(log_file, fieldnames=LOG_FIELDS)
    if new_log:
        log.writeheader()

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {
            "codec_config": dataclasses.asdict(config), "train_config": dataclasses.asdict(cfg),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
            "elapsed": elapsed,
        })  # fmt: skip

    def validate() -> None:
        for name, clips in valid.items():
            metrics = evaluate(model, clips, crit.mel)
            log.writerow({"step": step, "minutes": f"{elapsed / 60:.2f}", "split": f"valid_{name}"}
                         | {k: f"{v:.4f}" for k, v in metrics.items()})  # fmt: skip
            if not quiet:
                shown = " ".join(f"{k} {v:.3f}" for k, v in metrics.items())
                print(f"  valid {name}: {shown}", flush=True)
        log_file.flush()
        plot_curves(log_path, run_dir / "curves.png")

    budget = minutes * 60
    last_ckpt = last_valid = elapsed
    sums: dict[str, float] = {}
    count = 0
    tick = time.monotonic()
    try:
        if state is None:
            validate()
        while elapsed < budget:
            x = prefetch.get()
            factor = lr_factor(step, elapsed / budget, cfg.warmup_steps)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor * group["scale"]
            out = model(x)
            loss, parts = crit(out.wav, x, out.commit_loss)
            if not math.isfinite(parts["loss"]):
                raise SingsongError(f"training diverged at step {step} (loss {parts['loss']})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            now = time.monotonic()
            elapsed += now - tick
            tick = now
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if step % cfg.log_every == 0:
                means = {k: v / count for k, v in sums.items()}
                log.writerow({"step": step, "minutes": f"{elapsed / 60:.2f}", "split": "train"}
                             | {k: f"{v:.4f}" for k, v in means.items()})  # fmt: skip
                sums, count = {}, 0
                if not quiet:
                    shown = " ".join(f"{k} {v:.3f}" for k, v in means.items())
                    lr = cfg.lr * factor
                    print(f"step {step} {elapsed / 60:.1f}/{minutes:g} min lr {lr:.2e} {shown}",
                          flush=True)  # fmt: skip
            if elapsed - last_valid >= cfg.valid_minutes * 60:
                validate()
                last_valid = elapsed
            if elapsed - last_ckpt >= cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = elapsed
            tick = time.monotonic()  # evaluation and saving don't count against the budget
        validate()
        checkpoint()
    finally:
        prefetch.close()
        log_file.close()
    release = export or run_dir / "release"
    CodecTokenizer(model).save_pretrained(release)
    if not quiet:
        print(f"release artifact: {release}", flush=True)
    return release

"""One generic trainer for both stages, driven by the model's own ``loss_on_streams``.

Why one loop: the stages differ only in how a batch of token windows becomes a loss, which each
model already owns (``loss_on_streams(batch) -> LossOutput``), so everything else here (AdamW,
warm-up + cosine, clipping, bf16 autocast, DDP, validation, checkpoints, curves, export) is written
once (STYLE.md: no copy-paste trainers).

Distributed: launch with ``torchrun``; :func:`init_distributed` reads its environment and picks
NCCL on GPUs, gloo on CPU. Each rank reads its own clips (``TokenWindows`` rank sharding) with
``batch_size / world_size`` windows per step, DDP averages gradients, so the update equals a
single process's with the same global batch. Rank 0 alone writes files; validation counts are
all-reduced so every rank sees the same metrics.

Run folder: ``checkpoint.pt`` (model, optimizer, scheduler, step, data position, RNG states,
history; written atomically, loaded with ``weights_only=True``), ``log.csv``, ``curves.png``
and ``release/`` (the model's ``save_pretrained`` artifact, written at the end).
"""

from __future__ import annotations

import csv
import logging
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from singsong.audio import atomic_path, atomic_write
from singsong.errors import SingsongError
from singsong.models.seq2seq import LossOutput
from singsong.training.config import TrainConfig

__all__ = [
    "CHECKPOINT_FILE",
    "RELEASE_DIR",
    "StageModel",
    "Trainer",
    "close_distributed",
    "init_distributed",
]

log = logging.getLogger(__name__)
CHECKPOINT_FILE, LOG_FILE, PLOT_FILE = "checkpoint.pt", "log.csv", "curves.png"
RELEASE_DIR = "release"
CHECKPOINT_VERSION = 1


class StageModel(Protocol):
    """What the trainer needs of a model (``Stage1Model`` and ``Stage2Model`` fit)."""

    def loss_on_streams(self, batch: Mapping[str, Tensor]) -> LossOutput: ...
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path: ...


class _LossModule(nn.Module):
    """Routes the loss through ``forward`` so DDP's gradient hooks see it; returns tensors only
    (DDP inspects forward outputs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        out: LossOutput = self.model.loss_on_streams(batch)  # type: ignore[operator]
        return out.loss, out.correct, out.count


def default_device() -> torch.device:
    """This process's CUDA device under torchrun (``LOCAL_RANK``), or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_distributed(device: torch.device | str | None = None) -> tuple[int, int]:
    """Join the torchrun process group if launched by torchrun; -> (rank, world_size).

    NCCL when training on CUDA, gloo on the CPU (``device="cpu"`` forces gloo on a GPU host).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dev = torch.device(device) if device is not None else default_device()
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def close_distributed() -> None:
    """Leave the torchrun process group together: a rank that exits while another still holds
    its gloo connections can abort it at teardown ("terminate called without an active
    exception"). A no-op outside torchrun."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v
            for k, v in batch.items()}  # fmt: skip


class Trainer:
    """Train ``model`` on ``train_data`` windows, validating on ``valid_data``.

    Args:
        model: an ``nn.Module`` with ``loss_on_streams`` and ``save_pretrained``.
        config: the schedule and bookkeeping.
        train_data: an iterable dataset of window dicts (``TokenWindows``, already sharded by
            rank); it is re-iterated every epoch, after ``set_epoch(epoch)`` if it has one.
        valid_data: the same for validation (never ``set_epoch``-ed: a shuffled one yields the
            same windows at every validation), or None.
        run_dir: where checkpoints, logs, curves and the release go.
        device: default: CUDA (this rank's local device) if available, else CPU.
        progress: show a tqdm bar on rank 0.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        config: TrainConfig,
        train_data: torch.utils.data.IterableDataset,
        valid_data: torch.utils.data.IterableDataset | None,
        run_dir: str | os.PathLike[str],
        device: torch.device | str | None = None,
        progress: bool = True,
    ) -> None:
        if not hasattr(model, "loss_on_streams") or not hasattr(model, "save_pretrained"):
            raise SingsongError(f"{type(model).__name__} has no loss_on_streams/save_pretrained")
        self.cfg, self.run_dir, self.progress = config, Path(run_dir), progress
        distributed = dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        if config.batch_size % self.world:
            raise SingsongError(
                f"batch size {config.batch_size} does not split over {self.world} processes"
            )
        self.local_batch = config.batch_size // self.world
        self.device = torch.device(device) if device is not None else default_device()
        # the loop's own randomness (dropout): seeded, and independent across ranks; the initial
        # weights need no care, DDP broadcasts rank 0's at construction
        torch.manual_seed(config.seed + self.rank)
        self.model = model.to(self.device)
        self.module: nn.Module = _LossModule(self.model)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, config.lr_factor)
        self.train_data, self.valid_data = train_data, valid_data
        self.autocast = self._autocast_dtype()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.history: list[dict[str, float]] = []

    # --- setup -----------------------------------------------------------------------------------

    def _optimizer(self) -> torch.optim.AdamW:
        # nanoGPT: decay matrices only; embeddings are tied to the output layer, so they are
        # matrices too, but decaying a 1024-row code table pulls rare codes to zero: keep it out
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=self.cfg.betas, fused=fused)

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.cfg.precision == "fp32":
            return None
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        # CPU bf16 autocast runs, but is slower than fp32 on most CPUs: not worth it
        if self.rank == 0:
            log.warning("bf16 autocast is not supported on %s; training in fp32", self.device)
        return None

    def _loader(self, data: torch.utils.data.IterableDataset) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            data,
            batch_size=self.local_batch,
            drop_last=True,
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _batches(self) -> Iterator[dict[str, Any]]:
        """Endless batches; resumes mid-epoch by skipping the batches already consumed, so a
        resumed run sees exactly the data an uninterrupted one would."""
        empty_epochs = 0
        while True:
            if hasattr(self.train_data, "set_epoch"):
                self.train_data.set_epoch(self.epoch)
            seen = 0
            for batch in self._loader(self.train_data):
                seen += 1
                if seen <= self.batch_in_epoch:
                    continue
                self.batch_in_epoch = seen
                yield batch
            if seen == 0:
                empty_epochs += 1
                if empty_epochs > 1:
                    raise SingsongError(
                        f"rank {self.rank} got no full batch of {self.local_batch} windows: "
                        "too few clips (or clips shorter than the window) for this batch size"
                    )
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    # --- the loop --------------------------------------------------------------------------------

    def fit(self, *, resume: bool = False, stop_at: int | None = None) -> list[dict[str, float]]:
        """Train to ``config.steps``; -> the history rows (also in ``log.csv``).

        ``stop_at``: checkpoint and return after that step instead (a job with a time limit);
        the schedule still runs to ``config.steps``, so resuming continues the same run. The
        release is exported only when the run is complete.
        """
        if resume:
            self.load_checkpoint()
        elif (self.run_dir / CHECKPOINT_FILE).exists():  # every rank checks: none waits alone
            raise SingsongError(
                f"{self.run_dir} already holds a checkpoint; pass resume=True (--resume) to "
                "continue it, or use another folder"
            )
        from tqdm import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", desc="train",
                   disable=not self.progress or self.rank != 0)  # fmt: skip
        batches = self._batches()
        running, n_running, t0 = 0.0, 0, time.time()
        self.module.train()
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        while self.step < end:
            batch = _to(next(batches), self.device)
            with torch.autocast(self.device.type, self.autocast or torch.float32,
                                enabled=self.autocast is not None):  # fmt: skip
                loss, _, _ = self.module(batch)
            if not torch.isfinite(loss):
                raise SingsongError(f"non-finite loss {float(loss)} at step {self.step}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
            )
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            running, n_running = running + self._mean(loss.detach()), n_running + 1
            row: dict[str, float] = {}
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                row |= {"train_loss": running / n_running, "grad_norm": float(grad_norm)}
                running, n_running = 0.0, 0
            if self.valid_data is not None and (
                self.step % cfg.eval_every == 0 or self.step == cfg.steps
            ):
                row |= self.evaluate()
            if row:
                row = {"step": float(self.step), "lr": float(self.scheduler.get_last_lr()[0])} | row
                self.history.append(row | {"seconds": time.time() - t0})
                bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "step"})
                self._write_logs(plot="valid_loss" in row)
            if self.step % cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
            bar.update(1)
        bar.close()
        if self.rank == 0 and self.step == cfg.steps:
            self.model.save_pretrained(self.run_dir / RELEASE_DIR)  # type: ignore[operator]
        return self.history

    def _mean(self, value: Tensor) -> float:
        """Average a scalar over ranks (for logging only)."""
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world
        return float(value)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss and per-level teacher-forced accuracy, summed over all ranks, plus
        the model's own validation measures (``validation_sum_names``, e.g. stage 1's
        ``listen_gap``), each a sum over scored positions, reported per position."""
        assert self.valid_data is not None
        self.module.eval()
        names: tuple[str, ...] = ()
        extra_names = tuple(getattr(self.model, "validation_sum_names", ()))
        e = len(extra_names)
        # [loss * count, extra sums (e), correct per level (k), count per level (k)]
        totals: Tensor | None = None
        for i, batch in enumerate(self._loader(self.valid_data)):
            if i >= self.cfg.eval_batches:
                break
            batch = _to(batch, self.device)
            with torch.autocast(self.device.type, self.autocast or torch.float32,
                                enabled=self.autocast is not None):  # fmt: skip
                out: LossOutput = self.model.loss_on_streams(batch)  # type: ignore[operator]
                extras = (
                    self.model.validation_sums(batch, out).double().view(e)  # type: ignore[operator]
                    if e
                    else torch.zeros(0, dtype=torch.double, device=self.device)
                )
            names = out.level_names
            part = torch.cat([(out.loss.double() * out.count.sum()).view(1), extras,
                              out.correct.double(), out.count.double()])  # fmt: skip
            totals = part if totals is None else totals + part
        self.module.train()
        if self.world > 1:
            # ranks may hold different numbers of batches (or none): agree on the shape first
            n_levels = torch.tensor([len(names)], device=self.device)
            dist.all_reduce(n_levels, op=dist.ReduceOp.MAX)
            if totals is None:
                size = 1 + e + 2 * int(n_levels)
                totals = torch.zeros(size, dtype=torch.double, device=self.device)
            dist.all_reduce(totals)
            names = names or tuple(f"level{i}" for i in range(int(n_levels)))
        k = len(names)
        if totals is None or totals[1 + e + k :].sum() == 0:
            log.warning("no validation batch of %d windows", self.local_batch)
            return {}
        correct, count = totals[1 + e : 1 + e + k], totals[1 + e + k :]
        row = {"valid_loss": float(totals[0] / count.sum()),
               "valid_acc": float(correct.sum() / count.sum())}  # fmt: skip
        for j, name in enumerate(extra_names):
            row[f"valid_{name}"] = float(totals[1 + j] / count.sum())
        for name, c, n in zip(names, correct, count, strict=True):
            row[f"valid_acc_{name}"] = float(c / n) if n else float("nan")
        return row

    # --- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {
            "version": CHECKPOINT_VERSION,
            "train_config": asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "history": self.history,
            # the RNGs the loop uses (dropout, torch; python for anything else): weights_only
            # can load tensors and lists, not numpy's state tuple, which nothing here uses
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "rng_python": _python_rng_state(),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.run_dir / CHECKPOINT_FILE) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> None:
        path = self.run_dir / CHECKPOINT_FILE
        if not path.is_file():
            raise SingsongError(f"nothing to resume: no {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle/zip errors of many types
            raise SingsongError(f"cannot read checkpoint {path}: {e}") from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise SingsongError(f"{path} is checkpoint format {state.get('version')!r}")
        try:
            self.model.load_state_dict(state["model"], strict=True)
        except RuntimeError as e:
            raise SingsongError(f"{path} does not fit this model config: {e}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.history = list(state["history"])
        torch.set_rng_state(state["rng_torch"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        version, internal, gauss = state["rng_python"]
        random.setstate((version, tuple(internal), gauss))

    # --- curves ----------------------------------------------------------------------------------

    def _write_logs(self, *, plot: bool) -> None:
        if self.rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        columns: list[str] = []
        for row in self.history:
            columns += [k for k in row if k not in columns]
        with atomic_write(self.run_dir / LOG_FILE) as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.history)
        if plot:  # a PNG costs ~0.2 s: redraw only when a validation point is added
            self._plot()

    def _plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log.warning("no matplotlib (pip install 'singsong[train]'): skipping %s", PLOT_FILE)
            return
        # a third panel for the model's own measures (stage 1: the listening gap), if any
        extras = sorted({k for r in self.history for k in r} - {"valid_loss", "valid_acc"})
        extras = [k for k in extras if k.startswith("valid_") and not k.startswith("valid_acc_")]
        fig, axes = plt.subplots(1, 2 + bool(extras), figsize=(5 * (2 + bool(extras)), 4))
        ax_loss, ax_acc = axes[0], axes[1]
        plots = [("train_loss", ax_loss), ("valid_loss", ax_loss), ("valid_acc", ax_acc)]
        plots += [(key, axes[2]) for key in extras]
        for key, ax in plots:
            pts = [(r["step"], r[key]) for r in self.history if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key, marker="." if len(pts) < 30 else None)
        ax_loss.set(xlabel="step", ylabel="cross-entropy (nats)", yscale="log")
        ax_acc.set(xlabel="step", ylabel="teacher-forced accuracy", ylim=(0, 1))
        if extras:
            axes[2].set(xlabel="step", ylabel="nats per position")
            axes[2].legend()
        ax_loss.legend(), ax_acc.legend()
        fig.tight_layout()
        with atomic_path(self.run_dir / PLOT_FILE) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)


def _python_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]

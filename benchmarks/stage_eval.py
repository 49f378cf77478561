"""Teacher-forced loss and per-level accuracy of a trained stage on token folders, one row each.

    python -u benchmarks/stage_eval.py runs/real/stage1/release \
        --tokens data/tok_songbook_valid data/tok_mir1k_valid --seconds 6

Every window of every clip (frame-aligned, phase 0, no shuffle) is scored; stage 1 reads the
vocal streams its config trained on (``vocals_noisy_*`` or ``vocals_*``) unless ``--vocals``
names other ones (e.g. ``vocals`` to score a noise-trained model on clean vocal codes).

``--listen`` also scores stage 1 with the vocals of *another* window of the batch (a cyclic
shift): the loss gap (shuffled minus matched) measures how much the model uses the vocals at all;
about zero means it writes plausible instrumentals without listening. The windows are then put
in a fixed random order first, so that the other window comes from another song (in folder
order it would mostly be the next window of the same song, in the same key).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from singsong.models import Stage1Model, Stage2Model
from singsong.models.seq2seq import LossOutput
from singsong.tokenizers.base import TokenizerInfo
from singsong.tokenizers.token_dataset import TokenDataset


def load_stage(path: Path) -> Stage1Model | Stage2Model:
    kind = json.loads((path / "config.json").read_text())["kind"]
    return (
        Stage1Model.from_pretrained(path) if kind == "stage1" else Stage2Model.from_pretrained(path)
    )


def score(
    model: Stage1Model | Stage2Model,
    folder: Path,
    *,
    seconds: float,
    batch: int,
    vocals: str | None,
    listen: bool = False,
) -> dict[str, float]:
    infos = json.loads((folder / "tokens.json").read_text())["tokenizers"]
    roles = ("semantic", "acoustic") if isinstance(model, Stage1Model) else ("acoustic",)
    ds = TokenDataset(folder, expect={r: TokenizerInfo(**infos[r]) for r in roles})
    windows = list(ds.windows(seconds=seconds, shuffle=False))
    if listen:  # partners from other songs (the order does not change the loss or accuracy)
        order = np.random.default_rng(0).permutation(len(windows))
        windows = [windows[i] for i in order]
    total: LossOutput | None = None
    loss_sum = 0.0
    gap_sums = torch.zeros(len(Stage1Model.validation_sum_names), dtype=torch.float64)
    for i in range(0, len(windows), batch):
        part = windows[i : i + batch]
        streams = {s: torch.stack([w[s] for w in part]) for s in ds.streams}
        if isinstance(model, Stage1Model) and vocals is not None:  # read other vocal streams
            for role in ("semantic", "acoustic"):
                streams[f"{model.vocal_source}_{role}"] = streams[f"{vocals}_{role}"]
        with torch.inference_mode():
            out = model.loss_on_streams(streams)
            if listen and isinstance(model, Stage1Model):  # the trainer's listening gaps
                gap_sums += model.validation_sums(streams, out).cpu()
        loss_sum += float(out.loss) * int(out.count.sum())
        total = out if total is None else LossOutput(
            loss=out.loss, correct=total.correct + out.correct, count=total.count + out.count,
            level_names=out.level_names,
        )  # fmt: skip
    assert total is not None, f"no window of {seconds} s in {folder}"
    row = {"windows": float(len(windows)), "loss": loss_sum / int(total.count.sum())}
    if listen and isinstance(model, Stage1Model):
        gaps = (gap_sums / int(total.count.sum())).tolist()
        row |= dict(zip(model.validation_sum_names, gaps, strict=True))
    return row | {f"acc_{k}": v for k, v in total.accuracy().items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="a stage release folder")
    p.add_argument("--tokens", type=Path, nargs="+", required=True)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocals", help="stage 1: vocal streams to read (vocals or vocals_noisy)")
    p.add_argument("--listen", action="store_true", help="stage 1: matched vs shuffled vocals")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_stage(args.model)
    for folder in args.tokens:
        start = time.perf_counter()
        row = score(model, folder, seconds=args.seconds, batch=args.batch, vocals=args.vocals,
                    listen=args.listen)  # fmt: skip
        cells = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "windows")
        print(f"{folder}: {int(row['windows'])} windows, {cells} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

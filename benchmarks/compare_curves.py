"""Overlay the loss curves of training runs (their ``log.csv``) and print how far apart they are.

    python benchmarks/compare_curves.py runs/ddp/one runs/ddp/two --out docs/images/ddp_curves.png

Used for the check that two processes under torchrun train like one with the same global batch:
the relative difference of the train loss at each logged step, and of the validation loss.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read(run: Path, key: str) -> dict[int, float]:
    rows = list(csv.DictReader((run / "log.csv").open()))
    return {int(float(r["step"])): float(r[key]) for r in rows if r.get(key)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--out", type=Path, help="PNG to write")
    args = p.parse_args()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key in zip(axes, ("train_loss", "valid_loss"), strict=True):
        curves = {run: read(run, key) for run in args.runs}
        for run, curve in curves.items():
            ax.plot(list(curve), list(curve.values()), marker="." if key == "valid_loss" else None,
                    label=run.name)  # fmt: skip
        ax.set(title=key, xlabel="step")
        ax.legend()
        base, *others = curves.values()
        for run, curve in zip(args.runs[1:], others, strict=True):
            steps = sorted(set(base) & set(curve))
            diffs = [abs(curve[s] - base[s]) / base[s] for s in steps]
            first, last = steps[0], steps[-1]
            print(f"{key}: {run.name} vs {args.runs[0].name} over {len(steps)} logged steps: "
                  f"max relative difference {max(diffs):.2%}, mean {sum(diffs) / len(diffs):.2%}; "
                  f"{args.runs[0].name} falls {base[first]:.3f} -> {base[last]:.3f} "
                  f"({1 - base[last] / base[first]:.1%})")  # fmt: skip
    fig.tight_layout()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=100)
        print(args.out)


if __name__ == "__main__":
    main()

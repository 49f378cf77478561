"""The ablation table (docs/model.md) from ``singsong eval run`` results of the ablation arms.

    python benchmarks/ablation_table.py runs/ablation/eval-*/metrics.json \
        --times runs/ablation/times.tsv > runs/ablation/table.md

Rows: the references (ground truth, shuffled, retrieval baseline), then each model (the bundle
folder's name, e.g. ``SA-noise``); per vocal condition (isolated, separated): FAD, harmonic fit,
key vs vocals, beat alignment, vocal copy, and "listens" (the model's harmonic fit with the
clip's vocals minus with another clip's vocals). Means with bootstrap 95 % intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from singsong.evaluation.report import _cell

SET = "pairs_mir1k"
REFERENCES = ("ground_truth", "shuffled", "baseline")
COLUMNS = ("fad", "harmonic_fit", "key_vs_vocals", "beat_alignment", "vocal_copy")


def cell(stat: dict[str, float] | None, digits: int) -> str:
    return _cell(stat, digits) if stat else "-"


def name_of(system: str) -> str:
    return Path(system.removeprefix("model:")).name if system.startswith("model:") else system


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("metrics", type=Path, nargs="+", help="metrics.json of eval runs")
    p.add_argument("--set", default=SET, help=f"pairs set (default {SET})")
    p.add_argument("--times", type=Path, help="arm<TAB>seconds of training")
    args = p.parse_args()

    rows: dict[str, dict[str, Any]] = {}  # system -> condition -> stats
    clips = set()
    for path in args.metrics:
        s = json.loads(path.read_text())["sets"][args.set]
        clips.add(s["clips"])
        for cond, per in s["conditions"].items():
            for system, stats in per.items():
                if system in REFERENCES or system.startswith("model:"):
                    listens = s.get("listening", {}).get(cond, {}).get(system, {})
                    stats = stats | {"listens": listens.get("harmonic_fit")}
                    rows.setdefault(name_of(system), {})[cond] = stats
    times = {}
    if args.times and args.times.is_file():
        for line in args.times.read_text().splitlines():
            arm, seconds = line.split("\t")
            times[arm] = float(seconds)
    order = [r for r in REFERENCES if r in rows] + sorted(r for r in rows if r not in REFERENCES)
    print(f"Held-out MIR-1K singers ({args.set}, {'/'.join(map(str, sorted(clips)))} clips), "
          "means with bootstrap 95 % intervals.\n")  # fmt: skip
    for cond in ("isolated", "separated"):
        head = ["system", *COLUMNS, "listens (harmonic fit)"]
        if times:
            head.append("training (min)")
        print(f"### {cond} vocals\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for name in order:
            stats = rows[name].get(cond)
            if not stats:
                continue
            cells = [cell(stats.get(c), 1 if c == "fad" else 3) for c in COLUMNS]
            cells.append(cell(stats.get("listens"), 3))
            if times:
                cells.append(f"{times[name] / 60:.0f}" if name in times else "")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()

"""Run ``singsong eval run`` on the held-out clips of the real pairs sets and time it.

    python -u benchmarks/eval_run.py --out runs/eval \
        data/pairs_songbook/manifest.jsonl data/pairs_mir1k/manifest.jsonl --max-clips 50

Writes OUT/report.md, OUT/metrics.json (see singsong.evaluation.run); prints per-set timings.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from singsong.evaluation.run import EvalConfig, evaluate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("manifests", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--max-clips", type=int, default=50)
    p.add_argument("--index-items", type=int, default=400)
    p.add_argument("--model", action="append", default=[])
    args = p.parse_args()
    torch.set_num_threads(1)  # two shared cores: one thread is fastest and fair to others
    start = time.perf_counter()
    config = EvalConfig(
        manifests=tuple(args.manifests),
        out=args.out,
        models=tuple(args.model),
        max_clips=args.max_clips,
        index_items=args.index_items,
    )
    result = evaluate(config)
    for name, s in result["sets"].items():
        print(name, json.dumps({"clips": s["clips"], **s["seconds"]}))
        print(" generation s/clip:", json.dumps(s["generation_seconds_per_clip"]))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

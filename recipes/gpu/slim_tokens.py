"""Slim copies of the default recipe's token folders for training the planner and the renderer
on a GPU machine that only a small folder can reach (`singsong.tokenizers.slim`): the planner
reads the vocals' noisy semantic codes and the instrumental's semantic codes, the renderer the
instrumental's semantic codes and its first 4 acoustic levels.

    python recipes/gpu/slim_tokens.py --data data --out gpu_tokens
    # then, there: singsong train stage1 --config recipes/planner/planner.json \
    #   --semantic runs/semantic/default --tokens gpu_tokens/planner/tok_{songbook,mir1k}_train \
    #   --valid gpu_tokens/planner/tok_{songbook,mir1k}_valid --out runs/planner-gpu --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from singsong.tokenizers.slim import slim_copy

FOLDERS = ("tok_songbook_train", "tok_mir1k_train", "tok_songbook_valid", "tok_mir1k_valid")
MODELS = {
    "planner": ({"vocals_noisy_semantic", "instrumental_semantic"}, {}),
    "renderer": ({"instrumental_semantic", "instrumental_acoustic"}, {"instrumental_acoustic": 4}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("data"), help="the token folders' parent")
    p.add_argument("--out", type=Path, required=True, help="folder to write (one per model)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    a = p.parse_args()
    for model in a.models:
        streams, levels = MODELS[model]
        for name in FOLDERS:
            dst = slim_copy(a.data / name, a.out / model / name, streams=streams, levels=levels)
            size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
            print(f"{dst}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

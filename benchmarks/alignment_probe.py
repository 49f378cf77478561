"""Can the decoder find "the vocals of now"? A synthetic probe of the stage models' cross-attention.

    python -u benchmarks/alignment_probe.py            # ~6 min on one CPU core
    python -u benchmarks/alignment_probe.py --steps 300 --modes none aligned

The task is as simple as a time-aligned accompaniment can get: source and target are sequences of
the same length on the same time axis, and target[t] = perm[source[t]] for a fixed random
permutation. Nothing but the source code *at the same time* predicts a target code, so a model
that cannot align the two sequences stays at the unconditional loss, log(vocabulary), however
long it trains. The same small :class:`~singsong.models.seq2seq.CodeLM` is trained (same seed,
data and steps) with each way of knowing when a code sounds:

- ``none``: content-only cross-attention (T5's): nothing tells a query where "now" is;
- ``time_axis``: shared-time sinusoids added to both sequences' embeddings (Stage1Config
  ``time_axis``);
- ``aligned``: time-aligned cross-attention, queries and keys rotated by their times
  (Stage1Config ``aligned_attention``).

Prints loss and accuracy per mode every ``--every`` steps, side by side, and the machine.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from typing import Any

import torch

from singsong.models.codes import LevelVocab
from singsong.models.seq2seq import CodeLM

MODES: dict[str, dict[str, Any]] = {
    "none": {},
    "time_axis": {"time_embedding": True},
    "aligned": {"aligned_attention": True},
}


def train_mode(mode: str, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    """Train one model on the probe task -> [(step, loss, accuracy)] every ``args.every``."""
    torch.manual_seed(args.seed)
    vocab = LevelVocab(names=("code",), sizes=(args.vocab,))
    model = CodeLM(
        source_vocab=vocab, target_vocab=vocab, dim=128, heads=4, encoder_layers=2,
        decoder_layers=2, mlp_ratio=4.0, mlp="swiglu", dropout=0.0, **MODES[mode],
    )  # fmt: skip
    perm = torch.randperm(args.vocab, generator=torch.Generator().manual_seed(args.seed))
    data = torch.Generator().manual_seed(args.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    levels = torch.zeros(args.length, dtype=torch.long)  # [L]: one level
    times = torch.arange(args.length, dtype=torch.float32) if mode != "none" else None  # [L]
    rows = []
    for step in range(1, args.steps + 1):
        source = torch.randint(0, args.used, (args.batch, args.length), generator=data)  # [B, L]
        target = perm[source]
        logits = model(source, levels, target, levels, source_times=times, target_times=times)
        out = model.loss(logits, target, levels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if step % args.every == 0 or step == args.steps:
            rows.append((step, out.loss.item(), out.accuracy()["all"]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=100, help="positions per sequence")
    p.add_argument("--vocab", type=int, default=1024, help="codebook size (as the real codes)")
    p.add_argument("--used", type=int, default=64, help="codes that occur (chance = 1 / used)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    results, seconds = {}, {}
    for mode in args.modes:
        start = time.perf_counter()
        results[mode] = train_mode(mode, args)
        seconds[mode] = time.perf_counter() - start
    print(f"{platform.machine()}, one thread; {args.steps} steps of {args.batch} x {args.length} "
          f"positions; unconditional loss log({args.used}) = {math.log(args.used):.2f}, "
          f"chance accuracy {1 / args.used:.3f}")  # fmt: skip
    print("| step | " + " | ".join(f"{m} loss / acc" for m in args.modes) + " |")
    print("|---:|" + "---:|" * len(args.modes))
    for i, (step, *_) in enumerate(results[args.modes[0]]):
        cells = [f"{results[m][i][1]:.2f} / {results[m][i][2]:.3f}" for m in args.modes]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print("seconds: " + ", ".join(f"{m} {s:.0f}" for m, s in seconds.items()))


if __name__ == "__main__":
    main()

"""Does the FAD embedding rank real music above degraded music? (docs/evaluation.md)

Real mixes (true vocals + true instrumental) of held-out clips are compared with real mixes of
training clips (the reference), then the same held-out mixes degraded in ways a generator can
fail: noise, a 2 kHz low-pass, hard clipping, time-scrambling (250 ms pieces), the instrumental
missing (vocals alone), the vocals missing. A useful embedding gives the real set the smallest
distance, with intervals that do not overlap the degraded ones.

    python -u benchmarks/eval_fad_sanity.py data/pairs_songbook/manifest.jsonl --clips 40
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from singsong import SAMPLE_RATE
from singsong.audio import FloatArray, resample
from singsong.evaluation.baseline import read_segment
from singsong.evaluation.embeddings import load_embedding
from singsong.evaluation.fad import bootstrap_fad, one_blas_thread
from singsong.evaluation.run import _fit_length, _mixes, is_heldout


def _noise(x: FloatArray) -> FloatArray:  # white noise 10 dB below the music
    rng = np.random.default_rng(0)
    return (x + np.sqrt(np.mean(x**2) / 10) * rng.normal(size=x.size)).astype(np.float32)


def _lowpass(x: FloatArray) -> FloatArray:
    return resample(resample(x, SAMPLE_RATE, 4000), 4000, SAMPLE_RATE)[: x.size]


def _clip(x: FloatArray) -> FloatArray:
    return np.clip(x * 8, -0.99, 0.99).astype(np.float32)


def _scramble(x: FloatArray) -> FloatArray:
    n = SAMPLE_RATE // 4
    pieces = [x[i : i + n] for i in range(0, x.size, n)]
    order = np.random.default_rng(0).permutation(len(pieces))
    return np.concatenate([pieces[i] for i in order])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("manifest", type=Path)
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--embedding", default="musicfeat")
    p.add_argument("--weights")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [json.loads(line) for line in args.manifest.read_text().splitlines()]

    def pick(held: bool) -> list[dict]:
        sel = [r for r in rows if is_heldout(r) == held and "true_vocals" in r]
        return [sel[i] for i in np.linspace(0, len(sel) - 1, args.clips).astype(int)]

    def stems(r: dict) -> tuple[FloatArray, FloatArray]:
        v = read_segment(args.manifest.parent / r["true_vocals"], r["offset"], r["duration"])
        i = read_segment(args.manifest.parent / r["true_instrumental"], r["offset"], r["duration"])
        return v, _fit_length(i, v.size)

    emb = load_embedding(args.embedding, args.weights)
    start = time.perf_counter()
    reference = [emb.embed(_mixes(*stems(r))[1]) for r in pick(False)]
    test = [stems(r) for r in pick(True)]
    variants: dict[str, Callable[[FloatArray, FloatArray], FloatArray]] = {
        "real": lambda v, i: _mixes(v, i)[1],
        "noise_10dB": lambda v, i: _noise(_mixes(v, i)[1]),
        "lowpass_2k": lambda v, i: _lowpass(_mixes(v, i)[1]),
        "clipped_x8": lambda v, i: _clip(_mixes(v, i)[1]),
        "scrambled_250ms": lambda v, i: _scramble(_mixes(v, i)[1]),
        "vocals_only": lambda v, i: v,
        "instrumental_only": lambda v, i: i,
    }
    result = {}
    with one_blas_thread():
        for name, make in variants.items():
            e = [emb.embed(make(v, i)) for v, i in test]
            value, low, high = bootstrap_fad(e, reference, rounds=200)
            result[name] = {"fad": value, "low": low, "high": high}
            print(f"{name:18s} {value:9.2f} [{low:.2f}, {high:.2f}]", flush=True)
    print(f"{args.manifest.parent.name}: {len(test)} vs {len(reference)} clips, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Separation quality, speed and vocal residue on held-out songbook songs and MIR-1K singers.

    python benchmarks/separation_eval.py --separator-path runs/separator/release \
        --songbook data/songbook --mir1k ../shared/data/mir1k [--songs 20] [--clips 100]

For each held-out track: SI-SDR of vocals and instrumental for the builtin separator and the
REPET-SIM baseline, and SI-SDR improvement over the mixture (the mixture itself taken as the
estimate). Throughput of each separator in seconds of audio per wall second, measured in this
run. Residue: energy of (separated - true vocals) relative to the true vocals, in dB, and how
white noise at the SNRs the model stage adds compares with that residue (noise-to-residue ratio:
above 0 dB the noise masks the residue).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from singsong.data.pairs import discover_tracks, load_separator
from singsong.metrics import si_sdr

NOISE_SNRS = (30, 20, 10, 5, 0)


def _db(x: float) -> float:
    return float(10 * np.log10(max(x, 1e-20)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--separator-path", required=True)
    parser.add_argument("--songbook", type=Path, required=True)
    parser.add_argument("--mir1k", type=Path, required=True)
    parser.add_argument("--songs", type=int, default=20, help="held-out songbook songs")
    parser.add_argument("--clips", type=int, default=120, help="held-out MIR-1K clips")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    systems = {
        "builtin": load_separator("builtin", args.separator_path),
        "repet-sim": load_separator("repet-sim"),
    }
    corpora = {
        "songbook": discover_tracks(args.songbook, split="valid")[: args.songs],
        "mir1k": discover_tracks(args.mir1k, split="valid")[: args.clips],
    }
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}\n")
    print(
        "| corpus | system | vocals SI-SDR | SI-SDRi | instrumental SI-SDR | SI-SDRi "
        "| x real time |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    residues: dict[str, list[float]] = {}
    for corpus, tracks in corpora.items():
        truths = [t.load_true_stems() for t in tracks]
        mixtures = [t.load_mixture() for t in tracks]
        seconds = sum(len(m) for m in mixtures) / 16000
        for name, sep in systems.items():
            scores: dict[str, list[float]] = {k: [] for k in ("v", "vi", "i", "ii")}
            start = time.perf_counter()
            estimates = [sep.separate(m) for m in mixtures]
            speed = seconds / (time.perf_counter() - start)
            for est, truth, mix in zip(estimates, truths, mixtures, strict=True):
                assert truth is not None
                v = si_sdr(est.vocals, truth.vocals)
                i = si_sdr(est.instrumental, truth.instrumental)
                scores["v"].append(v)
                scores["vi"].append(v - si_sdr(mix, truth.vocals))
                scores["i"].append(i)
                scores["ii"].append(i - si_sdr(mix, truth.instrumental))
                if name == "builtin":
                    residue = np.sum((est.vocals - truth.vocals) ** 2) / np.sum(truth.vocals**2)
                    residues.setdefault(corpus, []).append(_db(residue))
            med = {k: float(np.median(x)) for k, x in scores.items()}
            print(
                f"| {corpus} ({len(tracks)}) | {name} | {med['v']:.2f} | {med['vi']:.2f} | "
                f"{med['i']:.2f} | {med['ii']:.2f} | {speed:.0f}x |"
            )
    print(
        "\nResidue in the builtin separator's vocals, (separated - true) relative to the true "
        "vocals (median dB), and the noise-to-residue ratio when white noise is added at each "
        "SNR (relative to the separated vocals):\n"
    )
    print("| corpus | residue | " + " | ".join(f"SNR {s} dB" for s in NOISE_SNRS) + " |")
    print("|---|---:|" + "---:|" * len(NOISE_SNRS))
    for corpus, values in residues.items():
        r = float(np.median(values))
        # Noise at SNR s has energy 10^(-s/10) of the vocals; the residue has 10^(r/10).
        ratios = [f"{-s - r:+.1f} dB" for s in NOISE_SNRS]
        print(f"| {corpus} | {r:.1f} dB | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()

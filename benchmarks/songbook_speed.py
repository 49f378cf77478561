"""Songbook rendering speed: seconds of finished song (all stems) per wall second.

    python benchmarks/songbook_speed.py [--minutes 10]

Renders the same songs with --jobs 1 and --jobs 2 in one run (this machine is shared and noisy,
so the ratio measured side by side is the number to trust), into temporary folders.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from singsong.songbook.corpus import SongbookConfig, build_songbook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="audio per configuration")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            config = SongbookConfig(
                out=Path(tmp) / f"jobs{jobs}", hours=args.minutes / 60, seed=args.seed, jobs=jobs
            )
            results[jobs] = build_songbook(config, progress=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    for jobs, s in results.items():
        print(
            f"--jobs {jobs}: {s['audio_seconds']:.0f} s of songs ({s['songs']} songs) in "
            f"{s['wall_seconds']:.1f} s wall = {s['x_real_time']:.1f}x real time"
        )
    ratio = results[2]["x_real_time"] / results[1]["x_real_time"]
    print(f"speed-up of 2 jobs over 1: {ratio:.2f}x")


if __name__ == "__main__":
    main()

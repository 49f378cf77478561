"""Statistics of a rendered songbook and how well its singer follows the written notes.

    python benchmarks/songbook_report.py data/songbook [--pitch-songs 24] [--json report.json]

Prints Markdown: songs and hours, distributions over styles, keys, meters, tempos, voices and
General MIDI programs, and the vocal's pitch error in cents against meta.json (pYIN on the
rendered vocal stem, over voiced frames inside written notes), on a seeded sample of songs.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import time
from pathlib import Path

import numpy as np

from singsong.audio import load_audio
from singsong.songbook.voice import SungNote, pitch_error_cents


def _table(counter: collections.Counter, title: str) -> str:
    total = sum(counter.values())
    rows = [f"| {title} | songs | share |", "|---|---:|---:|"]
    for name, n in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        rows.append(f"| {name} | {n} | {100 * n / total:.1f} % |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("songbook", type=Path)
    parser.add_argument("--pitch-songs", type=int, default=24, help="songs sampled for pitch")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()

    metas = [json.loads(p.read_text()) for p in sorted(args.songbook.glob("*/meta.json"))]
    if not metas:
        raise SystemExit(f"no songs in {args.songbook}")
    hours = sum(m["duration"] for m in metas) / 3600
    styles = collections.Counter(m["style"] for m in metas)
    keys = collections.Counter(m["key"] for m in metas)
    meters = collections.Counter(m["time_signature"] for m in metas)
    voices = collections.Counter(m["voice"] for m in metas)
    bins = [int(m["tempo"] // 20 * 20) for m in metas]
    tempo_bins = collections.Counter(f"{b}-{b + 19}" for b in bins)
    programs = collections.Counter(
        p["program"] for m in metas for p in m["programs"] if not p["is_drum"]
    )
    kits = collections.Counter(p["program"] for m in metas for p in m["programs"] if p["is_drum"])

    rng = np.random.default_rng(0)
    sample = rng.choice(len(metas), size=min(args.pitch_songs, len(metas)), replace=False)
    errors, coverages = [], []
    start = time.perf_counter()
    for i in sorted(sample):
        meta = metas[i]
        wav = load_audio(args.songbook / meta["song_id"] / "vocals.flac")
        notes = [SungNote(**n) for n in meta["vocal_notes"]]
        error, coverage = pitch_error_cents(wav, 16000, notes)
        errors.append(error)
        coverages.append(coverage)
    pitch_seconds = time.perf_counter() - start

    print(f"# Songbook report: {args.songbook}\n")
    print(
        f"{len(metas)} songs, {hours:.2f} hours; machine: {platform.machine()}, "
        f"{platform.processor() or 'cpu'}\n"
    )
    print(
        f"{len(keys)} of 24 keys, tempos {min(m['tempo'] for m in metas):.0f}-"
        f"{max(m['tempo'] for m in metas):.0f} BPM, {len(programs)} distinct melodic General "
        f"MIDI programs and {len(kits)} drum kits.\n"
    )
    for counter, title in (
        (styles, "style"),
        (meters, "time signature"),
        (voices, "voice"),
        (tempo_bins, "tempo (BPM)"),
        (keys, "key"),
    ):
        print(_table(counter, title) + "\n")
    print(
        "Programs (GM number: songs): "
        + ", ".join(f"{p}: {n}" for p, n in sorted(programs.items()))
        + "\n"
    )
    print(
        f"Vocal pitch against the written notes on {len(errors)} songs (pYIN, "
        f"{pitch_seconds:.0f} s): median of per-song median errors {np.median(errors):.1f} cents "
        f"(max {np.max(errors):.1f}), voiced coverage of note time {np.median(coverages):.2f} "
        f"(min {np.min(coverages):.2f})."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "songs": len(metas),
                    "hours": hours,
                    "styles": styles,
                    "keys": keys,
                    "meters": meters,
                    "voices": voices,
                    "tempo_bins": tempo_bins,
                    "programs": programs,
                    "kits": kits,
                    "pitch_error_cents": errors,
                    "voiced_coverage": coverages,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

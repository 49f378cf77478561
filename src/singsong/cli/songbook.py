"""``singsong songbook``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from singsong.cli.args import positive_float, positive_int


def add_songbook(sub: argparse._SubParsersAction) -> None:
    from singsong.songbook.styles import STYLE_NAMES

    p = sub.add_parser(
        "songbook",
        help="render a synthetic multitrack corpus with exact stems",
        description="Compose and render songs (vocals, drums, bass, other, mixture) until the "
        "corpus holds HOURS of audio. Re-running skips finished songs.",
    )
    p.add_argument("--hours", type=positive_float, required=True, help="total duration to render")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--styles",
        nargs="+",
        choices=STYLE_NAMES,
        default=list(STYLE_NAMES),
        metavar="STYLE",
        help=f"styles to draw from (default all: {' '.join(STYLE_NAMES)})",
    )
    p.add_argument("--short", action="store_true", help="short songs (about 20 s) for quick tests")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local process pool (default) or a Ray cluster",
    )
    p.add_argument("--soundfont", help="General MIDI .sf2 (default: Debian's FluidR3_GM)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_songbook)


def run_songbook(args: argparse.Namespace) -> int:
    from singsong.songbook.corpus import SongbookConfig, build_songbook

    config = SongbookConfig(
        out=args.out,
        hours=args.hours,
        seed=args.seed,
        jobs=args.jobs,
        styles=tuple(args.styles),
        short=args.short,
        soundfont=args.soundfont,
    )
    summary = build_songbook(config, progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 1 if summary["failed"] else 0

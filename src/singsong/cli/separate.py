"""``singsong separate train|run`` and ``singsong data pairs``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from singsong.cli.args import positive_float, positive_int

SEPARATORS = ("builtin", "oracle", "repet-sim", "demucs")


def add_separate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("separate", help="source separation: train the builtin model, or run one")
    cmds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = cmds.add_parser("train", help="train the builtin separator (resumes from RUN)")
    t.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log)")
    t.add_argument("--songbook", type=Path, help="a rendered songbook")
    t.add_argument("--mir1k", type=Path, help="the MIR-1K folder (train singers only are used)")
    t.add_argument("--steps", type=positive_int, default=3000)
    t.add_argument("--preset", choices=("default", "debug"), default="default")
    t.add_argument("--batch-size", type=positive_int, default=16)
    t.set_defaults(run=run_train)
    r = cmds.add_parser("run", help="separate audio files into vocals and instrumental")
    r.add_argument("inputs", nargs="+", type=Path, help="audio files")
    r.add_argument("--out", type=Path, required=True, help="output folder")
    r.add_argument("--separator", choices=SEPARATORS, default="builtin")
    r.add_argument("--model", help="separator weights (builtin: a release folder)")
    r.set_defaults(run=run_separate)


def run_train(args: argparse.Namespace) -> int:
    from singsong.separate.train import TrainConfig, train

    cfg = TrainConfig(preset=args.preset, steps=args.steps, batch_size=args.batch_size)
    release = train(args.out, songbook=args.songbook, mir1k=args.mir1k, cfg=cfg)
    print(f"separator released to {release}")
    return 0


def run_separate(args: argparse.Namespace) -> int:
    from singsong.audio import save_audio
    from singsong.data.pairs import discover_tracks, load_separator

    separator = load_separator(args.separator, args.model)
    for path in args.inputs:
        for track in discover_tracks(path):
            result = separator.separate_track(track)
            folder = args.out / track.id
            save_audio(folder / "vocals.wav", result.vocals, clip=True)
            save_audio(folder / "instrumental.wav", result.instrumental, clip=True)
            print(f"{path} -> {folder}/{{vocals,instrumental}}.wav")
    return 0


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="data stages: training pairs")
    cmds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = cmds.add_parser(
        "pairs",
        help="songs -> separated (vocals, instrumental) clips + a JSONL manifest",
        description="Separate every song in SOURCE (a folder of audio files, a songbook or the "
        "MIR-1K folder), cut 10 s clips where the separated vocals sing, write OUT/manifest.jsonl."
        " Finished songs are skipped on a re-run.",
    )
    q.add_argument("source", type=Path)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--separator", choices=SEPARATORS, default="builtin")
    q.add_argument("--separator-path", help="weights of the builtin or demucs separator")
    q.add_argument(
        "--split",
        choices=("train", "valid", "all"),
        default="all",
        help="songbook/MIR-1K split to use (default all)",
    )
    q.add_argument("--clip-seconds", type=positive_float, default=10.0)
    q.add_argument("--hop-seconds", type=positive_float, default=10.0)
    q.add_argument(
        "--min-activity",
        type=float,
        default=0.5,
        help="fraction of a clip's frames where the vocals must sing (default 0.5)",
    )
    q.add_argument("--engine", choices=("local", "ray"), default="local")
    q.add_argument("--jobs", type=positive_int, default=1)
    q.set_defaults(run=run_pairs)


def run_pairs(args: argparse.Namespace) -> int:
    from singsong.data.pairs import PairsConfig, build_pairs, discover_tracks

    config = PairsConfig(
        out=str(args.out),
        separator=args.separator,
        separator_path=args.separator_path,
        clip_seconds=args.clip_seconds,
        hop_seconds=args.hop_seconds,
        min_activity=args.min_activity,
    )
    tracks = discover_tracks(args.source, split=args.split)
    summary = build_pairs(config, tracks, engine=args.engine, jobs=args.jobs)
    print(json.dumps(summary, indent=1))
    if summary["failed"]:
        print(f"{len(summary['failed'])} tracks failed", file=sys.stderr)
        return 1
    return 0

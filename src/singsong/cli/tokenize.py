"""``singsong tokenize``: a clip manifest -> token shards (semantic + acoustic codes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from singsong.cli.args import positive_int

# = singsong.models.noise.TRAIN_SNR_DB (a test checks); not imported so that --help needs no torch
DEFAULT_NOISE_SNR_DB = (10.0, 30.0)


def add_tokenize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenize",
        help="encode a clip manifest into token shards",
        description="Encode the vocals and instrumental of every clip in MANIFEST (JSONL rows "
        "with id, vocals, instrumental, optional offset/duration in seconds) with a semantic and "
        "an acoustic tokenizer, into uint16 shards plus tokens.json. Re-running skips finished "
        "shards and retries clips that failed.",
    )
    p.add_argument("manifest", type=Path, metavar="MANIFEST", help="clip manifest (.jsonl)")
    p.add_argument(
        "--semantic", type=Path, required=True, metavar="DIR", help="semantic tokenizer folder"
    )
    p.add_argument(
        "--acoustic",
        type=Path,
        required=True,
        metavar="DIR",
        help="acoustic codec folder (singsong codec, or a transformers DAC/EnCodec folder)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--shard-size", type=positive_int, default=256, help="clips per shard (default 256)"
    )
    p.add_argument(
        "--vocal-levels",
        type=positive_int,
        default=None,
        metavar="K",
        help="keep only the first K acoustic levels of the vocals (default: all)",
    )
    p.add_argument(
        "--split",
        choices=("train", "valid"),
        help="keep only this split's clips (held-out singers and songs: singsong.data.splits)",
    )
    p.add_argument(
        "--noise-snr",
        type=float,
        nargs=2,
        default=list(DEFAULT_NOISE_SNR_DB),
        metavar=("LOW", "HIGH"),
        help="also write vocals_noisy_* streams: the vocals with white noise at an SNR uniform "
        "in [LOW, HIGH] dB per clip, what stage 1 trains on (default %(default)s)",
    )
    p.add_argument("--no-noise", action="store_true", help="no vocals_noisy_* streams")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the vocal noise (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_tokenize)


def run_tokenize(args: argparse.Namespace) -> int:
    from singsong.tokenizers.loader import load_tokenizer
    from singsong.tokenizers.shards import NoiseSpec, tokenize_manifest

    noise = None if args.no_noise else NoiseSpec(tuple(args.noise_snr), args.noise_seed)

    summary = tokenize_manifest(
        args.manifest,
        semantic=load_tokenizer(args.semantic),
        acoustic=load_tokenizer(args.acoustic),
        out=args.out,
        shard_size=args.shard_size,
        vocal_levels=args.vocal_levels,
        split=args.split,
        noise=noise,
        progress=not args.quiet,
    )
    failed = summary.pop("failed")
    print(json.dumps(summary | {"failed": len(failed)}, indent=1))
    for row in failed:
        print(f"failed: {row['id']}: {row['error']}", file=sys.stderr)
    # Like the songbook: non-zero while any clip failed; a re-run retries only those shards.
    return 1 if failed else 0

"""``singsong bundle``: assemble trained parts into a model folder for ``singsong accompany``."""

from __future__ import annotations

import argparse
from pathlib import Path

from singsong.cli.args import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)


def add_bundle(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bundle",
        help="assemble tokenizers and trained stages into a model folder",
        description="Check that the parts fit (vocabularies, levels, featurization, and that "
        "each stage was trained on these tokenizers' codes) and write OUT/{semantic,codec,"
        "stage1,stage2}/ (+ OUT/planner/ with --planner) + OUT/singsong.json. The vocal noise "
        "at inference follows the training of the model that reads the vocals (the planner if "
        "any, else stage 1).",
    )
    p.add_argument("--semantic", type=Path, required=True, metavar="DIR")
    p.add_argument("--codec", type=Path, required=True, metavar="DIR")
    p.add_argument(
        "--stage1",
        type=Path,
        required=True,
        metavar="DIR",
        help="a stage-1 release, or a renderer release (`singsong train renderer`; needs "
        "--planner)",
    )
    p.add_argument("--stage2", type=Path, required=True, metavar="DIR", help="a stage release")
    p.add_argument(
        "--planner",
        type=Path,
        metavar="DIR",
        help="a semantic-only stage-1 release (coarse_levels 0) that writes the semantic codes; "
        "stage 1 then writes only the coarse codes",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--window", type=positive_float, default=6.0, help="seconds (default 6)")
    p.add_argument("--overlap", type=non_negative_float, default=2.0, help="seconds (default 2)")
    p.add_argument("--temperature", type=non_negative_float, default=1.0)
    p.add_argument("--top-k", type=non_negative_int, default=0, help="0 = off (default)")
    p.add_argument("--top-p", type=unit_interval, default=1.0, help="1 = off (default)")
    p.add_argument(
        "--guidance",
        type=non_negative_float,
        default=1.0,
        help="default vocal guidance of the model that reads the vocals (1 = off, default)",
    )
    p.add_argument(
        "--plan-guidance",
        type=non_negative_float,
        default=None,
        help="a renderer's guidance towards its plan (1 = off; default: the release's)",
    )
    p.add_argument(
        "--tone-match",
        type=Path,
        action="append",
        default=[],
        metavar="MANIFEST",
        help="fit the tone match on training clips of this pairs manifest (repeatable): the "
        "bundle's accompaniments of their vocals against their true instrumentals",
    )
    p.add_argument(
        "--tone-clips",
        type=positive_int,
        default=32,
        help="training clips per --tone-match manifest (default 32)",
    )
    p.add_argument(
        "--tone-adapt",
        type=unit_interval,
        default=0.0,
        metavar="STRENGTH",
        help="per-clip tone adaptation, 0-1 (needs --tone-match): how far each instrumental's "
        "balance is moved to the average of the true instrumentals (default 0: off)",
    )
    p.add_argument("--release", default="", help="name and version, e.g. 'singsong-default 0.1'")
    p.add_argument(
        "--fp16", action="store_true", help="store the stage weights in float16 (half the size)"
    )
    p.set_defaults(run=run_bundle)


def run_bundle(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from singsong.evaluation.run import training_pairs
    from singsong.pipeline.bundle import BundleConfig, assemble_bundle

    # read the training clips first: a bad manifest fails before the parts are loaded
    clips = [c for m in args.tone_match for c in training_pairs(m, args.tone_clips)]
    config = BundleConfig(
        window_seconds=args.window,
        overlap_seconds=args.overlap,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        guidance=args.guidance,
        release=args.release,
    )
    out = assemble_bundle(
        semantic=args.semantic,
        codec=args.codec,
        stage1=args.stage1,
        stage2=args.stage2,
        planner=args.planner,
        out=args.out,
        config=config,
        fp16=args.fp16,
        plan_guidance=args.plan_guidance,
        tone_clips=None if not clips else tqdm(clips, desc="tone match", unit="clip"),
        tone_adapt=args.tone_adapt,
    )
    print(out)
    return 0

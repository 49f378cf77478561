"""``singsong train stage1|stage2``: train a stage model on a token folder.

Multi-GPU / multi-node: launch the same command under torchrun, e.g.
``torchrun --nproc_per_node 8 -m singsong.training stage1 --config small --tokens T --out R``
(``--batch-size`` stays the global batch; it is split over the processes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from singsong.cli.args import positive_int
from singsong.errors import SingsongError


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train stage 1 (vocals -> semantic + coarse), stage 2 (coarse -> fine) or a "
        "renderer (plan -> coarse, for a bundle with a planner)",
        description="Train a stage model on token windows; RUN_DIR gets checkpoint.pt, log.csv, "
        "curves.png and, at the end, release/ (the model for `singsong accompany`).",
    )
    p.add_argument("stage", choices=("stage1", "stage2", "renderer"))
    p.add_argument(
        "--config",
        default="small",
        help="a preset (debug, tiny, small) or a JSON file {'model': {...}, 'train': {...}}",
    )
    p.add_argument(
        "--tokens",
        type=Path,
        nargs="+",
        required=True,
        metavar="DIR",
        help="token folder(s) of `singsong tokenize`, read as one training set",
    )
    p.add_argument(
        "--valid",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="validation token folder(s) "
        "(default: the training folders, in order: that measures fitting, not generalisation)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument("--steps", type=positive_int, help="override the config's total steps")
    p.add_argument("--batch-size", type=positive_int, help="override the global batch size")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: CUDA if any)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/checkpoint.pt")
    p.add_argument(
        "--stop-at",
        type=positive_int,
        metavar="STEP",
        help="stop after STEP steps of the config's schedule (checkpointed: --resume continues "
        "it) and release the model as it is then",
    )
    p.add_argument(
        "--init",
        type=Path,
        metavar="RELEASE",
        help="fine-tune: start from this released model of the stage (same tokenizers and "
        "weight shapes; settings that change no weight may differ) with a fresh optimizer and "
        "schedule",
    )
    p.add_argument(
        "--semantic",
        type=Path,
        metavar="RELEASE",
        help="the token folders' semantic tokenizer (stage-1 configs with semantic_features)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from singsong.training import load_run_config, train_stage

    run = load_run_config(args.stage, args.config)
    overrides = {"steps": args.steps, "batch_size": args.batch_size}
    if overrides := {k: v for k, v in overrides.items() if v is not None}:
        run = replace(run, train=replace(run.train, **overrides))
    import torch.distributed as dist

    try:
        release = train_stage(
            run, tokens=args.tokens, out=args.out, valid_tokens=args.valid, resume=args.resume,
            init=args.init, semantic=args.semantic, device=args.device,
            progress=not args.no_progress, stop_at=args.stop_at,
        )  # fmt: skip
        if dist.is_initialized():
            dist.barrier()  # rank 0 writes the release: nobody leaves before it is done
    finally:
        # Leaving with the process group alive aborts gloo's threads at exit (SIGABRT).
        if dist.is_initialized():
            dist.destroy_process_group()
    print(f"{args.stage} released to {release}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m singsong.training STAGE ...`` (what torchrun launches): the ``train``
    command alone, with the same error handling as ``singsong``."""
    parser = argparse.ArgumentParser(prog="singsong")
    add_train(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.run(args))
    except SingsongError as e:
        print(f"singsong train: error: {e}", file=sys.stderr)
        return 2

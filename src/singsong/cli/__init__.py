"""The ``singsong`` command line: a thin layer over the public Python API.

Each command module under ``singsong.cli`` has ``add_<name>`` functions that declare arguments
and point at a ``run_<name>`` function calling the library; heavy imports happen inside ``run_*``
so that ``singsong --help`` is instant and a missing optional extra only matters to the command
that needs it. Register a new command in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from singsong import __version__
from singsong.cli import (
    accompany,
    bundle,
    codec,
    evaluate,
    semantic,
    separate,
    serve,
    songbook,
    tokenize,
    train,
)
from singsong.errors import SingsongError

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    accompany.add_accompany,
    accompany.add_demo,
    songbook.add_songbook,
    separate.add_separate,
    separate.add_data,
    codec.add_codec,
    semantic.add_semantic,
    tokenize.add_tokenize,
    train.add_train,
    bundle.add_bundle,
    evaluate.add_eval,
    evaluate.add_baseline,
    serve.add_serve,
    serve.add_study,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="singsong", description="Listen to a singer, generate the band behind them."
    )
    parser.add_argument("--version", action="version", version=f"singsong {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SingsongError as e:
        print(f"singsong {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

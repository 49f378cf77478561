"""``singsong serve``: the web app; ``singsong study make|serve|results``: the listening study."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from singsong.cli.args import positive_float, positive_int

MODEL_ENV = "SINGSONG_MODEL"


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the web app: record or upload singing, hear and download accompaniments",
        description="Serve the singsong page and its JSON API (OpenAPI schema at /openapi.json). "
        "Listens on 127.0.0.1 unless --host is given.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV) or "default",
        help="model bundle folder, 'default' (the bundled model) or 'debug' (untrained); "
        f"default ${MODEL_ENV}, else 'default'",
    )
    p.add_argument("--workers", type=positive_int, default=2, help="generation threads (2)")
    p.add_argument("--queue", type=positive_int, default=32, help="jobs that may wait (32)")
    p.add_argument("--max-seconds", type=positive_float, default=60.0, help="longest input (60)")
    p.add_argument("--max-mb", type=positive_float, default=20.0, help="largest upload (20 MB)")
    p.add_argument("--ttl", type=positive_float, default=3600.0, help="keep results (3600 s)")
    p.add_argument("--data-dir", type=Path, help="job files (default: a temp folder)")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from singsong.app import AppSettings, create_app

    settings = AppSettings(
        model=args.model,
        data_dir=args.data_dir,
        workers=args.workers,
        queue_size=args.queue,
        max_upload_bytes=int(args.max_mb * 2**20),
        max_seconds=args.max_seconds,
        result_ttl_s=args.ttl,
    )
    if settings.is_debug_model:
        print(
            "singsong serve: WARNING: serving the untrained debug model: its accompaniments are "
            f"noise, for testing only. Pass --model PATH or set ${MODEL_ENV} to a model bundle.",
            file=sys.stderr,
        )
    app = create_app(settings)
    print(
        f"singsong: open http://{args.host}:{args.port}/ (API schema at /openapi.json)",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="pairwise listening study: build it, serve the page, compute win rates",
        description="A listener hears two mixes with the same vocals and picks the one whose "
        "accompaniment fits better; win rates per system pair with Wilson 95% intervals.",
    )
    study = p.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    m = study.add_parser(
        "make",
        help="build STUDY_DIR from folders of mixes, one per system, with matching file names",
    )
    m.add_argument("study_dir", type=Path, metavar="STUDY_DIR", help="folder to create")
    m.add_argument(
        "--system",
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a system and its folder of mixes (give two or more)",
    )
    m.add_argument("--vocals", type=Path, metavar="DIR", help="folder of the vocals alone")
    m.add_argument(
        "--no-normalize",
        action="store_true",
        help="keep each clip's loudness (default: all at -23 LUFS, so loudness cannot decide)",
    )
    m.set_defaults(run=run_study_make)

    s = study.add_parser("serve", help="serve the study page")
    s.add_argument("study_dir", type=Path, metavar="STUDY_DIR", help="folder with study.json")
    s.add_argument("--db", type=Path, help="answers database (default STUDY_DIR/answers.sqlite)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=positive_int, default=8001, help="port (default 8001)")
    s.set_defaults(run=run_study_serve)

    r = study.add_parser("results", help="win rates per system pair with Wilson 95%% CIs")
    r.add_argument("study_dir", type=Path, metavar="STUDY_DIR", help="folder with the answers")
    r.add_argument("--db", type=Path, help="answers database (default STUDY_DIR/answers.sqlite)")
    r.add_argument("-o", "--out", type=Path, help="also write a .md, .json or .csv file")
    r.set_defaults(run=run_study_results)


def _systems(specs: list[str]) -> dict[str, Path]:
    from singsong.errors import SingsongError

    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise SingsongError(f"--system {spec!r}: expected NAME=DIR")
        if name in out:
            raise SingsongError(f"--system {name!r} given twice")
        out[name] = Path(folder)
    return out


def run_study_make(args: argparse.Namespace) -> int:
    from singsong.app.study import STUDY_LUFS, make_study

    study, skipped = make_study(
        args.study_dir,
        _systems(args.system),
        vocals=args.vocals,
        lufs=None if args.no_normalize else STUDY_LUFS,
    )
    print(f"{args.study_dir / 'study.json'}: {len(study.items)} items, systems {study.systems}")
    if skipped:
        print(f"skipped (not in every system folder): {', '.join(skipped)}", file=sys.stderr)
    return 0


def run_study_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from singsong.app import StudySettings, create_study_app

    settings = StudySettings(args.study_dir, args.db)
    app = create_study_app(settings)
    print(f"singsong study: open http://{args.host}:{args.port}/ ; answers go to {settings.db}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def run_study_results(args: argparse.Namespace) -> int:
    from singsong.app.settings import StudySettings
    from singsong.app.study import (
        StudyDB,
        format_table,
        pair_results,
        system_results,
        write_results,
    )
    from singsong.errors import SingsongError

    path = StudySettings(args.study_dir, args.db).db
    if not path.is_file():
        raise SingsongError(f"no answers database at {path}")
    answers = StudyDB(path).answers()
    if not answers:
        raise SingsongError(f"{path} holds no answers yet")
    print(f"{len(answers)} answers from {len({a.listener for a in answers})} listeners\n")
    print(format_table(pair_results(answers)))
    print()
    print(format_table(system_results(answers)))
    if args.out is not None:
        print(write_results(args.out, answers))
    return 0

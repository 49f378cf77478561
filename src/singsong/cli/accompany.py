"""``singsong accompany VOCALS``: generate instrumentals for a vocal recording."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from singsong.cli.args import non_negative_float, non_negative_int, positive_int, unit_interval

MODEL_ENV = "SINGSONG_MODEL"


def add_accompany(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "accompany",
        help="generate an instrumental accompaniment for a vocal recording",
        description="Write DIR/take-N/instrumental.wav and DIR/take-N/mix.wav (16 kHz, the "
        "length of the input) for each take. Any common audio format; inputs up to 10 minutes "
        "(the model's max_seconds).",
    )
    p.add_argument("vocals", type=Path, help="audio file of the (isolated) singing voice")
    p.add_argument(
        "-o", "--out", type=Path, help="output folder (default: VOCALS-accompaniment next to it)"
    )
    p.add_argument("--takes", type=positive_int, default=1, help="accompaniments (default 1)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same takes (default 0)")
    p.add_argument("--temperature", type=non_negative_float, help="default: the model's")
    p.add_argument("--top-k", type=non_negative_int, help="0 = off; default: the model's")
    p.add_argument("--top-p", type=unit_interval, help="1 = off; default: the model's")
    p.add_argument(
        "--guidance",
        type=non_negative_float,
        help="vocal guidance: lean harder on the vocals (1 = off, e.g. 3; a second stage-1 "
        "pass); default: the model's",
    )
    p.add_argument(
        "--no-tone",
        dest="tone",
        action="store_false",
        help="skip the model's tone match (its equaliser curve and per-clip adaptation): the "
        "codec's output as decoded",
    )
    p.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV, "default"),
        help="model bundle folder, 'default' (the bundled model) or 'debug' (untrained, for "
        f"testing); default ${MODEL_ENV} or 'default'",
    )
    # One thread by default: decoding is a long chain of small steps that gains nothing from a
    # second thread, and on shared cores multi-threaded torch can run many times slower.
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.set_defaults(run=run_accompany)


def run_accompany(args: argparse.Namespace) -> int:
    out = args.out or args.vocals.with_name(f"{args.vocals.stem}-accompaniment")
    for path in _accompany_file(args, args.vocals, out)[0]:
        print(path)
    return 0


def _accompany_file(
    args: argparse.Namespace, vocals_path: Path, out: Path
) -> tuple[list[Path], str]:
    """Accompany one file with the settings in ``args``: the files written, the release."""
    import torch
    from tqdm import tqdm

    from singsong.audio import load_audio, save_audio
    from singsong.pipeline import Accompanist

    torch.set_num_threads(args.threads)
    accompanist = Accompanist.from_pretrained(args.model)
    vocals = load_audio(vocals_path)  # [N] at 16 kHz
    with tqdm(desc="windows", unit="window", leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = accompanist.accompany(
            vocals,
            16_000,
            takes=args.takes,
            seed=args.seed,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            guidance=args.guidance,
            tone=args.tone,
            progress=progress,
        )
    written = []
    for i, take in enumerate(result.takes, start=1):
        folder = out / f"take-{i}"
        for name, wav in (("instrumental", take.instrumental), ("mix", take.mix)):
            written.append(save_audio(folder / f"{name}.wav", wav, result.sample_rate))
    return written, accompanist.config.release


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: accompany the bundled example vocals with the bundled model",
        description="Accompany the example vocals that ship with singsong (12 s of a held-out "
        "songbook song) and write OUT/vocals.flac, OUT/take-N/instrumental.wav and "
        "OUT/take-N/mix.wav.",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    p.add_argument("--takes", type=positive_int, default=2, help="accompaniments (default 2)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same takes (default 0)")
    p.add_argument("--model", default="default", help="model (default: the bundled one)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.set_defaults(run=run_demo, temperature=None, top_k=None, top_p=None, guidance=None, tone=True)


def run_demo(args: argparse.Namespace) -> int:
    import shutil
    import time

    from singsong.assets import example_vocals

    source = example_vocals()
    args.out.mkdir(parents=True, exist_ok=True)
    vocals = Path(shutil.copyfile(source, args.out / source.name))
    start = time.perf_counter()
    written, release = _accompany_file(args, vocals, args.out)
    seconds = time.perf_counter() - start
    print(f"singsong demo: accompanied {vocals} ({args.takes} takes, model {args.model!r}, "
          f"{release or 'unnamed'}) in {seconds:.1f} s:")  # fmt: skip
    for path in written:
        print(f"  {path}")
    return 0

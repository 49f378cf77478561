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
        "--model",
        default=os.environ.get(MODEL_ENV),
        help=f"model bundle folder, or 'debug' (untrained, for testing); default ${MODEL_ENV}",
    )
    # One thread by default: decoding is a long chain of small steps that gains nothing from a
    # second thread, and on shared cores multi-threaded torch can run many times slower.
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.set_defaults(run=run_accompany)


def run_accompany(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from singsong.audio import load_audio, save_audio
    from singsong.errors import SingsongError
    from singsong.pipeline import Accompanist

    if args.model is None:
        raise SingsongError(
            f"no model given: pass --model PATH (a model bundle folder), set ${MODEL_ENV}, or "
            "use --model debug (untrained, for testing)"
        )
    torch.set_num_threads(args.threads)
    accompanist = Accompanist.from_pretrained(args.model)
    vocals = load_audio(args.vocals)  # [N] at 16 kHz
    out = args.out or args.vocals.with_name(f"{args.vocals.stem}-accompaniment")
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
            progress=progress,
        )
    for i, take in enumerate(result.takes, start=1):
        folder = out / f"take-{i}"
        for name, wav in (("instrumental", take.instrumental), ("mix", take.mix)):
            print(save_audio(folder / f"{name}.wav", wav, result.sample_rate))
    return 0

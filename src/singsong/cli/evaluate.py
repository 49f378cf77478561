"""``singsong eval fad|run`` and ``singsong baseline``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from singsong.cli.args import positive_int

EMBEDDINGS = ("musicfeat", "vggish", "clap")  # singsong.evaluation.embeddings.EMBEDDINGS


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluation: Fréchet Audio Distance, the full evaluation run")
    cmds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = cmds.add_parser(
        "fad",
        help="Fréchet Audio Distance between two folders of audio",
        description="FAD of the audio files in A against the reference set in B, with a "
        "bootstrap 95% interval (resampling A's files). The default embedding, musicfeat, needs "
        "no download; vggish and clap read weights from --weights.",
    )
    f.add_argument("a", type=Path, help="folder of audio under test")
    f.add_argument("b", type=Path, help="folder of reference audio")
    f.add_argument("--embedding", choices=EMBEDDINGS, default="musicfeat")
    f.add_argument("--weights", help="vggish: vggish-10086976.pth; clap: a save_pretrained folder")
    f.add_argument("--rounds", type=positive_int, default=200, help="bootstrap rounds")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    f.set_defaults(run=run_fad)
    r = cmds.add_parser(
        "run",
        help="evaluate systems on held-out (vocals, instrumental) pairs; writes a report",
        description="For each pairs MANIFEST, take its held-out clips (MIR-1K validation "
        "singers, songbook songs with index % 10 == 9), generate instrumentals with every "
        "system (ground truth, shuffled ground truth, retrieval baseline, the vocal-copy and "
        "separated-instrumental controls, each --model) from isolated and from separated vocals, "
        "and write OUT/report.md, "
        "OUT/metrics.json and OUT/<set>/clips.jsonl.",
    )
    r.add_argument("manifests", nargs="+", type=Path, help="pairs manifest.jsonl files")
    r.add_argument("--out", type=Path, required=True, help="output folder")
    r.add_argument(
        "--model", action="append", default=[], help="model bundle folder or 'debug' (repeatable)"
    )
    r.add_argument("--no-baseline", action="store_true", help="skip the retrieval baseline")
    r.add_argument("--condition", choices=("isolated", "separated"), action="append",
                   help="vocal condition (repeatable; default both)")  # fmt: skip
    r.add_argument("--max-clips", type=positive_int, default=50, help="per set (default 50)")
    r.add_argument("--index-items", type=positive_int, default=400,
                   help="training clips in the baseline's library (default 400)")  # fmt: skip
    r.add_argument("--embedding", choices=EMBEDDINGS, default="musicfeat")
    r.add_argument("--weights", help="weights of the vggish/clap embedding")
    r.add_argument("--rounds", type=positive_int, default=1000, help="bootstrap rounds")
    r.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    r.add_argument("--save-audio", action="store_true",
                   help="also write every instrumental and mix under OUT/<set>/audio/")  # fmt: skip
    r.set_defaults(run=run_eval)


def run_fad(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from singsong.evaluation.embeddings import load_embedding
    from singsong.evaluation.fad import fad_folders

    embedding = load_embedding(args.embedding, args.weights)
    result = fad_folders(args.a, args.b, embedding, rounds=args.rounds)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"FAD {result.fad:.4f} [95% CI {result.low:.4f}, {result.high:.4f}] "
            f"({result.files_a} vs {result.files_b} files, {result.embedding})"
        )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from singsong.evaluation.run import CONDITIONS, EvalConfig, evaluate

    torch.set_num_threads(args.threads)
    config = EvalConfig(
        manifests=tuple(str(m) for m in args.manifests),
        out=str(args.out),
        models=tuple(args.model),
        baseline=not args.no_baseline,
        conditions=tuple(args.condition or CONDITIONS),
        max_clips=args.max_clips,
        index_items=args.index_items,
        embedding=args.embedding,
        embedding_path=args.weights,
        rounds=args.rounds,
        save_audio=args.save_audio,
    )
    result = evaluate(config)
    for name, s in result["sets"].items():
        print(f"{name}: {s['clips']} clips, {s['seconds']['per_clip']:.2f} s per clip")
    print(f"report: {args.out / 'report.md'}")
    return 0


def add_baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="retrieval baseline: fit a library instrumental to the vocals' key and tempo",
        description="Estimate the key and tempo of VOCALS, retrieve the library instrumental "
        "that needs the least pitch shift and time stretch, shift, stretch and beat-align it, and "
        "write OUT/instrumental.wav and OUT/mix.wav at the input's length. The library (a pairs "
        "folder: its training clips; or a folder of audio files) is indexed once into "
        "LIBRARY/retrieval_index.json (or --index).",
    )
    p.add_argument("vocals", type=Path, help="audio file of the singing voice")
    p.add_argument("-o", "--out", type=Path, help="output folder (default: VOCALS-baseline)")
    p.add_argument("--library", type=Path, required=True, help="pairs folder or audio folder")
    p.add_argument("--index", type=Path, help="index file (default LIBRARY/retrieval_index.json)")
    p.add_argument("--reindex", action="store_true", help="rebuild the index")
    p.add_argument("--max-items", type=positive_int, help="index at most N library clips")
    p.set_defaults(run=run_baseline)


def run_baseline(args: argparse.Namespace) -> int:
    from singsong.audio import load_audio, mix, save_audio
    from singsong.evaluation.baseline import (
        INDEX_NAME,
        RetrievalBaseline,
        build_index,
        load_index,
    )

    vocals = load_audio(args.vocals)  # [N] at 16 kHz; fails before any indexing work
    index = args.index or args.library / INDEX_NAME
    if index.is_file() and not args.reindex:
        entries = load_index(index)
    else:
        entries = build_index(args.library, index, max_items=args.max_items)
    instrumental, got = RetrievalBaseline(entries).accompany(vocals)
    mixture, scale = mix([vocals, instrumental])
    out = args.out or args.vocals.with_name(f"{args.vocals.stem}-baseline")
    print(
        f"retrieved {got.entry.path} @ {got.entry.offset:.1f} s ({got.entry.key}, "
        f"{got.entry.tempo:.0f} BPM) for vocals in {got.vocal_key} at {got.vocal_tempo:.0f} BPM: "
        f"shift {got.shift:+d} semitones, stretch x{got.rate:.3f}"
    )
    print(save_audio(out / "instrumental.wav", instrumental * scale))
    print(save_audio(out / "mix.wav", mixture))
    return 0

"""``singsong semantic fit`` and ``singsong semantic encode``: the 25 Hz semantic tokenizer."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from singsong.cli.args import positive_int


def add_semantic(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "semantic",
        help="fit the semantic tokenizer (25 Hz k-means codes) or encode audio with it",
        description="Semantic codes: 25 frames/s, one of K k-means clusters of frame features.",
    )
    cmds = p.add_subparsers(dest="semantic_command", metavar="ACTION", required=True)

    fit = cmds.add_parser(
        "fit",
        help="fit k-means on vocals and instrumentals of the train splits",
        description="Extract features from the train songs of a songbook (vocals, and drums + "
        "bass + other) and the train singers of MIR-1K (vocals, accompaniment), fit k-means "
        "and write a tokenizer folder (config.json + model.safetensors).",
    )
    fit.add_argument("--out", type=Path, required=True, help="tokenizer folder to write")
    fit.add_argument("--songbook", type=Path, help="songbook folder (train songs are used)")
    fit.add_argument("--mir1k", type=Path, help="MIR-1K folder (train singers are used)")
    fit.add_argument("--backend", choices=("music", "transformers"), default="music")
    fit.add_argument("--model", type=Path, help="local model folder (transformers backend)")
    fit.add_argument("--layer", type=int, default=6, help="hidden layer (transformers; default 6)")
    fit.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run model code shipped in the model folder (MERT; transformers backend)",
    )
    fit.add_argument("--k", type=positive_int, default=1024, help="clusters (default 1024)")
    fit.add_argument(
        "--max-frames",
        type=positive_int,
        default=1_000_000,
        help="frames drawn at random for k-means (default 1000000)",
    )
    fit.add_argument("--passes", type=positive_int, default=20, help="k-means passes (default 20)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    fit.add_argument("--quiet", action="store_true", help="no progress output")
    fit.set_defaults(run=run_fit)

    enc = cmds.add_parser(
        "encode",
        help="audio files -> codes (.npy uint16 [1, T]) + a JSON sidecar",
        description="Encode audio files with a fitted tokenizer. Writes OUT/<name>.npy (uint16, "
        "shape [1, T], T = ceil(samples / 640) at 16 kHz) and OUT/<name>.json (tokenizer name, "
        "version, frame rate, source). Files already encoded by the same tokenizer are skipped.",
    )
    enc.add_argument("audio", nargs="+", type=Path, metavar="AUDIO", help="audio files")
    enc.add_argument("--tokenizer", type=Path, required=True, help="fitted tokenizer folder")
    enc.add_argument("--out", type=Path, required=True, help="output folder")
    enc.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    enc.add_argument("--quiet", action="store_true", help="no progress bar")
    enc.set_defaults(run=run_encode)


def run_fit(args: argparse.Namespace) -> int:
    import torch

    from singsong.errors import SingsongError
    from singsong.tokenizers.semantic import HFFeatureConfig, SemanticConfig, fit_semantic
    from singsong.tokenizers.semantic.sources import iter_audio, mir1k_sources, songbook_sources

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.songbook is None and args.mir1k is None:
        raise SingsongError("give training audio: --songbook DIR and/or --mir1k DIR")
    hf = None
    if args.backend == "transformers":
        if args.model is None:
            raise SingsongError("the transformers backend needs --model PATH (a local folder)")
        hf = HFFeatureConfig(
            model_path=str(args.model.resolve()),
            layer=args.layer,
            trust_remote_code=args.trust_remote_code,
        )
    elif args.model is not None:
        raise SingsongError("--model is only used with --backend transformers")
    config = SemanticConfig(
        backend=args.backend,
        codebook_size=args.k,
        normalization="group" if args.backend == "music" else "dim",
        hf=hf,
    )
    sources = []
    if args.songbook is not None:
        sources += songbook_sources(args.songbook)
    if args.mir1k is not None:
        sources += mir1k_sources(args.mir1k)
    start = time.perf_counter()
    result = fit_semantic(
        config,
        iter_audio(sources, progress=not args.quiet),
        max_frames=args.max_frames,
        passes=args.passes,
        seed=args.seed,
        progress=not args.quiet,
    )
    result.tokenizer.save_pretrained(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    summary = {
        "out": str(args.out),
        "name": result.tokenizer.name,
        "version": result.tokenizer.version,
        "sources": len(sources),
        "frames_seen": result.frames_seen,
        "frames_used": result.frames_used,
        "k": args.k,
        "passes": result.kmeans.passes,
        "inertia": round(result.kmeans.inertia, 4),
        "reseeded": result.kmeans.reseeded,
        "seconds": round(time.perf_counter() - start, 1),
        "bytes": size,
    }
    print(json.dumps(summary, indent=1))
    return 0


def run_encode(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from singsong.audio import atomic_write, load_audio
    from singsong.errors import SingsongError
    from singsong.tokenizers.semantic import SemanticTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    stems = [p.stem for p in args.audio]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise SingsongError(f"input files share output names: {', '.join(clashes)}")
    tok = SemanticTokenizer.from_pretrained(args.tokenizer)
    info = tok.info.to_dict()
    args.out.mkdir(parents=True, exist_ok=True)
    skipped = 0
    for path in tqdm(args.audio, unit="file", desc="encode", disable=args.quiet):
        npy, sidecar = args.out / f"{path.stem}.npy", args.out / f"{path.stem}.json"
        if npy.is_file() and sidecar.is_file() and _same_tokenizer(sidecar, info):
            skipped += 1
            continue
        wav = load_audio(path, sample_rate=tok.sample_rate)  # [N]
        codes = tok.encode(torch.from_numpy(wav)[None])[0]  # [1, T]
        with atomic_write(npy, "wb") as f:
            np.save(f, codes.numpy().astype(np.uint16), allow_pickle=False)
        meta = {
            "tokenizer": info,
            "frame_rate": tok.frame_rate,
            "num_frames": codes.shape[1],
            "num_samples": len(wav),
            "source": str(path),
            "dtype": "uint16",
            "shape": list(codes.shape),
        }
        with atomic_write(sidecar) as f:
            json.dump(meta, f, indent=1)
    done = len(args.audio) - skipped
    print(
        f"encoded {done} file(s), skipped {skipped} already encoded -> {args.out}", file=sys.stderr
    )
    return 0


def _same_tokenizer(sidecar: Path, info: dict) -> bool:
    try:
        return bool(json.loads(sidecar.read_text()).get("tokenizer") == info)
    except (OSError, json.JSONDecodeError):
        return False

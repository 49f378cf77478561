"""``singsong codec train|encode|decode``: the acoustic codec (audio <-> 50 Hz x 12 codes)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from singsong.cli.args import positive_float, positive_int


def add_codec(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codec", help="train or run the acoustic codec (audio <-> codes)")
    cmds = p.add_subparsers(dest="codec_command", metavar="ACTION", required=True)

    t = cmds.add_parser(
        "train",
        help="train the codec on the songbook and MIR-1K (train splits)",
        description="Train for MINUTES of wall time (in total, when resuming), checkpointing "
        "to RUN_DIR, then export the release artifact (config.json + model.safetensors).",
    )
    t.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    t.add_argument("--songbook", type=Path, help="songbook folder (song_id/stem.flac)")
    t.add_argument("--mir1k", type=Path, help="MIR-1K folder (with manifest.csv)")
    t.add_argument("--minutes", type=positive_float, required=True, help="training time budget")
    t.add_argument("--config", choices=("debug", "default"), default="default")
    t.add_argument("--resume", action="store_true", help="continue RUN_DIR/checkpoint.pt")
    t.add_argument("--export", type=Path, help="release folder (default RUN_DIR/release)")
    t.add_argument("--threads", type=positive_int, help="torch threads (default 2)")
    t.add_argument("--quiet", action="store_true", help="no progress lines")
    t.set_defaults(run=run_train)

    f = cmds.add_parser(
        "finetune",
        help="fine-tune a codec's decoder adversarially (the codes do not change)",
        description="Freeze the encoder and the quantizer of the codec in --codec and train its "
        "decoder for MINUTES with a multi-resolution STFT discriminator on top of the codec's "
        "reconstruction losses; export to --out (every 5 minutes and at the end). The release "
        "keeps the codec's version: its codes, and the stage models trained on them, stay valid. "
        "Train on the songbook and/or MIR-1K (train splits), or on --audio, a folder of audio "
        "files held in memory (say, the instrumentals you want rendered well; fast enough for a "
        "GPU). To go on after an interruption, run again with --codec set to the last export "
        "(the discriminator starts afresh).",
    )
    f.add_argument("--codec", type=Path, required=True, help="codec release folder")
    f.add_argument("--out", type=Path, required=True, help="release folder to write")
    f.add_argument("--songbook", type=Path, help="songbook folder (song_id/stem.flac)")
    f.add_argument("--mir1k", type=Path, help="MIR-1K folder (with manifest.csv)")
    f.add_argument("--audio", type=Path, help="or: a folder of audio files (any length, format)")
    f.add_argument("--minutes", type=positive_float, required=True, help="training time budget")
    f.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1")
    f.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training setting (repeatable): batch_size, decoder_lr, disc_lr, recon_weight, "
        "adv_weight, fm_weight, disc_channels, grad_clip, save_minutes, seed",
    )
    f.add_argument(
        "--keep-exports",
        action="store_true",
        help="write each periodic export to its own OUT/step-NNNNNN folder",
    )
    f.add_argument("--fp16", action="store_true", help="export float16 weights (half the size)")
    f.add_argument(
        "--no-adversarial",
        action="store_true",
        help="reconstruction losses only (no discriminator): the decoder then only specialises "
        "in 12-level codes",
    )
    f.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    f.add_argument("--quiet", action="store_true", help="no progress lines")
    f.set_defaults(run=run_finetune)

    e = cmds.add_parser("encode", help="audio file -> codes (.npy uint16 [K, T] + .json sidecar)")
    e.add_argument("input", type=Path, help="audio file (any common format; resampled to 16 kHz)")
    e.add_argument("-o", "--output", type=Path, required=True, help="codes file (.npy)")
    e.add_argument("--codec", type=Path, required=True, help="codec release folder")
    e.add_argument("--levels", type=positive_int, help="keep only the first LEVELS (default all)")
    e.set_defaults(run=run_encode)

    d = cmds.add_parser("decode", help="codes (.npy + .json sidecar) -> audio file")
    d.add_argument("input", type=Path, help="codes file (.npy) written by `codec encode`")
    d.add_argument("-o", "--output", type=Path, required=True, help="audio file (.wav/.flac)")
    d.add_argument("--codec", type=Path, required=True, help="codec release folder")
    d.add_argument("--levels", type=positive_int, help="decode only the first LEVELS")
    d.set_defaults(run=run_decode)


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from singsong.errors import SingsongError
    from singsong.tokenizers.codec.model import CodecConfig
    from singsong.tokenizers.codec.train import TrainConfig, train

    if args.songbook is None and args.mir1k is None:
        raise SingsongError("give training audio: --songbook DIR and/or --mir1k DIR")
    train_config = TrainConfig.preset(args.config)
    if args.threads:
        train_config = dataclasses.replace(train_config, threads=args.threads)
    train(
        args.out,
        config=CodecConfig.preset(args.config),
        train_config=train_config,
        songbook=args.songbook,
        mir1k=args.mir1k,
        minutes=args.minutes,
        resume=args.resume,
        export=args.export,
        quiet=args.quiet,
    )
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    import dataclasses

    from singsong.tokenizers.codec.finetune import FinetuneConfig, finetune_decoder

    config = FinetuneConfig(threads=args.threads, device=args.device, **_settings(args.set))
    if args.no_adversarial:
        config = dataclasses.replace(config, adv_weight=0.0, fm_weight=0.0)
    finetune_decoder(
        args.codec,
        args.out,
        songbook=args.songbook,
        mir1k=args.mir1k,
        audio=args.audio,
        minutes=args.minutes,
        config=config,
        keep_exports=args.keep_exports,
        fp16=args.fp16,
        quiet=args.quiet,
    )
    return 0


TUNABLE = {
    "batch_size": int,
    "decoder_lr": float,
    "disc_lr": float,
    "recon_weight": float,
    "adv_weight": float,
    "fm_weight": float,
    "disc_channels": int,
    "grad_clip": float,
    "save_minutes": float,
    "seed": int,
}


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``["batch_size=32", ...]`` -> ``{"batch_size": 32, ...}`` (names and numbers checked)."""
    from singsong.errors import SingsongError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in TUNABLE:
            keys = ", ".join(TUNABLE)
            raise SingsongError(f"--set {pair}: expected KEY=VALUE, KEY one of {keys}")
        try:
            number = TUNABLE[key](value)
        except ValueError:
            raise SingsongError(f"--set {pair}: {value!r} is not a valid {key}") from None
        if number <= 0 and key not in ("adv_weight", "fm_weight", "seed"):
            raise SingsongError(f"--set {pair}: {key} must be positive")
        out[key] = number
    return out


def run_encode(args: argparse.Namespace) -> int:
    import torch

    from singsong.audio import load_audio
    from singsong.tokenizers.codec import CodecTokenizer
    from singsong.tokenizers.codec.files import save_codes

    tok = CodecTokenizer.from_pretrained(args.codec)
    wav = load_audio(args.input, sample_rate=tok.sample_rate)  # [N]
    codes = tok.encode(torch.from_numpy(wav)[None])[0]  # [K, T]
    if args.levels:
        codes = codes[: args.levels]
    save_codes(args.output, codes.numpy(), info=tok.info, num_samples=len(wav))
    seconds = len(wav) / tok.sample_rate
    print(f"{args.output}: {codes.shape[0]} x {codes.shape[1]} codes ({seconds:.2f} s)")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    import torch

    from singsong.audio import save_audio
    from singsong.tokenizers.codec import CodecTokenizer
    from singsong.tokenizers.codec.files import load_codes

    tok = CodecTokenizer.from_pretrained(args.codec)
    codes, meta = load_codes(args.input, expect=tok.info)
    if args.levels:
        codes = codes[: args.levels]
    decoded = tok.decode(torch.from_numpy(codes)[None])[0]  # [T * hop]
    wav = decoded[: int(meta.get("num_samples", len(decoded)))].numpy()
    save_audio(args.output, wav, tok.sample_rate, clip=True)
    print(f"{args.output}: {len(wav) / tok.sample_rate:.2f} s from {codes.shape[0]} levels")
    return 0

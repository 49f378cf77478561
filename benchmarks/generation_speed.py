"""Generation time per stage for a 10 s vocal, at the stage-model sizes we train and ship.

    python -u benchmarks/generation_speed.py --semantic runs/semantic/default \
        --codec runs/codec/release_fp16 --presets tiny small --threads 1

Stage models get random weights of each preset (speed does not depend on training; a sampled
random model never stops early, nor does a trained one: every window has a fixed length). The
tokenizers are the real ones when given, else the debug ones. Timed on one 10 s input, one take:
tokenize (semantic + codec encode), stage 1 and stage 2 over the pipeline's windows, codec
decode, and the whole :meth:`Accompanist.accompany` call; best of ``--repeats``.
Ratios to real time are printed next to the absolute seconds (which depend on the machine).
"""

from __future__ import annotations

import argparse
import functools
import platform
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from singsong.models import SamplingParams, Stage1Config, Stage1Model, Stage2Config, Stage2Model
from singsong.models.codes import Codes
from singsong.pipeline import Accompanist, plan_windows
from singsong.pipeline.bundle import BundleConfig, Components, debug_components
from singsong.tokenizers.loader import load_tokenizer

SECONDS = 10.0


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def components(args: argparse.Namespace, preset: str) -> Components:
    base = debug_components()
    semantic = load_tokenizer(args.semantic) if args.semantic else base.semantic
    codec = load_tokenizer(args.codec) if args.codec else base.codec
    torch.manual_seed(0)
    stage1 = Stage1Model(
        Stage1Config.preset(
            preset,
            featurization=args.featurization,
            semantic_codebook_size=semantic.codebook_size,
            acoustic_codebook_size=codec.codebook_size,
        )
    )
    stage2 = Stage2Model(Stage2Config.preset(preset, acoustic_codebook_size=codec.codebook_size))
    config = BundleConfig(
        featurization=args.featurization,
        window_seconds=args.window,
        overlap_seconds=args.overlap,
    )
    return replace(
        base,
        semantic=semantic,  # type: ignore[arg-type]
        codec=codec,  # type: ignore[arg-type]
        stage1=stage1.eval(),
        stage2=stage2.eval(),
        config=config,
    ).check()


def time_preset(comp: Components, vocals: np.ndarray, repeats: int) -> dict[str, float]:
    params = SamplingParams(temperature=1.0, seed=0)
    wav = torch.from_numpy(vocals)[None]  # [1, N]
    frames = int(SECONDS * 25)
    window, overlap = comp.config.window_frames, comp.config.overlap_frames
    # the windows of Accompanist: each continues from the last `overlap` frames of the previous
    spans = [(a, a + n) for a, n in plan_windows(frames, window=window, overlap=overlap)]
    with torch.inference_mode():
        sem = comp.semantic.encode(wav)[:, 0, :frames]  # [1, T]
        ac = comp.codec.encode(wav)[:, :, : 2 * frames]  # [1, 12, 2T]
        t_tok = best_of(lambda: (comp.semantic.encode(wav), comp.codec.encode(wav)), 2)

        def stage1_all() -> None:
            prev = None
            for a, b in spans:
                part = Codes(semantic=sem[:, a:b], acoustic=ac[:, :4, 2 * a : 2 * b])
                prompt = None
                if prev is not None:
                    assert prev.semantic is not None and prev.acoustic is not None
                    prompt = Codes(prev.semantic[:, -overlap:], prev.acoustic[:, :, -2 * overlap :])
                prev = comp.stage1.generate(part, params=params, prompt=prompt)

        def stage2_all() -> None:
            prev = None
            for a, b in spans:
                prompt = None if prev is None else prev[:, :, -2 * overlap :]
                prev = comp.stage2.generate(ac[:, :4, 2 * a : 2 * b], params=params, prompt=prompt)

        t1 = best_of(stage1_all, repeats)
        t2 = best_of(stage2_all, repeats)
        t_dec = best_of(lambda: comp.codec.decode(ac), 2)
    accompanist = Accompanist(comp)
    t_all = best_of(lambda: accompanist.accompany(vocals, 16000, seed=0), 1)
    return {
        "stage1 M": sum(p.numel() for p in comp.stage1.parameters()) / 1e6,
        "stage2 M": sum(p.numel() for p in comp.stage2.parameters()) / 1e6,
        "tokenize": t_tok,
        "stage1": t1,
        "stage2": t2,
        "decode": t_dec,
        "accompany": t_all,
    }


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--semantic", help="semantic tokenizer folder (default: the debug one)")
    p.add_argument("--codec", help="codec folder (default: the debug one)")
    p.add_argument("--presets", nargs="*", default=["tiny", "small"])
    p.add_argument("--featurization", default="S")
    p.add_argument("--window", type=float, default=6.0, help="pipeline window (s)")
    p.add_argument("--overlap", type=float, default=2.0, help="pipeline overlap (s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="also time this bundle (e.g. 'default') on the example vocals (repeatable: the "
        "ratios to the first are printed)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}; input {SECONDS:g} s; windows {args.window:g} s / "
          f"overlap {args.overlap:g} s")  # fmt: skip
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * 16000)) / 16000
    vocals = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )
    rows = []
    for preset in args.presets:
        row = time_preset(components(args, preset), vocals, args.repeats) | {"preset": preset}
        rows.append(row)
        t1, t2, t_all = row["stage1"], row["stage2"], row["accompany"]
        print(
            f"{preset}: stage1 {row['stage1 M']:.2f}M params {t1:.2f} s "
            f"({SECONDS / t1:.2f}x real time), stage2 {row['stage2 M']:.2f}M {t2:.2f} s "
            f"({SECONDS / t2:.2f}x), tokenize {row['tokenize']:.2f} s, decode "
            f"{row['decode']:.2f} s; accompany() end to end {t_all:.2f} s "
            f"({SECONDS / t_all:.2f}x real time)",
            flush=True,
        )
    if args.model:
        from singsong.assets import example_vocals
        from singsong.audio import load_audio

        sung = load_audio(example_vocals())[: int(SECONDS * 16000)]
        bests = []
        for model in args.model:
            accompanist = Accompanist.from_pretrained(model)
            best = min(
                _timed(functools.partial(accompanist.accompany, sung, 16000, seed=0))
                for _ in range(args.repeats)
            )
            bests.append(best)
            print(f"model {model} ({accompanist.config.release or 'unnamed'}), the example "
                  f"vocals' first {SECONDS:g} s: accompany() end to end {best:.2f} s "
                  f"({SECONDS / best:.2f}x real time)", flush=True)  # fmt: skip
        for model, best in zip(args.model[1:], bests[1:], strict=True):
            print(f"model {model} / {args.model[0]} accompany() time (same run): "
                  f"{best / bests[0]:.2f}")  # fmt: skip
    if len(rows) > 1:
        base = rows[0]
        for row in rows[1:]:
            print(f"{row['preset']} / {base['preset']} time ratios (same run): "
                  f"stage1 {row['stage1'] / base['stage1']:.2f}, "
                  f"stage2 {row['stage2'] / base['stage2']:.2f}, "
                  f"accompany {row['accompany'] / base['accompany']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

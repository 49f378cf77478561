"""How much guidance does a planner + renderer bundle need? Harmonic fit per sampling setting.

    python -u benchmarks/guidance_sweep.py runs/renderer/bundle data/pairs_mir1k/manifest.jsonl \
        --max-clips 24 --setting 1:1:0.7:50 --setting 3:2:0.7:50 --setting true:2:0.7:50

A setting is ``VOCAL:PLAN:T:K``: the planner's vocal guidance (``true``: no planner, the true
instrumental's semantic codes as the plan), the renderer's plan guidance, and the temperature
and top-k of both. On the first window of each held-out clip (isolated vocals, as
``cascade_oracle.py``), each setting's plan is rendered, completed by stage 2 and decoded, and
printed with three numbers (means over clips, bootstrap 95 % intervals for the first):

- ``harmonic fit``: ``evaluation.agreement.harmonic_fit`` of the audio against the vocals
  (1 = chance);
- ``plan fidelity``: how closely the audio follows the plan it was given: frame by frame, 12 x
  the share of its chroma at the pitch class of the plan code's centroid chroma peak (1 =
  chance; the true instrumental against its own codes: about 2.1 on MIR-1K);
- ``plan fit``: the plan's harmonic fit in token space (``token_harmony.fit``).

So a setting can fail at the plan (plan fit) or at the rendering (fidelity).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from singsong import SAMPLE_RATE
from singsong.audio import loudness_normalize
from singsong.evaluation.agreement import _smooth, harmonic_fit  # (private: a benchmark)
from singsong.evaluation.analysis import FRAME_RATE, Features, analyze
from singsong.evaluation.run import load_clips
from singsong.models import RendererModel, SamplingParams
from singsong.pipeline import Accompanist
from singsong.pipeline.bundle import SEMANTIC_HOP

sys.path.insert(0, str(Path(__file__).parent))  # a sibling script's token-space fit
from token_harmony import code_tables, fit, interval


@dataclasses.dataclass(frozen=True)
class Setting:
    vocal: float | None  # the planner's vocal guidance; None = the true plan
    plan: float
    temperature: float
    top_k: int

    @classmethod
    def parse(cls, text: str) -> Setting:
        vocal, plan, temperature, top_k = text.split(":")
        return cls(None if vocal == "true" else float(vocal), float(plan), float(temperature),
                   int(top_k))  # fmt: skip

    def __str__(self) -> str:
        who = "true plan" if self.vocal is None else f"planner, vocal guidance {self.vocal:g}"
        return f"{who}, plan guidance {self.plan:g}, T {self.temperature:g}, top-k {self.top_k}"


def plan_fidelity(plan: np.ndarray, audio: Features, peak_class: np.ndarray) -> float:
    """12 x the audio's chroma share at each plan code's peak pitch class (plan at 25 Hz, audio
    features at 50 Hz; chroma over 0.2 s as in harmonic_fit)."""
    chroma = _smooth(audio.chroma.astype(np.float64), int(0.2 * FRAME_RATE))  # [12, F]
    frames = np.minimum(np.arange(chroma.shape[1]) // 2, plan.size - 1)
    total = chroma.sum(0)
    t = np.flatnonzero(total > 1e-3 * total.max())
    return float(12 * (chroma[peak_class[plan[frames[t]]], t] / total[t]).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path, help="a bundle with a planner and a renderer")
    p.add_argument("manifest", type=Path, help="a pairs manifest.jsonl")
    p.add_argument("--max-clips", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--setting", action="append", type=Setting.parse, required=True,
                   help="VOCAL:PLAN:T:K (repeatable)")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)
    acc = Accompanist.from_pretrained(args.bundle)
    parts, cfg = acc.parts, acc.config
    renderer, planner = parts.stage1, parts.planner
    if not isinstance(renderer, RendererModel) or planner is None:
        raise SystemExit(f"{args.bundle}: needs a planner and a renderer")
    released = renderer.config.plan_guidance
    tables = code_tables(args.bundle / "semantic")
    peak_class = tables[2].argmax(1)  # [K]: each code's centroid chroma peak
    rows: dict[Setting, list[tuple[float, float, float]]] = {s: [] for s in args.setting}
    started = time.perf_counter()
    clips = load_clips(args.manifest, args.max_clips)
    for k, clip in enumerate(clips):
        n = min(clip.vocals["isolated"].size, cfg.window_frames * SEMANTIC_HOP)
        t = -(-n // SEMANTIC_HOP)
        vocals = loudness_normalize(clip.vocals["isolated"][:n], SAMPLE_RATE, cfg.vocal_lufs)
        voice = analyze(vocals, voice=True)
        x = torch.from_numpy(clip.reference[:n].astype(np.float32))[None]
        with torch.inference_mode():
            truth = parts.semantic.encode(torch.nn.functional.pad(x, (0, t * SEMANTIC_HOP - n)))
            codes = acc._tokenize(vocals, t)  # noised like accompany's (private: a benchmark)
            silence = acc._tokenize(vocals, t, silent=True)
            assert codes.semantic is not None
            for s in args.setting:
                params = SamplingParams(temperature=s.temperature, top_k=s.top_k, top_p=1.0,
                                        seed=args.seed, guidance=s.vocal or 1.0)  # fmt: skip
                plan: torch.Tensor | None = truth[:, 0]  # [1, T]
                if s.vocal is not None:
                    negative = silence if s.vocal != 1 else None
                    plan = planner.generate(codes, params=params, negative=negative).semantic
                renderer.set_plan_guidance(s.plan)
                coarse = renderer.generate(codes, params=params, semantic=plan).acoustic
                assert coarse is not None and plan is not None
                fine = parts.stage2.generate(
                    coarse, params=dataclasses.replace(params, seed=args.seed + 1, guidance=1.0)
                )
                wav = parts.codec.decode(torch.cat([coarse, fine], dim=1))[0, :n].numpy()
                audio = analyze(wav.astype(np.float32))
                plan_np = plan[0].numpy()
                rows[s].append((
                    harmonic_fit(voice, audio),
                    plan_fidelity(plan_np, audio, peak_class),
                    fit(codes.semantic[0].numpy(), plan_np, tables),
                ))  # fmt: skip
        print(f"clip {k + 1}/{len(clips)}: {time.perf_counter() - started:.0f} s", flush=True)
    renderer.set_plan_guidance(released)

    rng = np.random.default_rng(0)
    print(f"\n{platform.machine()}, {args.bundle}, {len(clips)} clips of {args.manifest}")
    print("| setting | harmonic fit | plan fidelity | plan fit (token space) |")
    print("|---|---:|---:|---:|")
    for s, values in rows.items():
        a = np.array(values)  # [clips, 3]
        hf = a[np.isfinite(a[:, 0]), 0]
        print(f"| {s} | {interval(hf, rng)} | {np.nanmean(a[:, 1]):.3f} | "
              f"{np.nanmean(a[:, 2]):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()

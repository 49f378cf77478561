"""Where does the key get lost? Harmonic fit of the cascade fed the true codes, stage by stage.

    python -u benchmarks/cascade_oracle.py src/singsong/assets/default \
        data/pairs_mir1k/manifest.jsonl --max-clips 24

On the held-out clips of a pairs manifest (isolated vocals, the first window of each clip), the
instrumental is made by the bundle's cascade with more and more of it replaced by the truth,
and scored with ``evaluation.agreement.harmonic_fit`` against the vocals (1 = chance):

- ``truth``: the true instrumental;
- ``codec``: the true instrumental through the codec (its 12 levels, encoded and decoded);
- ``stage2 on true coarse``: stage 2 samples the fine levels for the true coarse codes;
- ``stage1 on true semantic``: stage 1 samples only the coarse codes, fed the true semantic
  codes (``Stage1Model.generate(semantic=)``), then stage 2;
- ``stage1 on another song's semantic``: the same with the semantic codes of a clip of another
  song: if the coarse codes follow the semantic plan, this falls to chance;
- ``model``: the whole cascade (what ``accompany`` does for one window);
- ``stage1 on the separated instrumental's semantic``: fed the semantic codes of the
  separator's instrumental (what the stages were trained on: with the voice's residue).

So a stage whose row falls below the one above it loses the key; if "true semantic" keeps it and
"model" does not, the whole gap is stage 1's semantic codes. The semantic codes themselves are
also scored in token space (``token_harmony.py``'s fit: each code read as its centroid's chroma):
the true instrumental's, the model's, and another song's.

Last, an interval profile: the same share of chroma taken at the sung pitch class + k semitones
(k = 0 is the harmonic fit): a consonant accompaniment peaks at 0, 5 and 7 (the fourth and
fifth), an echo of the melody that comes late spreads to the steps next to 0 (1, 2, 10, 11).
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
from singsong.evaluation.agreement import harmonic_fit
from singsong.evaluation.analysis import analyze
from singsong.evaluation.run import Clip, load_clips, shuffle_partner
from singsong.models import Codes, SamplingParams
from singsong.pipeline import Accompanist
from singsong.pipeline.bundle import SEMANTIC_HOP

sys.path.insert(0, str(Path(__file__).parent))  # a sibling script's token-space fit
from token_harmony import code_tables, fit, fit_profile, interval


@dataclasses.dataclass(frozen=True, eq=False)
class FirstWindow:
    """A clip's first window as ``accompany`` sees it, and the truth's codes."""

    vocals: np.ndarray  # [n] isolated vocals at the bundle's loudness
    truth: np.ndarray  # [n] the true instrumental
    codes: Codes  # the noised vocals' codes, as accompany tokenizes them
    silence: Codes | None  # vocal guidance's negative (None without guidance)
    truth_sem: torch.Tensor  # [1, T] the true instrumental's semantic codes
    truth_ac: torch.Tensor  # [1, 12, 2T] its acoustic codes


def first_window(acc: Accompanist, clip: Clip, *, guidance: float) -> FirstWindow:
    cfg, parts = acc.config, acc.parts
    n = min(clip.vocals["isolated"].size, cfg.window_frames * SEMANTIC_HOP)
    t = -(-n // SEMANTIC_HOP)
    vocals = loudness_normalize(clip.vocals["isolated"][:n], SAMPLE_RATE, cfg.vocal_lufs)
    x = torch.from_numpy(clip.reference[:n].astype(np.float32))[None]  # [1, n]
    x = torch.nn.functional.pad(x, (0, t * SEMANTIC_HOP - n))  # whole frames
    with torch.inference_mode():
        truth_sem = parts.semantic.encode(x)[:, 0]
        truth_ac = parts.codec.encode(x)
    codes = acc._tokenize(vocals, t)  # noised like accompany's (private: a benchmark)
    silence = acc._tokenize(vocals, t, silent=True) if guidance != 1 else None
    return FirstWindow(vocals, clip.reference[:n], codes, silence, truth_sem, truth_ac)


def with_fine(acc: Accompanist, coarse: torch.Tensor, params: SamplingParams, n: int) -> np.ndarray:
    """Stage 2's fine codes for ``coarse`` [1, Q, 2T], all levels decoded -> [n]."""
    parts = acc.parts
    with torch.inference_mode():
        full = torch.cat([coarse, parts.stage2.generate(coarse, params=params)], dim=1)
        return parts.codec.decode(full)[0, :n].numpy()


SYSTEMS = (
    "truth",
    "codec",
    "stage2 on true coarse",
    "stage1 on true semantic",
    "stage1 on another song's semantic",
    "model",
    "stage1 on the separated instrumental's semantic",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("manifest", type=Path, help="a pairs manifest.jsonl")
    p.add_argument("--max-clips", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=None, help="stage 1's (default: bundle's)")
    p.add_argument("--temperature", type=float, default=None, help="default: the bundle's")
    p.add_argument("--top-k", type=int, default=None, help="default: the bundle's")
    args = p.parse_args()
    torch.set_num_threads(1)
    acc = Accompanist.from_pretrained(args.bundle)
    parts, cfg = acc.parts, acc.config
    temperature = cfg.temperature if args.temperature is None else args.temperature
    top_k = cfg.top_k if args.top_k is None else args.top_k
    params = SamplingParams(
        temperature=temperature, top_k=top_k, top_p=cfg.top_p, seed=args.seed,
        guidance=cfg.guidance if args.guidance is None else args.guidance,
    )  # fmt: skip
    fine_params = SamplingParams(
        temperature=temperature, top_k=top_k, top_p=cfg.top_p, seed=args.seed + 1
    )
    clips = load_clips(args.manifest, args.max_clips)
    partner = shuffle_partner(clips)

    windows = []
    for clip in clips:
        w = first_window(acc, clip, guidance=params.guidance)
        n = w.vocals.size
        sep = torch.from_numpy(clip.separated_inst[:n].astype(np.float32))[None]
        sep = torch.nn.functional.pad(sep, (0, w.truth_sem.shape[1] * SEMANTIC_HOP - n))
        with torch.inference_mode():
            sep_sem = parts.semantic.encode(sep)[:, 0]  # [1, T]
        windows.append((w.vocals, w.truth, w.codes, w.silence, w.truth_sem, w.truth_ac, sep_sem))

    q = parts.stage1.config.coarse_levels
    tables = code_tables(args.bundle / "semantic")
    fits: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    profiles: dict[str, list[list[float]]] = {s: [] for s in SYSTEMS}  # [clips][12]
    token_fits: list[tuple[float, float, float]] = []  # true, model, another song's
    token_profiles: list[np.ndarray] = []  # [3, 12] per clip: true, model, another song's
    started = time.perf_counter()
    for k, (vocals, ref, codes, silence, truth_sem, truth_ac, sep_sem) in enumerate(windows):
        n = vocals.size

        def fine(coarse: torch.Tensor, n: int = n) -> np.ndarray:  # stage 2, decoded [n]
            return with_fine(acc, coarse, fine_params, n)

        with torch.inference_mode():
            other = windows[partner[k]][4]
            other = torch.nn.functional.pad(other, (0, max(0, truth_sem.shape[1] - other.shape[1])))
            other = other[:, : truth_sem.shape[1]]
            gen = {"truth": ref, "codec": parts.codec.decode(truth_ac)[0, :n].numpy(),
                   "stage2 on true coarse": fine(truth_ac[:, :q])}  # fmt: skip
            for name, plan in (
                ("stage1 on true semantic", truth_sem),
                ("stage1 on another song's semantic", other),
                ("model", None),
                ("stage1 on the separated instrumental's semantic", sep_sem),
            ):
                if name == "model" and parts.planner is not None:  # a bundle with a planner
                    plan = parts.planner.generate(codes, params=params, negative=silence).semantic
                got = parts.stage1.generate(codes, params=params, negative=silence, semantic=plan)
                assert got.acoustic is not None and got.semantic is not None
                gen[name] = fine(got.acoustic)
                if name == "model":
                    out = got
            assert codes.semantic is not None and out.semantic is not None
            sung, written = codes.semantic[0].numpy(), out.semantic
            t_true, t_model, t_other = (fit(sung, x[0].numpy(), tables)
                                        for x in (truth_sem, written, other))  # fmt: skip
            token_fits.append((t_true, t_model, t_other))
            token_profiles.append(np.array([
                fit_profile(sung, x[0].numpy(), tables)
                for x in (truth_sem, written, other, sep_sem)
            ]))  # fmt: skip
        vf = analyze(vocals, voice=True)
        assert vf.f0 is not None
        # the sung pitch moved up k semitones: harmonic_fit then reads the share at +k
        moved = [dataclasses.replace(vf, f0=vf.f0 * 2 ** (k / 12)) for k in range(12)]
        for name, wav in gen.items():
            feats = analyze(wav.astype(np.float32))
            fits[name].append(harmonic_fit(vf, feats))
            profiles[name].append([harmonic_fit(m, feats) for m in moved])
        print(f"clip {k + 1}/{len(windows)}: {time.perf_counter() - started:.0f} s", flush=True)

    rng = np.random.default_rng(0)
    table = np.array([fits[s] for s in SYSTEMS])  # [systems, clips]
    table = table[:, np.isfinite(table).all(0)]
    print(f"\n{platform.machine()}, {args.bundle}, {table.shape[1]} clips of {args.manifest}")
    print(f"sampling: {params}")
    print("harmonic fit vs the vocals (1 = chance), mean [95 % bootstrap]; paired difference to")
    print("the row above\n")
    print("| instrumental | harmonic fit | minus the row above |")
    print("|---|---:|---:|")
    for i, name in enumerate(SYSTEMS):
        diff = "" if i == 0 else interval(table[i] - table[i - 1], rng)
        print(f"| {name} | {interval(table[i], rng)} | {diff} |")
    gap = interval(table[3] - table[5], rng)
    print(f"\ntrue semantic minus model: {gap}")
    print("\ninterval profile: share at the sung pitch class + k semitones x 12 (mean of clips)\n")
    print("| instrumental | " + " | ".join(f"+{k}" for k in range(12)) + " |")
    print("|---|" + "---:|" * 12)
    for name in SYSTEMS:
        prof = np.nanmean(np.array(profiles[name]), axis=0)
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in prof) + " |")
    tok_prof = np.nanmean(np.array(token_profiles), axis=0)  # [3, 12]
    names = ("true", "model", "another song's", "separated instrumental's")
    for name, prof in zip(names, tok_prof, strict=True):
        print(f"| {name} semantic codes, token space | " + " | ".join(f"{x:.2f}" for x in prof)
              + " |")  # fmt: skip
    tok = np.array(token_fits)
    tok = tok[np.isfinite(tok).all(1)]
    print(
        f"\nsemantic codes in token space ({len(tok)} clips): true {interval(tok[:, 0], rng)}, "
        f"model {interval(tok[:, 1], rng)}, another song's {interval(tok[:, 2], rng)}"
    )


if __name__ == "__main__":
    main()

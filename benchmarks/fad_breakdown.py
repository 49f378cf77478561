"""Which features make a system's FAD: the musicfeat FAD split by feature group and into its
mean and covariance terms, from the mixes that ``singsong eval run --save-audio`` wrote.

    python -u benchmarks/fad_breakdown.py runs/eval data/pairs_mir1k/manifest.jsonl \
        [--condition isolated] [--codec runs/codec/release]

For every system under OUT/<set>/audio/<condition>/ this prints FAD (same reference as the
evaluation: real mixes of the set's training clips), the FAD of each feature group alone
(log-mel, chroma, onset; window means and window standard deviations), the share of the mean
term, and the log-mel bands whose window means sit furthest from the reference's (in the
reference's standard deviations). With --codec it adds the ground truth re-synthesised by that
codec, the floor that every generated instrumental shares (its mixes are written next to the
others, in codec_resynthesis/).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from singsong.audio import load_audio
from singsong.evaluation.embeddings import MusicFeatures
from singsong.evaluation.fad import Gaussian, frechet_distance
from singsong.evaluation.run import _fit_length, _mixes, _reference_embeddings

# musicfeat's 154 numbers: means then standard deviations of [64 log-mel, 12 chroma, 1 onset]
GROUPS = {
    "log-mel mean": np.arange(0, 64),
    "chroma mean": np.arange(64, 76),
    "onset mean": np.arange(76, 77),
    "log-mel std": np.arange(77, 141),
    "chroma std": np.arange(141, 153),
    "onset std": np.arange(153, 154),
}


def _fad(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """FAD of two frame sets [n, d] and its mean term ||mu_a - mu_b||^2."""
    ga, gb = (Gaussian(g.mean, np.atleast_2d(g.cov)) for g in (Gaussian.fit(a), Gaussian.fit(b)))
    return frechet_distance(ga, gb), float(np.sum((ga.mean - gb.mean) ** 2))


def _codec_mixes(folder: Path, manifest: Path, codec_path: Path, condition: str) -> list[Path]:
    """Write the truth's codec re-synthesis, mixed as the evaluation mixes, next to the others."""
    import soundfile as sf
    import torch

    from singsong import SAMPLE_RATE
    from singsong.evaluation.run import load_clips
    from singsong.tokenizers.codec.tokenizer import CodecTokenizer

    truth = sorted((folder / "ground_truth").glob("*.mix.wav"))
    clips = {c.id: c for c in load_clips(manifest, len(truth))}
    codec = CodecTokenizer.from_pretrained(codec_path)
    out = folder / "codec_resynthesis"
    out.mkdir(exist_ok=True)
    for f in truth:
        clip = clips[f.name.removesuffix(".mix.wav")]
        with torch.inference_mode():
            x = torch.from_numpy(clip.reference).float()[None]
            inst = codec.decode(codec.encode(x)).squeeze(0).numpy()
        vocals = clip.vocals[condition]
        _, mix = _mixes(vocals, _fit_length(inst.astype(np.float32), vocals.size))
        sf.write(out / f.name, mix, SAMPLE_RATE)
    return sorted(out.glob("*.mix.wav"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "eval_out", type=Path, help="the --out folder of `singsong eval run --save-audio`"
    )
    p.add_argument("manifest", type=Path)
    p.add_argument("--condition", default="isolated")
    p.add_argument("--codec", type=Path, help="also score the truth re-synthesised by this codec")
    args = p.parse_args()
    folder = args.eval_out / args.manifest.parent.name / "audio" / args.condition
    systems = {d.name: sorted(d.glob("*.mix.wav")) for d in sorted(folder.iterdir()) if d.is_dir()}
    if args.codec:
        systems["codec_resynthesis"] = _codec_mixes(
            folder, args.manifest, args.codec, args.condition
        )
    embedding = MusicFeatures()
    n = max(len(files) for files in systems.values())
    ref = np.concatenate(_reference_embeddings(args.manifest, n, embedding))  # [frames, 154]
    ref_mu, ref_sd = ref.mean(0), ref.std(0) + 1e-6
    print(f"{platform.machine()}; {n} held-out clips of {args.manifest.parent.name}, "
          f"{args.condition} vocals; musicfeat FAD against {n} training mixes")  # fmt: skip
    head = " | ".join(GROUPS)
    print(f"| system | FAD | mean term | {head} |\n|---|" + "---:|" * (2 + len(GROUPS)))
    shifts = {}
    for name, files in systems.items():
        emb = np.concatenate([embedding.embed(load_audio(f)) for f in files])
        total, mean_term = _fad(emb, ref)
        parts = [_fad(emb[:, idx], ref[:, idx])[0] for idx in GROUPS.values()]
        cells = " | ".join(f"{v:.1f}" for v in parts)
        print(f"| {name} | {total:.1f} | {mean_term / total:.0%} | {cells} |")
        shifts[name] = (emb.mean(0) - ref_mu) / ref_sd  # [154] in reference std units
    print("\nlog-mel band means, shift from the reference in its std (bands 0-63, low to high):")
    for name, z in shifts.items():
        bands = z[:64]
        worst = np.argsort(-np.abs(bands))[:6]
        listed = ", ".join(f"{b}: {bands[b]:+.2f}" for b in worst)
        print(f"  {name}: mean {bands.mean():+.2f}, low 0-15 {bands[:16].mean():+.2f}, "
              f"high 48-63 {bands[48:].mean():+.2f}; largest {listed}")  # fmt: skip


if __name__ == "__main__":
    main()

"""The FAD floor that the codec sets: ground-truth instrumentals passed through the codec.

    python -u benchmarks/fad_floor.py data/pairs_mir1k/manifest.jsonl --clips 24 \
        --codec runs/codec/release_fp16 --model runs/real/bundle

Every generated instrumental is decoded by the codec, so no model can score better FAD than the
ground truth re-synthesised from its own codes. For the held-out clips of a pairs set (the same
clips, mixes, reference and embedding as ``singsong eval run``) this prints FAD and harmonic fit
(isolated vocals) of: the ground truth, its codec re-synthesis from all 12 levels and from the 4
coarse ones (what stage 1 writes), and optionally a model bundle.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch

from singsong import SAMPLE_RATE
from singsong.evaluation.agreement import agreement
from singsong.evaluation.analysis import analyze
from singsong.evaluation.embeddings import load_embedding
from singsong.evaluation.fad import bootstrap_fad
from singsong.evaluation.run import _fit_length, _mixes, _reference_embeddings, load_clips
from singsong.tokenizers.codec.tokenizer import CodecTokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", type=Path)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--codec", type=Path, required=True)
    p.add_argument("--model", help="a model bundle folder (or 'default') to score beside")
    args = p.parse_args()
    torch.set_num_threads(1)
    clips = load_clips(args.manifest, args.clips)
    embedding = load_embedding("musicfeat", None)
    reference = _reference_embeddings(args.manifest, len(clips), embedding)
    codec = CodecTokenizer.from_pretrained(args.codec)
    accompanist = None
    if args.model:
        from singsong.pipeline import Accompanist

        accompanist = Accompanist.from_pretrained(args.model)
    scores: dict[str, dict[str, list]] = {}
    for clip in clips:
        vocals, truth = clip.vocals["isolated"], clip.reference
        codes = codec.encode(torch.from_numpy(truth).float()[None])  # [1, 12, U]
        systems = {
            "ground truth": truth,
            "codec, 12 levels": codec.decode(codes).squeeze(0).numpy(),
            "codec, 4 coarse levels": codec.decode(codes[:, :4]).squeeze(0).numpy(),
        }
        if accompanist is not None:
            take = accompanist.accompany(vocals, SAMPLE_RATE, seed=0).takes[0]
            systems[f"model {args.model}"] = take.instrumental
        voice = analyze(vocals, voice=True)
        for name, inst in systems.items():
            inst, mix = _mixes(vocals, _fit_length(np.asarray(inst, np.float32), vocals.size))
            s = scores.setdefault(name, {"emb": [], "fit": []})
            s["emb"].append(embedding.embed(mix))
            s["fit"].append(agreement(voice, analyze(inst))["harmonic_fit"])
    print(f"{platform.machine()}, {len(clips)} held-out clips of {args.manifest.parent.name}, "
          f"isolated vocals, FAD ({embedding.name}) with bootstrap 95 % interval")  # fmt: skip
    print("| system | FAD | harmonic fit |\n|---|---:|---:|")
    for name, s in scores.items():
        fad, low, high = bootstrap_fad(s["emb"], reference, rounds=200, seed=0)
        print(f"| {name} | {fad:.1f} [{low:.1f}, {high:.1f}] | {np.mean(s['fit']):.3f} |")


if __name__ == "__main__":
    main()

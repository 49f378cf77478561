"""Where is the FAD lost? The cascade fed more and more of the truth, scored by FAD.

    python -u benchmarks/fad_cascade.py src/singsong/assets/default \
        data/pairs_mir1k/manifest.jsonl --max-clips 24

On the held-out clips of a pairs manifest (isolated vocals, the first window of each clip, as
``cascade_oracle.py`` does for harmonic fit), the instrumental is made by the bundle's cascade
with less and less of it replaced by the truth:

- ``truth``: the true instrumental;
- ``codec``: the true instrumental through the codec (12 levels, encoded and decoded);
- ``stage2 on true coarse``: stage 2 samples the fine levels for the true coarse codes;
- ``renderer on true plan``: stage 1 (the renderer) samples the coarse codes for the true
  instrumental's semantic codes, then stage 2;
- ``model``: the whole cascade (planner, renderer, stage 2), as ``accompany`` for one window.

Each is mixed with the vocals and scored as ``singsong eval run`` scores its mixes (musicfeat
FAD against real mixes of the set's training clips), as decoded and after the bundle's tone
match (its fixed curve and per-clip adaptation, fitted on the model's output). FAD of 6 s
windows is not comparable with that of whole clips; compare the rows with each other.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from singsong.evaluation.embeddings import load_embedding
from singsong.evaluation.fad import bootstrap_fad
from singsong.evaluation.run import _fit_length, _mixes, _reference_embeddings, load_clips
from singsong.models import SamplingParams
from singsong.pipeline import Accompanist

sys.path.insert(0, str(Path(__file__).parent))  # the sibling script's first windows
from cascade_oracle import first_window, with_fine

SYSTEMS = ("truth", "codec", "stage2 on true coarse", "renderer on true plan", "model")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("manifest", type=Path, help="a pairs manifest.jsonl")
    p.add_argument("--max-clips", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    acc = Accompanist.from_pretrained(args.bundle)
    parts, cfg = acc.parts, acc.config
    if parts.planner is None:
        raise SystemExit(f"{args.bundle}: needs a bundle with a planner")
    params = SamplingParams(
        temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, seed=args.seed,
        guidance=cfg.guidance,
    )  # fmt: skip
    fine_params = SamplingParams(
        temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, seed=args.seed + 1
    )
    clips = load_clips(args.manifest, args.max_clips)
    embedding = load_embedding("musicfeat", None)
    reference = _reference_embeddings(args.manifest, len(clips), embedding)
    q = parts.stage1.config.coarse_levels
    embs: dict[tuple[str, bool], list[np.ndarray]] = {}
    for k, clip in enumerate(clips):
        w = first_window(acc, clip, guidance=params.guidance)
        n = w.vocals.size
        with torch.inference_mode():
            plan = parts.planner.generate(w.codes, params=params, negative=w.silence).semantic
            gen = {
                "truth": w.truth,
                "codec": parts.codec.decode(w.truth_ac)[0, :n].numpy(),
                "stage2 on true coarse": with_fine(acc, w.truth_ac[:, :q], fine_params, n),
            }
            for name, semantic in (("renderer on true plan", w.truth_sem), ("model", plan)):
                got = parts.stage1.generate(
                    w.codes, params=params, negative=w.silence, semantic=semantic
                )
                assert got.acoustic is not None
                gen[name] = with_fine(acc, got.acoustic, fine_params, n)
        for name, wav in gen.items():
            for toned in (False, True):
                inst = np.asarray(wav, np.float32)
                inst = acc._tone(inst) if toned else inst
                mix = _mixes(w.vocals, _fit_length(inst, n))[1]
                embs.setdefault((name, toned), []).append(embedding.embed(mix))
        print(f"clip {k + 1}/{len(clips)}", flush=True)

    print(f"\n{platform.machine()}, {args.bundle}, first {cfg.window_seconds:g} s of {len(clips)} "
          f"held-out clips of {args.manifest}, isolated vocals")  # fmt: skip
    print(f"FAD ({embedding.name}) with bootstrap 95 % interval; sampling: {params}\n")
    print("| instrumental | as decoded | with the bundle's tone match |\n|---|---:|---:|")
    for name in SYSTEMS:
        cells = []
        for toned in (False, True):
            fad, low, high = bootstrap_fad(embs[(name, toned)], reference, rounds=200, seed=0)
            cells.append(f"{fad:.1f} [{low:.1f}, {high:.1f}]")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()

"""Is the harmony still in the semantic codes? Harmonic fit computed on token folders alone.

    python -u benchmarks/token_harmony.py --semantic runs/semantic/default \
        data/tok_mir1k_valid data/tok_songbook_valid

Each semantic code stands for its k-means centroid, whose features are (after undoing the
standardisation) a pitch salience, a 12-bin chroma, ... of the frames it clusters. So a vocal
code has a sung pitch class (its loudest pitch) and a voicing level, and an instrumental code a
chroma. The fit of a clip is ``evaluation.agreement.harmonic_fit`` in token space: frame by frame
over the voiced vocal frames, 12 x the instrumental code's chroma share at the sung pitch class
(1 = chance). Printed per token folder, with a bootstrap interval over clips:

- ``matched``: the clip's own instrumental codes;
- ``lagged``: its instrumental codes 1 s later (same song and key; a chord held that long
  still fits, an echo of the melody note by note no longer does);
- ``shuffled``: another clip's instrumental codes.

If matched is far above shuffled, the codes carry what a stage-1 model needs to accompany in
key; a model that stays at chance has not learnt to read it.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from singsong.tokenizers.base import TokenizerInfo
from singsong.tokenizers.semantic.tokenizer import SemanticTokenizer
from singsong.tokenizers.token_dataset import TokenDataset, read_token_meta

LAG = 25  # semantic frames: 1 s


def code_tables(semantic: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (pitch class [K], voiced [K] bool, chroma shares [K, 12]) of each code's centroid."""
    tok = SemanticTokenizer.from_pretrained(semantic)
    groups = dict(tok.extractor.groups)
    if not {"pitch", "chroma", "energy"} <= set(groups):
        raise SystemExit(f"{semantic}: needs the music backend's pitch, chroma, energy features")
    raw = (tok.centroids / tok.scale + tok.mean).numpy()  # [K, D] back in feature units
    start, spans = 0, {}
    for name, n in tok.extractor.groups:
        spans[name] = slice(start, start + n)
        start += n
    music = tok.config.music
    assert music is not None
    pitch = raw[:, spans["pitch"]]  # [K, num_pitches], semitones up from min_midi
    pitch_class = (music.min_midi + pitch.argmax(1)) % 12
    voicing = raw[:, spans["energy"]][:, 1]  # [K]
    voiced = voicing > np.median(voicing)
    chroma = np.clip(raw[:, spans["chroma"]], 0, None)  # [K, 12], index 0 = C
    chroma = chroma / (chroma.sum(1, keepdims=True) + 1e-9)
    return pitch_class, voiced, chroma


def fit(vocal: np.ndarray, inst: np.ndarray, tables: tuple[np.ndarray, ...]) -> float:
    pitch_class, voiced, chroma = tables
    n = min(len(vocal), len(inst))
    v, i = vocal[:n], inst[:n]
    ok = voiced[v]
    if ok.sum() < 5:
        return float("nan")
    return float(12 * chroma[i[ok], pitch_class[v[ok]]].mean())


def fit_profile(vocal: np.ndarray, inst: np.ndarray, tables: tuple[np.ndarray, ...]) -> np.ndarray:
    """:func:`fit` at the vocal's pitch class + k semitones, k = 0..11 -> [12] (NaN if unvoiced)."""
    pitch_class, voiced, chroma = tables
    n = min(len(vocal), len(inst))
    v, i = vocal[:n], inst[:n]
    ok = voiced[v]
    if ok.sum() < 5:
        return np.full(12, np.nan)
    k = np.arange(12)[:, None]  # [12, 1]
    return 12 * chroma[i[ok][None], (pitch_class[v[ok]][None] + k) % 12].mean(1)


def interval(x: np.ndarray, rng: np.random.Generator) -> str:
    means = [rng.choice(x, x.size).mean() for _ in range(1000)]
    return f"{x.mean():.3f} [{np.percentile(means, 2.5):.3f}, {np.percentile(means, 97.5):.3f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="token folders of `singsong tokenize`")
    p.add_argument("--semantic", type=Path, required=True, help="their semantic tokenizer")
    p.add_argument("--vocals", default="vocals", help="vocal stream prefix (vocals_noisy ...)")
    args = p.parse_args()
    tables = code_tables(args.semantic)
    rng = np.random.default_rng(0)
    print(f"{platform.machine()}; token-space harmonic fit (1 = chance), mean over clips [95 %]")
    print("| folder | clips | matched | lagged 1 s | shuffled | matched - shuffled |")
    print("|---|---:|---:|---:|---:|---:|")
    for folder in args.folders:
        infos = read_token_meta(folder)["tokenizers"]
        ds = TokenDataset(folder, expect={r: TokenizerInfo(**i) for r, i in infos.items()})
        vocals, insts = [], []
        for i in range(len(ds)):
            item = ds[i]
            vocals.append(item[f"{args.vocals}_semantic"][0].numpy())
            insts.append(item["instrumental_semantic"][0].numpy())
        partner = np.roll(np.arange(len(vocals)), 1)
        rows = np.array([
            (fit(v, i, tables), fit(v[:-LAG], i[LAG:], tables), fit(v, insts[j], tables))
            for v, i, j in zip(vocals, insts, partner, strict=True)
        ])  # fmt: skip
        rows = rows[np.isfinite(rows).all(1)]
        cells = [interval(rows[:, k], rng) for k in range(3)]
        diff = interval(rows[:, 0] - rows[:, 2], rng)
        print(f"| {folder.name} | {len(rows)} | " + " | ".join(cells) + f" | {diff} |")


if __name__ == "__main__":
    main()

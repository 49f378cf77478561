"""How well do the evaluation's key and tempo estimates match the songbook's truth?

For the songbook's held-out songs (index % 10 == 9), estimate key and tempo of the true
instrumental and of the true vocals, on whole songs and on their 10 s clips, and compare with
meta.json. Clip-level numbers are what the agreement metrics see; whole-song numbers show what
the estimators do with more music.

    python -u benchmarks/eval_analysis.py data/pairs_songbook data/songbook
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from singsong import SAMPLE_RATE
from singsong.audio import load_audio
from singsong.data.splits import is_valid_song
from singsong.evaluation.analysis import Key, analyze, mirex_key_score, tempo_match


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("pairs", type=Path, help="a songbook pairs folder (true stems per track)")
    p.add_argument("songbook", type=Path, help="the songbook folder (meta.json per song)")
    p.add_argument("--songs", type=int, default=39)
    args = p.parse_args()
    torch.set_num_threads(1)
    songs = sorted(s.name for s in (args.pairs / "tracks").iterdir() if is_valid_song(s.name))
    songs = songs[: args.songs]
    scores: dict[str, list[float]] = {}
    start = time.perf_counter()

    def add(name: str, value: float) -> None:
        scores.setdefault(name, []).append(value)

    for song in songs:
        meta = json.loads((args.songbook / song / "meta.json").read_text())
        key, tempo = Key(meta["tonic"], meta["mode"]), float(meta["tempo"])
        for stem, voice in (("true_instrumental", False), ("true_vocals", True)):
            wav = load_audio(args.pairs / "tracks" / song / f"{stem}.flac")
            short = stem.split("_")[1]
            whole = analyze(wav, voice=voice)
            add(f"{short}_song_key_exact", float(mirex_key_score(whole.key, key) == 1.0))
            add(f"{short}_song_key_mirex", mirex_key_score(whole.key, key))
            add(f"{short}_song_tempo_ok", float(tempo_match(whole.tempo, tempo)))
            clip = 10 * SAMPLE_RATE
            for s in range(0, wav.size - clip + 1, clip):
                f = analyze(wav[s : s + clip], voice=voice)
                add(f"{short}_clip_key_exact", float(mirex_key_score(f.key, key) == 1.0))
                add(f"{short}_clip_key_mirex", mirex_key_score(f.key, key))
                add(f"{short}_clip_tempo_ok", float(tempo_match(f.tempo, tempo)))
    print(f"{len(songs)} songs, {time.perf_counter() - start:.0f} s")
    for name, v in scores.items():
        x = np.asarray(v)
        se = x.std() / np.sqrt(x.size)
        print(f"{name:28s} {x.mean():.3f} ± {1.96 * se:.3f} (n={x.size})")


if __name__ == "__main__":
    main()

"""Pack instrumental audio for fine-tuning the codec's decoder (``singsong codec finetune
--audio``): MIR-1K train singers' accompaniments and 20-s excerpts of songbook train songs'
instrumentals (drums + bass + other), in 2-minute 16 kHz FLAC files.

A small, fixed folder: it travels to a GPU machine (34.8 minutes are 48.6 MB) and the
fine-tune holds it in memory. The seed fixes which clips and excerpts are taken.

    python recipes/decoder/pack_instrumentals.py --mir1k ../shared/data/mir1k \
        --songbook data/songbook --out data/instrumentals
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from singsong.data.mir1k import list_clips, load_stems
from singsong.tokenizers.codec.data import list_songs

SR = 16000
FILE_SECONDS = 120  # each file holds just over this much
EXCERPT_SECONDS = 20


def _write(path: Path, chunks: list[np.ndarray]) -> float:
    """Concatenate, keep the peak under full scale, write 16-bit FLAC; returns minutes."""
    x = np.concatenate(chunks).astype(np.float32)
    peak = float(np.abs(x).max())
    if peak > 0.999:
        x = x * np.float32(0.999 / peak)
    sf.write(path, x, SR, subtype="PCM_16", format="FLAC")
    return len(x) / SR / 60


def _pack(out: Path, prefix: str, pieces: Iterable[np.ndarray], minutes: float) -> float:
    """Concatenate ``pieces`` into files ``prefix-NN.flac`` of just over ``FILE_SECONDS`` each
    until ``minutes`` are written (or the pieces run out); returns the minutes written."""
    written, index, chunks = 0.0, 0, []
    for piece in pieces:
        chunks.append(piece)
        if sum(map(len, chunks)) > SR * FILE_SECONDS:
            path = out / f"{prefix}-{index:02d}.flac"
            written += _write(path, chunks)
            print(f"{path}: {written:.1f} of {minutes:g} minutes", flush=True)
            index, chunks = index + 1, []
            if written >= minutes:
                break
    return written


def _excerpts(songs: list[Path], rng: random.Random) -> Iterator[np.ndarray]:
    """A random ``EXCERPT_SECONDS`` of each song's instrumental (drums + bass + other)."""
    length = EXCERPT_SECONDS * SR
    for song in songs:
        start = rng.randrange(max(1, sf.info(str(song / "drums.flac")).frames - length))
        stems = [
            sf.read(str(song / f"{s}.flac"), start=start, frames=length, dtype="float32",
                    always_2d=True)[0].mean(1)
            for s in ("drums", "bass", "other")
        ]  # fmt: skip
        yield sum(stems[1:], stems[0])


def pack(
    out: Path,
    *,
    mir1k: Path,
    songbook: Path,
    mir1k_minutes: float,
    songbook_minutes: float,
    seed: int = 0,
) -> float:
    """Write the folder; returns its minutes of audio."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    clips = list_clips(mir1k, "train")
    rng.shuffle(clips)
    accompaniments = (load_stems(clip)[1] for clip in clips)
    minutes = _pack(out, "mir1k", accompaniments, mir1k_minutes)
    songs = list_songs(songbook, "train")
    rng.shuffle(songs)  # after the MIR-1K clips: the seed fixes both draws
    return minutes + _pack(out, "songbook", _excerpts(songs, rng), songbook_minutes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mir1k", type=Path, required=True, help="MIR-1K folder (manifest.csv)")
    p.add_argument("--songbook", type=Path, required=True, help="songbook folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--mir1k-minutes", type=float, default=20.0)
    p.add_argument("--songbook-minutes", type=float, default=12.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    minutes = pack(a.out, mir1k=a.mir1k, songbook=a.songbook, mir1k_minutes=a.mir1k_minutes,
                   songbook_minutes=a.songbook_minutes, seed=a.seed)  # fmt: skip
    print(f"{a.out}: {minutes:.1f} minutes of instrumental audio")


if __name__ == "__main__":
    main()

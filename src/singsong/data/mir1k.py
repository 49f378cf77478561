"""MIR-1K (the subset in ../shared/data/mir1k): real amateur singing with its accompaniment.

Each clip is a 16 kHz stereo Ogg file: left = accompaniment, right = isolated vocals. MIR-1K is
free for research use (Hsu & Jang); it is never copied into this repository.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singsong.audio import load_audio
from singsong.data.splits import is_valid_singer
from singsong.errors import SingsongError


@dataclass(frozen=True)
class Mir1kClip:
    clip: str
    singer: str
    seconds: float
    audio: Path  # stereo ogg
    pitch: Path  # hand-labelled pitch, MIDI per 20 ms hop, 0 = unvoiced
    vocal: Path  # vocal activity per 20 ms hop


def list_clips(root: str | Path, split: str = "all") -> list[Mir1kClip]:
    """Clips of ``root`` (the mir1k folder); ``split`` is "train", "valid" or "all"."""
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise SingsongError(f"not a MIR-1K folder (no manifest.csv): {root}")
    if split not in ("train", "valid", "all"):
        raise SingsongError(f"split must be train, valid or all, got {split!r}")
    clips = []
    with manifest.open() as f:
        for row in csv.DictReader(f):
            valid = is_valid_singer(row["singer"])
            if split == "all" or (split == "valid") == valid:
                name = row["clip"]
                clips.append(
                    Mir1kClip(
                        name,
                        row["singer"],
                        float(row["seconds"]),
                        root / "audio" / f"{name}.ogg",
                        root / "pitch" / f"{name}.pv",
                        root / "vocal" / f"{name}.vocal",
                    )
                )
    return clips


def load_stems(clip: Mir1kClip) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, accompaniment), float32 [T] each at 16 kHz."""
    stereo = load_audio(clip.audio, mono=False)  # [2, T]
    if stereo.shape[0] != 2:
        raise SingsongError(f"expected a stereo MIR-1K clip, got {stereo.shape[0]} channels")
    return stereo[1], stereo[0]


def load_pitch(clip: Mir1kClip) -> np.ndarray:
    """Hand-labelled vocal pitch in MIDI (0 = unvoiced), one value per 20 ms hop."""
    return np.loadtxt(clip.pitch, dtype=np.float32, ndmin=1)

"""Training audio for the semantic k-means: vocals AND instrumentals, train splits only.

The codes must describe both sides of SingSong (the vocal input and the instrumental target),
so the clusters are fitted on both: songbook train songs give their vocals and drums + bass +
other; MIR-1K train singers give their vocals and accompaniment. Held-out songs and singers
(:mod:`singsong.data.splits`) are never read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singsong.audio import load_audio
from singsong.data.mir1k import Mir1kClip, list_clips, load_stems
from singsong.data.splits import is_valid_song
from singsong.errors import SingsongError

STEMS = ("vocals", "drums", "bass", "other")


@dataclass(frozen=True)
class Source:
    """One training item; ``load()`` -> its clips (vocals, instrumental), float32 [N] each."""

    name: str
    seconds: float
    load: Callable[[], list[np.ndarray]]


def songbook_sources(root: str | Path) -> list[Source]:
    """Finished train songs of a songbook folder (songs still being rendered are skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise SingsongError(f"songbook folder not found: {root}")
    songs = sorted(p for p in root.iterdir() if (p / "meta.json").is_file())
    if not songs:
        raise SingsongError(f"no songs (folders with meta.json) in {root}")
    sources = []
    for song in songs:
        if is_valid_song(song.name) or not all((song / f"{s}.flac").is_file() for s in STEMS):
            continue
        seconds = float(json.loads((song / "meta.json").read_text()).get("duration", 0.0))
        sources.append(Source(f"songbook/{song.name}", 2 * seconds, _song_loader(song)))
    return sources


def _song_loader(song: Path) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        vocals, *band = (load_audio(song / f"{s}.flac") for s in STEMS)
        n = min(len(vocals), *(len(b) for b in band))
        return [vocals[:n], np.stack([b[:n] for b in band]).sum(0, dtype=np.float32)]

    return load


def mir1k_sources(root: str | Path) -> list[Source]:
    """MIR-1K clips of the train singers: (vocals, accompaniment)."""
    sources = []
    for clip in list_clips(root, "train"):
        sources.append(Source(f"mir1k/{clip.clip}", 2 * clip.seconds, _mir_loader(clip)))
    return sources


def _mir_loader(clip: Mir1kClip) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        vocals, accompaniment = load_stems(clip)
        return [vocals, accompaniment]

    return load


def iter_audio(sources: Sequence[Source], *, progress: bool = True) -> Iterator[np.ndarray]:
    """Every clip of ``sources``, with a progress bar in seconds of audio."""
    from tqdm import tqdm

    total = sum(s.seconds for s in sources)
    with tqdm(total=round(total), unit="s", desc="features", disable=not progress) as bar:
        for source in sources:
            for wav in source.load():
                if wav.size and np.abs(wav).max() > 0:  # all-silent stems teach nothing
                    yield wav
            bar.update(round(source.seconds))

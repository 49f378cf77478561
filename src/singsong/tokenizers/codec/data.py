"""Training and validation audio for the codec: random crops of songbook stems and mixtures
(train songs only) and MIR-1K singers' vocals, accompaniment and mixtures (train singers only),
or of any folder of audio files (:class:`FolderCrops`).

Songbook crops are read straight from the FLAC files (libsndfile seeks), so the songbook may
keep growing while a run trains: the song list is rescanned every few minutes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from singsong.audio import load_audio
from singsong.data.mir1k import Mir1kClip, list_clips, load_stems
from singsong.data.splits import is_valid_song
from singsong.errors import SingsongError

SONGBOOK_STEMS = ("vocals", "drums", "bass", "other", "mixture")
MIR1K_SOURCES = ("vocals", "accompaniment", "mixture")
SILENT_RMS = 3e-3  # about -50 dBFS: crops quieter than this are redrawn (a few times)
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")


def _audible_crop(draw: Callable[[], np.ndarray], rng: random.Random) -> np.ndarray:
    """A crop from ``draw`` (redrawn a few times while silent) at a random gain (-12..+3 dB),
    its peak kept below 0.99."""
    for _ in range(5):
        x = draw()
        if np.sqrt(np.mean(x**2)) > SILENT_RMS:
            break
    x = x * np.float32(10 ** (rng.uniform(-12, 3) / 20))
    peak = float(np.abs(x).max())
    return x * np.float32(0.99 / peak) if peak > 0.99 else x


def list_songs(root: Path, split: str) -> list[Path]:
    """Finished songs (meta.json and every stem present) of a songbook, by split."""
    songs = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not (d / "meta.json").is_file() or not all(
            (d / f"{s}.flac").is_file() for s in SONGBOOK_STEMS
        ):
            continue
        try:
            valid = is_valid_song(d.name)
        except ValueError:
            continue
        if valid == (split == "valid"):
            songs.append(d)
    return songs


def read_crop(path: Path, start: int, length: int) -> np.ndarray:
    """``length`` samples from ``start`` of a mono 16 kHz file, zero-padded at the end."""
    x, _ = sf.read(str(path), start=start, frames=length, dtype="float32", always_2d=True)
    x = x.mean(1)
    return np.pad(x, (0, length - len(x))) if len(x) < length else x


class CropSampler:
    """Draws random mono crops ``[length]`` from the songbook and MIR-1K (train split)."""

    def __init__(
        self,
        *,
        songbook: Path | None,
        mir1k: Path | None,
        songbook_share: float = 0.65,
        seed: int = 0,
        rescan_seconds: float = 300.0,
    ) -> None:
        if songbook is None and mir1k is None:
            raise SingsongError("the codec needs training audio: give --songbook and/or --mir1k")
        self.rng = random.Random(seed)
        self.songbook, self.rescan_seconds = songbook, rescan_seconds
        self.songs: list[Path] = []
        self.frames: dict[Path, int] = {}
        self.last_scan = -1e9
        self.clips: list[Mir1kClip] = list_clips(mir1k, "train") if mir1k else []
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # clip -> stems as float16
        self._rescan()
        if not self.songs and not self.clips:
            raise SingsongError("no training audio found in the songbook or MIR-1K folders")
        self.songbook_share = (
            songbook_share if self.songs and self.clips else float(bool(self.songs))
        )

    def _rescan(self) -> None:
        if self.songbook is not None and time.monotonic() - self.last_scan > self.rescan_seconds:
            self.songs = list_songs(self.songbook, "train")
            self.last_scan = time.monotonic()

    def _songbook_crop(self, length: int) -> np.ndarray:
        self._rescan()
        song = self.rng.choice(self.songs)
        path = song / f"{self.rng.choice(SONGBOOK_STEMS)}.flac"
        if path not in self.frames:
            self.frames[path] = sf.info(str(path)).frames
        start = self.rng.randrange(max(1, self.frames[path] - length))
        return read_crop(path, start, length)

    def _mir1k_crop(self, length: int) -> np.ndarray:
        clip = self.rng.choice(self.clips)
        if clip.clip not in self.cache:
            vocals, accomp = load_stems(clip)
            self.cache[clip.clip] = (vocals.astype(np.float16), accomp.astype(np.float16))
        vocals, accomp = (s.astype(np.float32) for s in self.cache[clip.clip])
        source = self.rng.choice(MIR1K_SOURCES)
        wav = (
            vocals
            if source == "vocals"
            else accomp
            if source == "accompaniment"
            else vocals + accomp
        )
        start = self.rng.randrange(max(1, len(wav) - length))
        crop = wav[start : start + length]
        return np.pad(crop, (0, length - len(crop))) if len(crop) < length else crop

    def crop(self, length: int) -> np.ndarray:
        """One crop [length] float32 with a random gain (-12..+3 dB, peak kept below 0.99)."""

        def draw() -> np.ndarray:
            use_songbook = self.rng.random() < self.songbook_share
            return self._songbook_crop(length) if use_songbook else self._mir1k_crop(length)

        return _audible_crop(draw, self.rng)

    def batch(self, size: int, length: int) -> np.ndarray:  # [size, length]
        return np.stack([self.crop(length) for _ in range(size)])


class FolderCrops:
    """Draws random mono crops ``[length]`` from every audio file under ``root`` (recursively),
    all held in memory as float16 (about 115 MB per hour): fine-tuning on the music you want
    rendered, and crops fast enough to keep a GPU busy. Files are drawn by their length."""

    def __init__(self, root: Path, *, seed: int = 0) -> None:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise SingsongError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {root}")
        self.audio = [load_audio(p).astype(np.float16) for p in files]  # each [N] at 16 kHz
        self.weights = [len(a) for a in self.audio]
        self.seconds = sum(self.weights) / 16000
        self.rng = random.Random(seed)

    def crop(self, length: int) -> np.ndarray:
        """One crop [length] float32 (redrawn when silent) with a random gain, as
        :meth:`CropSampler.crop`."""

        def draw() -> np.ndarray:
            wav = self.rng.choices(self.audio, weights=self.weights)[0]
            start = self.rng.randrange(max(1, len(wav) - length))
            x = wav[start : start + length].astype(np.float32)
            return np.pad(x, (0, length - len(x))) if len(x) < length else x

        return _audible_crop(draw, self.rng)

    def batch(self, size: int, length: int) -> np.ndarray:  # [size, length]
        return np.stack([self.crop(length) for _ in range(size)])


def validation_set(
    *, songbook: Path | None, mir1k: Path | None, clips: int, seconds: float, seed: int = 1234
) -> dict[str, np.ndarray]:
    """Fixed held-out crops, by set: {"songbook": [n, N], "mir1k": [n, N]} (louder than -50 dBFS
    where possible). Songbook: valid songs' mixtures and stems; MIR-1K: valid singers' vocals
    and mixtures."""
    rng = random.Random(seed)
    length = int(seconds * 16000)
    out: dict[str, np.ndarray] = {}
    songs = list_songs(songbook, "valid") if songbook else []
    if songs:
        crops = []
        for i in range(clips * 4):
            song = songs[i % len(songs)]
            path = song / f"{SONGBOOK_STEMS[rng.randrange(5)]}.flac"
            n = sf.info(str(path)).frames
            x = read_crop(path, rng.randrange(max(1, n - length)), length)
            if np.sqrt(np.mean(x**2)) > SILENT_RMS:
                crops.append(x)
            if len(crops) == clips:
                break
        out["songbook"] = np.stack(crops)
    valid = list_clips(mir1k, "valid") if mir1k else []
    if valid:
        crops = []
        for i in range(clips):
            vocals, accomp = load_stems(valid[rng.randrange(len(valid))])
            wav = vocals if i % 2 == 0 else vocals + accomp
            start = rng.randrange(max(1, len(wav) - length))
            crops.append(
                np.pad(wav[start : start + length], (0, max(0, start + length - len(wav))))
            )
        out["mir1k"] = np.stack(crops).astype(np.float32)
    return out

"""(vocals, instrumental) training pairs from songs: separate, cut into clips, keep the sung ones.

Per track (a pure function of the track, run by :func:`singsong.data.engine.run_map`):

1. separate the mixture (or read the true stems with the ``oracle``);
2. write ``OUT/tracks/<id>/{vocals,instrumental}.flac`` (and ``true_vocals``/``true_instrumental``
   when the track has known stems, so separated and true vocals can be compared);
3. cut clips of ``clip_seconds`` (10 s) every ``hop_seconds``; a track shorter than one clip but at
   least ``min_seconds`` long gives one clip of its own length;
4. keep a clip when the separated vocals sing in at least ``min_activity`` of its frames (below);
5. write ``OUT/tracks/<id>/clips.jsonl``, last: its presence marks the track finished (resume).

``OUT/manifest.jsonl`` gathers every finished track's clips at the end of a run.

Vocal activity, measured on the separated vocals: 50 ms frames; a frame is sung when the vocals'
RMS is above -50 dBFS and no more than 15 dB below the mixture's RMS in that frame. The relative
test follows the music's level (a quiet song still counts), and separation residue, typically
20 dB or more below the mixture, does not count as singing.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import atomic_write, save_audio
from singsong.data.engine import Item, run_map
from singsong.errors import SingsongError
from singsong.separate.base import Separation, Separator, Track

AUDIO_SUFFIXES = {
    ".wav",
    ".flac",
    ".ogg",
    ".opus",
    ".mp3",
    ".m4a",
    ".aac",
    ".aiff",
    ".aif",
    ".webm",
}
FRAME_SECONDS = 0.05
ABSOLUTE_FLOOR_DB = -50.0
RELATIVE_FLOOR_DB = -15.0


@dataclass(frozen=True)
class PairsConfig:
    out: str
    separator: str = "builtin"
    separator_path: str | None = None
    clip_seconds: float = 10.0
    hop_seconds: float = 10.0
    min_seconds: float = 4.0
    min_activity: float = 0.5

    def __post_init__(self) -> None:
        if not self.clip_seconds > 0 or not self.hop_seconds > 0:
            raise SingsongError("--clip-seconds and --hop-seconds must be positive")
        if not 0 <= self.min_activity <= 1:
            raise SingsongError(f"--min-activity must be in [0, 1], got {self.min_activity}")


def vocal_activity(vocals: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """Per 50 ms frame: does the voice sing? -> bool [frames]."""
    n = int(FRAME_SECONDS * SAMPLE_RATE)
    frames = len(vocals) // n
    if frames == 0:
        return np.zeros(0, dtype=bool)
    v = vocals[: frames * n].reshape(frames, n).astype(np.float64)
    m = mixture[: frames * n].reshape(frames, n).astype(np.float64)
    v_db = 10 * np.log10(np.mean(v**2, axis=1) + 1e-12)
    m_db = 10 * np.log10(np.mean(m**2, axis=1) + 1e-12)
    return (v_db > ABSOLUTE_FLOOR_DB) & (v_db > m_db + RELATIVE_FLOOR_DB)


def clip_windows(num_samples: int, config: PairsConfig) -> list[tuple[int, int]]:
    """(start, length) in samples of every clip of a track."""
    clip = int(config.clip_seconds * SAMPLE_RATE)
    hop = int(config.hop_seconds * SAMPLE_RATE)
    if num_samples < clip:
        return [(0, num_samples)] if num_samples >= config.min_seconds * SAMPLE_RATE else []
    return [(s, clip) for s in range(0, num_samples - clip + 1, hop)]


def load_separator(name: str, path: str | None = None) -> Separator:
    """A separator by name: oracle, repet-sim, builtin (needs ``path``), demucs (needs ``path``)."""
    if name == "oracle":
        from singsong.separate.oracle import OracleSeparator

        return OracleSeparator()
    if name == "repet-sim":
        from singsong.separate.baselines import RepetSimSeparator

        return RepetSimSeparator()
    if name == "builtin":
        from singsong.separate.builtin import BuiltinSeparator

        if path is None:
            raise SingsongError("the builtin separator needs --separator-path (a trained model)")
        return BuiltinSeparator.from_pretrained(path)
    if name == "demucs":
        from singsong.separate.demucs import DemucsSeparator

        if path is None:
            raise SingsongError("the demucs separator needs --separator-path (local weights)")
        return DemucsSeparator.from_path(path)
    raise SingsongError(f"unknown separator {name!r}; choose oracle, repet-sim, builtin, demucs")


def safe_id(text: str) -> str:
    """A track id usable as a folder name: path separators and odd characters replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "__")).strip("._") or "track"


def discover_tracks(source: str | Path, *, split: str = "all") -> list[Track]:
    """Tracks in ``source``: a songbook folder, a MIR-1K folder, a folder of songs, or a file.

    ``split`` (train, valid, all) applies to songbook and MIR-1K folders.
    """
    from singsong.data.splits import is_valid_song

    root = Path(source).resolve()  # provenance records absolute paths
    if not root.exists():
        raise SingsongError(f"not found: {source}")
    if root.is_file():
        return [Track(id=safe_id(root.stem), path=str(root))]
    if (root / "manifest.csv").is_file() and (root / "audio").is_dir():
        from singsong.data.mir1k import list_clips

        return [Track(id=c.clip, path=str(c.audio), kind="mir1k") for c in list_clips(root, split)]
    songs = sorted(p.parent for p in root.glob("*/meta.json"))
    if songs:
        keep = {
            "all": lambda s: True,
            "train": lambda s: not is_valid_song(s),
            "valid": is_valid_song,
        }[split]
        return [Track(id=p.name, path=str(p), kind="songbook") for p in songs if keep(p.name)]
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    tracks = [
        Track(id=safe_id(str(p.relative_to(root).with_suffix(""))), path=str(p)) for p in files
    ]
    if not tracks:
        raise SingsongError(f"no audio files found in {root}")
    ids = [t.id for t in tracks]
    if len(set(ids)) != len(ids):
        raise SingsongError(f"two files in {root} map to the same track id")
    return tracks


class PairsWorker:
    """Makes the clips of one track; built once per worker process (it holds the separator)."""

    def __init__(self, config: PairsConfig) -> None:
        import torch

        # Parallelism comes from worker processes; one thread each. Several multi-threaded
        # workers on shared cores spin against each other and run many times slower.
        torch.set_num_threads(1)
        self.config = config
        self.separator = load_separator(config.separator, config.separator_path)

    def __call__(self, item: Item) -> Item:
        track = Track(**item)
        try:
            return {"id": track.id, "clips": len(self.process(track)), "error": ""}
        except Exception as e:
            return {"id": track.id, "clips": 0, "error": f"{type(e).__name__}: {e}"}

    def process(self, track: Track) -> list[dict[str, Any]]:
        out = Path(self.config.out) / "tracks" / track.id
        # Written into a staging folder and renamed into place: never half a track under ``out``.
        staging = out.with_name(f".{track.id}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            rows = self._process(track, staging)
            shutil.rmtree(out, ignore_errors=True)
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return rows

    def _process(self, track: Track, folder: Path) -> list[dict[str, Any]]:
        sep = self.separator
        separated: Separation = sep.separate_track(track)
        truth = track.load_true_stems()
        mixture = separated.vocals + separated.instrumental
        if truth is not None:
            mixture = truth.vocals + truth.instrumental
        files = {"vocals": separated.vocals, "instrumental": separated.instrumental}
        if truth is not None and sep.name != "oracle":
            files |= {"true_vocals": truth.vocals, "true_instrumental": truth.instrumental}
        for name, audio in files.items():
            save_audio(folder / f"{name}.flac", audio, SAMPLE_RATE, clip=True)
        active = vocal_activity(separated.vocals, mixture)
        frame = int(FRAME_SECONDS * SAMPLE_RATE)
        rows = []
        for k, (start, length) in enumerate(clip_windows(len(separated.vocals), self.config)):
            a = active[start // frame : (start + length) // frame]
            activity = float(a.mean()) if a.size else 0.0
            if activity < self.config.min_activity:
                continue
            row = {
                "id": f"{track.id}_{k:04d}",
                "offset": round(start / SAMPLE_RATE, 4),
                "duration": round(length / SAMPLE_RATE, 4),
                "vocal_activity": round(activity, 3),
                "source": track.path,
                "source_kind": track.kind,
                "track": track.id,
                "separator": sep.name,
                "separator_version": sep.version,
            }
            # Paths relative to the manifest's folder (OUT), as the tokenize stage expects.
            row |= {name: f"tracks/{track.id}/{name}.flac" for name in files}
            rows.append(row)
        with atomic_write(folder / "clips.jsonl") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        return rows


def build_pairs(
    config: PairsConfig,
    tracks: list[Track],
    *,
    engine: str = "local",
    jobs: int = 1,
    progress: bool = True,
    worker: Callable[[PairsConfig], PairsWorker] = PairsWorker,
) -> dict[str, Any]:
    """Run the pairs stage over ``tracks``; finished tracks are skipped. Returns a summary."""
    from functools import partial

    from tqdm import tqdm

    out = Path(config.out)
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    (out / "pairs_config.json").write_text(json.dumps(asdict(config), indent=1))
    todo = [t for t in tracks if not (out / "tracks" / t.id / "clips.jsonl").is_file()]
    failures, clips = [], 0
    bar = tqdm(
        total=len(tracks),
        initial=len(tracks) - len(todo),
        unit="track",
        disable=not progress,
        desc="pairs",
    )
    for result in run_map(
        partial(worker, config), [asdict(t) for t in todo], engine=engine, jobs=jobs
    ):
        if result["error"]:
            failures.append(f"{result['id']}: {result['error']}")
            bar.write(f"failed: {result['id']}: {result['error']}")
        clips += result["clips"]
        bar.update(1)
    bar.close()
    total = write_manifest(out, [t.id for t in tracks])
    return {
        "tracks": len(tracks),
        "processed": len(todo) - len(failures),
        "skipped": len(tracks) - len(todo),
        "failed": failures,
        "new_clips": clips,
        "clips": total,
        "manifest": str(out / "manifest.jsonl"),
    }


def write_manifest(out: Path, track_ids: list[str]) -> int:
    n = 0
    with atomic_write(out / "manifest.jsonl") as f:
        for track_id in track_ids:
            clips = out / "tracks" / track_id / "clips.jsonl"
            if clips.is_file():
                text = clips.read_text()
                f.write(text)
                n += text.count("\n")
    return n

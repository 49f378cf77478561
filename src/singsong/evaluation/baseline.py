"""The paper's retrieval baseline: fit a human-made instrumental to the vocals by key and tempo.

1. Index a library once (:func:`build_index`): key, tempo and beat times of every instrumental
   (the training-split clips of a pairs folder, or every file of a folder of audio).
2. For the input vocals, estimate key (from the sung pitch classes) and tempo (from the vocal
   onsets), and retrieve the entry that needs the least change: cost = semitones of pitch shift
   + tempo change in "semitone equivalents" (6 % per unit) + 1 if the mode differs (a minor
   instrumental shifted to the relative major's key signature of a major voice).
3. Time-stretch it to the vocal tempo (double/half allowed), pitch-shift it to the vocal key
   (librosa's phase vocoder), cut it to whole beats and loop it to the input's length, starting at
   the beat phase whose onsets line up best with the vocal onsets.

Quality matters less than correctness here: it is a reference point for the model, as in the
paper (where listeners preferred SingSong over it 66 % of the time).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import FloatArray, atomic_write, load_audio, loudness_lufs, loudness_normalize
from singsong.errors import AudioError, SingsongError
from singsong.evaluation.analysis import HOP, Features, Key, analyze, require

__all__ = ["IndexEntry", "Retrieval", "RetrievalBaseline", "build_index", "load_index",
           "read_segment"]  # fmt: skip

INDEX_NAME = "retrieval_index.json"
INDEX_VERSION = 1
SEMITONE_TEMPO = float(np.log2(1.06))  # a 6 % tempo change costs as much as one semitone


@dataclass(frozen=True)
class IndexEntry:
    path: str  # absolute
    offset: float  # seconds
    duration: float  # seconds
    tonic: int
    mode: str
    tempo: float  # BPM, 0 = none found
    beats: tuple[float, ...]  # seconds from ``offset``
    track: str = ""  # the song it comes from (never retrieve a song for itself)

    @property
    def key(self) -> Key:
        return Key(self.tonic, self.mode)


@dataclass(frozen=True)
class Retrieval:
    entry: IndexEntry
    shift: int  # semitones applied to the entry
    rate: float  # time-stretch rate applied (> 1 = faster)
    vocal_key: Key
    vocal_tempo: float
    cost: float


def read_segment(path: str | os.PathLike[str], offset: float, duration: float) -> FloatArray:
    """``duration`` seconds of a file from ``offset``, mono 16 kHz (seeks; no full decode)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.SoundFileError):
        x = load_audio(path)
        start = int(offset * SAMPLE_RATE)
        return x[start : start + round(duration * SAMPLE_RATE)]
    start = round(offset * info.samplerate)
    stop = start + round(duration * info.samplerate)
    data, sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    from singsong.audio import resample

    return resample(data.mean(axis=1), int(sr), SAMPLE_RATE)


def _library_items(library: Path) -> list[dict[str, Any]]:
    """(path, offset, duration, track) of each library instrumental: the training-split rows of
    a pairs folder, or whole files of a folder of audio."""
    manifest = library / "manifest.jsonl"
    if manifest.is_file():
        from singsong.evaluation.run import is_heldout, song_of

        items = []
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            if is_heldout(row):  # never retrieve from the evaluation songs
                continue
            name = "true_instrumental" if "true_instrumental" in row else "instrumental"
            items.append(
                {
                    "path": str((library / row[name]).resolve()),
                    "offset": float(row["offset"]),
                    "duration": float(row["duration"]),
                    "track": song_of(row),
                }
            )
        return items
    from singsong.evaluation.fad import audio_files

    return [
        {"path": str(p.resolve()), "offset": 0.0, "duration": -1.0, "track": p.stem}
        for p in audio_files(library)
    ]


def build_index(
    library: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    max_items: int | None = None,
    progress: bool = True,
) -> list[IndexEntry]:
    """Analyse every instrumental of ``library`` and write the index (default
    ``LIBRARY/retrieval_index.json``). ``max_items`` takes an evenly spaced subset."""
    from tqdm import tqdm

    root = Path(library)
    if not root.is_dir():
        raise SingsongError(f"library not found: {root} (a pairs folder or a folder of audio)")
    items = _library_items(root)
    if max_items is not None and len(items) > max_items:
        items = [items[i] for i in np.linspace(0, len(items) - 1, max_items).astype(int)]
    entries = []
    for item in tqdm(items, desc="index", unit="clip", disable=not progress):
        if item["duration"] < 0:
            wav = load_audio(item["path"])
        else:
            wav = read_segment(item["path"], item["offset"], item["duration"])
        if wav.size < SAMPLE_RATE:
            continue
        f = analyze(wav)
        entries.append(
            IndexEntry(
                path=item["path"],
                offset=item["offset"],
                duration=wav.size / SAMPLE_RATE,
                tonic=f.key.tonic,
                mode=f.key.mode,
                tempo=round(f.tempo, 3),
                beats=tuple(round(float(b), 4) for b in f.beats),
                track=item["track"],
            )
        )
    if not entries:
        raise SingsongError(f"no usable instrumentals (1 s or longer) in {root}")
    with atomic_write(Path(out) if out else root / INDEX_NAME) as fh:
        json.dump({"version": INDEX_VERSION, "entries": [asdict(e) for e in entries]}, fh)
    return entries


def load_index(path: str | os.PathLike[str]) -> list[IndexEntry]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SingsongError(f"cannot read the retrieval index {path}: {e}") from None
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        raise SingsongError(f"{path} is not a version-{INDEX_VERSION} retrieval index; rebuild it")
    return [IndexEntry(**{**e, "beats": tuple(e["beats"])}) for e in data["entries"]]


def _fold_rate(rate: float) -> float:
    """Bring a tempo ratio within [1/sqrt 2, sqrt 2] by doubling or halving (double/half time)."""
    while rate > np.sqrt(2):
        rate /= 2
    while rate < 1 / np.sqrt(2):
        rate *= 2
    return rate


class RetrievalBaseline:
    """Retrieve, shift, stretch and loop an instrumental to fit the vocals (module docstring)."""

    def __init__(self, entries: list[IndexEntry]) -> None:
        if not entries:
            raise SingsongError("the retrieval library is empty")
        self.entries = entries

    def retrieve(self, vocals: Features, *, exclude_track: str | None = None) -> Retrieval:
        best: Retrieval | None = None
        for e in self.entries:
            if exclude_track is not None and e.track == exclude_track:
                continue
            shift = (vocals.key.relative_major - e.key.relative_major) % 12
            shift = shift - 12 if shift > 6 else shift  # -5..6 semitones
            ok = vocals.tempo > 0 and e.tempo > 0
            rate = _fold_rate(vocals.tempo / e.tempo) if ok else 1.0
            cost = (
                abs(shift) + abs(np.log2(rate)) / SEMITONE_TEMPO + float(e.mode != vocals.key.mode)
            )
            if best is None or cost < best.cost:
                best = Retrieval(e, shift, rate, vocals.key, vocals.tempo, float(cost))
        if best is None:
            raise SingsongError("no library entry left after excluding the input's own song")
        return best

    def render(self, retrieval: Retrieval, vocals: Features, length: int) -> FloatArray:
        """The fitted instrumental, float32 [length] (not yet level-matched)."""
        librosa = require("librosa")

        e = retrieval.entry
        x = read_segment(e.path, e.offset, e.duration).astype(np.float32)
        if abs(retrieval.rate - 1) > 1e-3:
            x = librosa.effects.time_stretch(x, rate=retrieval.rate)
        if retrieval.shift:
            x = librosa.effects.pitch_shift(x, sr=SAMPLE_RATE, n_steps=retrieval.shift)
        beats = np.asarray(e.beats) / retrieval.rate  # stretched time
        if beats.size >= 3:  # loop whole beats so the grid runs on across the seam
            a, b = int(beats[0] * SAMPLE_RATE), int(beats[-1] * SAMPLE_RATE)
            if b - a > SAMPLE_RATE:
                x = x[a:b]
        period = int(np.median(np.diff(beats)) * SAMPLE_RATE) if beats.size >= 2 else SAMPLE_RATE
        tiles = np.tile(x, -(-(length + period) // max(x.size, 1)) + 1)  # [>= length + period]
        lag = self._best_lag(tiles[: length + period], vocals, period)
        return np.ascontiguousarray(tiles[lag : lag + length], dtype=np.float32)

    @staticmethod
    def _best_lag(x: FloatArray, vocals: Features, period: int) -> int:
        """The start sample in [0, period) whose onset envelope best matches the vocal's."""
        librosa = require("librosa")

        env = librosa.onset.onset_strength(y=x, sr=SAMPLE_RATE, hop_length=HOP, n_fft=1024)
        v = vocals.onset_env - vocals.onset_env.mean()  # [F]
        scores = []
        for lag in range(max(period // HOP, 1)):
            seg = env[lag : lag + v.size]
            n = min(seg.size, v.size)
            scores.append(float(np.dot(seg[:n] - seg[:n].mean(), v[:n])) if n else 0.0)
        return int(np.argmax(scores)) * HOP

    def accompany(
        self,
        vocals: FloatArray,
        *,
        exclude_track: str | None = None,
        features: Features | None = None,
    ) -> tuple[FloatArray, Retrieval]:
        """Vocals [N] at 16 kHz -> (instrumental [N] at the vocals' loudness, what was used).

        ``features``: the vocals' analysis (``voice=True``) when the caller already has it."""
        x = np.asarray(vocals, dtype=np.float32)
        if x.ndim != 1 or x.size < SAMPLE_RATE // 2:
            raise AudioError(f"the vocals must be mono and at least 0.5 s long, got {x.shape}")
        if loudness_lufs(x, SAMPLE_RATE) <= -70.0:
            raise AudioError("the vocals are silent (below -70 LUFS): nothing to accompany")
        features = analyze(x, voice=True) if features is None else features
        retrieval = self.retrieve(features, exclude_track=exclude_track)
        inst = self.render(retrieval, features, x.size)
        level = loudness_lufs(x, SAMPLE_RATE)
        return loudness_normalize(inst, SAMPLE_RATE, level), retrieval

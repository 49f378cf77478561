"""Token shards: a clip manifest -> versioned uint16 code arrays, and the reader for training.

Layout of an output folder::

    tokens.json                 format, tokenizers' info, streams, clip ids + provenance, failures
    shard-00000/index.json      the shard's clips: id, frames per stream (offsets are cumulative)
    shard-00000/<stream>.npy    uint16 [sum of T over the shard's clips, K], one clip after another

Streams are ``{vocals,instrumental}_{semantic,acoustic}``, plus ``vocals_noisy_*`` (the vocals
with white noise, :class:`NoiseSpec`) when asked for. Why flat ``.npy`` per stream plus a
JSON index (nanoGPT's ``train.bin``, DAC's versioned files): ``np.load(mmap_mode="r",
allow_pickle=False)`` gives random access to one clip without reading the shard and without
pickle, a clip is one contiguous block (time-major), and any tool that reads ``.npy`` can read it.

Writing is resumable: a shard is written into ``.partial/`` and renamed into place when whole,
and a re-run skips every shard whose index matches the same manifest rows and tokenizers and
has no failed clips (failed clips are retried, like the songbook's failed songs).
:class:`singsong.tokenizers.token_dataset.TokenDataset` reads them back, and refuses folders
written by another tokenizer name, version or layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from singsong import SAMPLE_RATE
from singsong.audio import atomic_write, load_audio, resample
from singsong.data.splits import track_split
from singsong.errors import SingsongError
from singsong.models.noise import add_noise
from singsong.tokenizers.base import Tokenizer

__all__ = ["Clip", "NoiseSpec", "read_manifest", "select_split", "tokenize_manifest"]

log = logging.getLogger(__name__)
FORMAT, FORMAT_VERSION = "singsong-tokens", 1
TOKENS_FILE, INDEX_FILE = "tokens.json", "index.json"
SOURCES = ("vocals", "instrumental")
NOISY_SOURCE = "vocals_noisy"  # the vocals again, with white noise (optional)
SPLITS = ("train", "valid")
ROLES = ("semantic", "acoustic")
MAX_CODES = 1 << 16  # uint16
_TOLERANCE = SAMPLE_RATE // 100  # 10 ms of rounding slack between manifest times and files
U16Array = npt.NDArray[np.uint16]


@dataclass(frozen=True)
class Clip:
    """One manifest row: paths resolved against the manifest's folder; ``row`` kept as written."""

    id: str
    vocals: Path
    instrumental: Path
    offset: float
    duration: float | None
    row: dict[str, Any]


def read_manifest(path: str | os.PathLike[str]) -> list[Clip]:
    """Read a clip manifest (JSONL) with one clear error per problem (file:line: what)."""
    path = Path(path)
    if not path.is_file():
        raise SingsongError(f"manifest not found: {path}")
    clips: list[Clip] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SingsongError(f"{where}: not a JSON line ({e})") from None
        if not isinstance(row, dict):
            raise SingsongError(f"{where}: expected a JSON object per line")
        cid = row.get("id")
        if not isinstance(cid, str) or not cid:
            raise SingsongError(f"{where}: missing or empty string 'id'")
        if cid in seen:
            raise SingsongError(f"{where}: duplicate clip id {cid!r}")
        seen.add(cid)
        for key in SOURCES:
            if not isinstance(row.get(key), str) or not row[key]:
                raise SingsongError(f"{where}: clip {cid!r} needs a path string {key!r}")
        offset, duration = row.get("offset", 0.0), row.get("duration")
        if not _is_number(offset) or offset < 0:
            raise SingsongError(f"{where}: 'offset' must be seconds >= 0, got {offset!r}")
        if duration is not None and (not _is_number(duration) or duration <= 0):
            raise SingsongError(f"{where}: 'duration' must be seconds > 0, got {duration!r}")
        clips.append(
            Clip(
                id=cid,
                vocals=path.parent / row["vocals"],
                instrumental=path.parent / row["instrumental"],
                offset=float(offset),
                duration=None if duration is None else float(duration),
                row=row,
            )
        )
    if not clips:
        raise SingsongError(f"manifest {path} has no clips")
    return clips


def select_split(clips: Sequence[Clip], split: str, *, where: str = "manifest") -> list[Clip]:
    """The clips of one split (:func:`singsong.data.splits.track_split` of each row's
    ``source_kind`` and ``track``, as :mod:`singsong.data.pairs` writes them)."""
    if split not in SPLITS:
        raise SingsongError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    kept = []
    for clip in clips:
        kind, track = clip.row.get("source_kind"), clip.row.get("track")
        if not isinstance(kind, str) or not isinstance(track, str):
            raise SingsongError(
                f"{where}: clip {clip.id!r} has no 'source_kind' and 'track' to split by "
                "(manifests of `singsong data pairs` have them)"
            )
        if track_split(kind, track) == split:
            kept.append(clip)
    if not kept:
        raise SingsongError(f"{where}: no clip falls in the {split!r} split")
    return kept


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _streams(
    tokenizers: Mapping[str, Tokenizer], vocal_levels: int, noise: NoiseSpec | None
) -> dict[str, dict[str, Any]]:
    streams = {}
    sources = [*SOURCES, NOISY_SOURCE] if noise is not None else list(SOURCES)
    for source in sources:
        for role in ROLES:
            k = tokenizers[role].num_codebooks
            if source != "instrumental" and role == "acoustic":
                k = vocal_levels  # the vocals may keep only the coarse levels
            spec: dict[str, Any] = {"source": source, "tokenizer": role, "num_codebooks": k}
            if source == NOISY_SOURCE and noise is not None:
                spec |= {"noise_snr_db": list(noise.snr_db), "noise_seed": noise.seed}
            streams[f"{source}_{role}"] = spec
    return streams


@dataclass(frozen=True)
class NoiseSpec:
    """White noise on a second copy of the vocals (SingSong's fix for separation residue, see
    :mod:`singsong.models.noise`): per clip an SNR uniform in ``snr_db`` and a noise signal, both
    drawn from a generator seeded by ``seed`` and the clip id, so a re-run (or a resumed run)
    writes the same codes whatever the order of clips."""

    snr_db: tuple[float, float]
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = self.snr_db
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise SingsongError(
                f"noise SNR range must be two finite dB values, low <= high: {lo}, {hi}"
            )
        object.__setattr__(self, "snr_db", (float(lo), float(hi)))

    def apply(self, vocals: npt.NDArray[np.float32], clip_id: str) -> npt.NDArray[np.float32]:
        seed = ((self.seed & 0xFFFFFFFF) << 32) | zlib.crc32(clip_id.encode())  # 64 bits
        g = torch.Generator().manual_seed(seed)
        lo, hi = self.snr_db
        snr = lo + (hi - lo) * float(torch.rand((), generator=g))
        return add_noise(torch.from_numpy(vocals), snr, g).numpy()


class _AudioCache:
    """The last few files loaded at 16 kHz: consecutive clips usually cut the same song."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.items: OrderedDict[Path, npt.NDArray[np.float32]] = OrderedDict()

    def get(self, path: Path) -> npt.NDArray[np.float32]:
        if path not in self.items:
            self.items[path] = load_audio(path, sample_rate=SAMPLE_RATE)  # [N]
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        self.items.move_to_end(path)
        return self.items[path]


def _segment(wav: npt.NDArray[np.float32], clip: Clip, path: Path) -> npt.NDArray[np.float32]:
    """Cut [offset, offset + duration) out of wav [N] (16 kHz) -> [n]."""
    start = round(clip.offset * SAMPLE_RATE)
    if start >= len(wav):
        raise SingsongError(f"offset {clip.offset} s is past the end of {path}")
    if clip.duration is None:
        return wav[start:]
    length = round(clip.duration * SAMPLE_RATE)
    seg = wav[start : start + length]
    if len(seg) < length - _TOLERANCE:
        end = clip.offset + clip.duration
        raise SingsongError(f"clip ends at {end:.3f} s but {path} lasts {len(wav) / SAMPLE_RATE} s")
    return np.pad(seg, (0, length - len(seg)))


def _encode_clip(
    clip: Clip,
    tokenizers: Mapping[str, Tokenizer],
    vocal_levels: int,
    cache: _AudioCache,
    noise: NoiseSpec | None,
) -> dict[str, U16Array]:
    """-> {stream: uint16 [T, K]}; vocals and instrumental are cut to one length first."""
    vocals = _segment(cache.get(clip.vocals), clip, clip.vocals)  # [n]
    instrumental = _segment(cache.get(clip.instrumental), clip, clip.instrumental)  # [m]
    if abs(len(vocals) - len(instrumental)) > _TOLERANCE:
        raise SingsongError(
            f"vocals and instrumental differ in length ({len(vocals)} vs {len(instrumental)} "
            "samples at 16 kHz)"
        )
    n = min(len(vocals), len(instrumental))
    sources = [*SOURCES, NOISY_SOURCE] if noise is not None else list(SOURCES)
    rows = [vocals[:n], instrumental[:n]]
    if noise is not None:
        rows.append(noise.apply(vocals[:n], clip.id))
    pair = np.stack(rows)  # [S, n] at 16 kHz: vocals, instrumental (, noisy vocals)
    out = {}
    for role, tok in tokenizers.items():
        wav = torch.from_numpy(resample(pair, SAMPLE_RATE, tok.sample_rate))  # [2, N]
        with torch.inference_mode():
            codes = tok.encode(wav).cpu()  # [S, K, T]
        expected = (len(sources), tok.num_codebooks, tok.num_frames(wav.shape[-1]))
        if tuple(codes.shape) != expected:
            raise SingsongError(
                f"{role} tokenizer returned codes {tuple(codes.shape)}, not {expected}"
            )
        if codes.numel() and (codes.min() < 0 or codes.max() >= min(tok.codebook_size, MAX_CODES)):
            raise SingsongError(
                f"{role} codes out of range [0, {min(tok.codebook_size, MAX_CODES)}): "
                f"{int(codes.min())}..{int(codes.max())}"
            )
        for i, source in enumerate(sources):
            vocal = source != "instrumental"
            k = vocal_levels if vocal and role == "acoustic" else tok.num_codebooks
            out[f"{source}_{role}"] = codes[i, :k].T.numpy().astype(np.uint16)  # [T, K]
    return out


def _rows_hash(clips: Sequence[Clip], streams: dict[str, Any]) -> str:
    blob = json.dumps([[c.row for c in clips], streams], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SingsongError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise SingsongError(f"broken {path}: expected a JSON object")
    return data


def _write_shard(out: Path, name: str, arrays: dict[str, list[U16Array]], index: dict) -> None:
    """Write a whole shard in ``.partial/`` and rename it into place (replacing a stale one)."""
    partial = out / ".partial" / name
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for stream, parts in arrays.items():
        k = index["streams"][stream]["num_codebooks"]
        flat = np.concatenate(parts) if parts else np.zeros((0, k), np.uint16)  # [sum T, K]
        np.save(partial / f"{stream}.npy", flat, allow_pickle=False)
    with atomic_write(partial / INDEX_FILE) as f:
        json.dump(index, f)
    final, stale = out / name, out / ".partial" / f"{name}.stale"
    if final.exists():
        shutil.rmtree(stale, ignore_errors=True)
        final.rename(stale)
    partial.rename(final)
    shutil.rmtree(stale, ignore_errors=True)


def tokenize_manifest(
    manifest: str | os.PathLike[str],
    *,
    semantic: Tokenizer,
    acoustic: Tokenizer,
    out: str | os.PathLike[str],
    shard_size: int = 256,
    vocal_levels: int | None = None,
    split: str | None = None,
    noise: NoiseSpec | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode every clip of ``manifest`` with both tokenizers into shards under ``out``.

    ``split`` (``"train"`` or ``"valid"``) keeps only that split's clips (see
    :func:`select_split`); ``noise`` adds the ``vocals_noisy_*`` streams that stage 1 trains on.
    Returns a summary: clips, tokenized, failed ``[{"id", "error"}]``, shards written/skipped.
    A clip that fails is logged and counted; the run goes on.
    """
    from tqdm import tqdm

    clips = read_manifest(manifest)
    if split is not None:
        clips = select_split(clips, split, where=str(manifest))
    tokenizers = {"semantic": semantic, "acoustic": acoustic}
    for role, tok in tokenizers.items():
        if not 1 <= tok.codebook_size <= MAX_CODES:
            raise SingsongError(f"{role} codebook size {tok.codebook_size} does not fit uint16")
    levels = acoustic.num_codebooks if vocal_levels is None else vocal_levels
    if not 1 <= levels <= acoustic.num_codebooks:
        raise SingsongError(f"vocal levels must be 1 to {acoustic.num_codebooks}, got {levels}")
    if shard_size < 1:
        raise SingsongError(f"shard size must be at least 1, got {shard_size}")
    out = Path(out)
    infos = {role: tok.info.to_dict() for role, tok in tokenizers.items()}
    streams = _streams(tokenizers, levels, noise)
    settings: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    settings |= {"tokenizers": infos, "streams": streams}
    if (out / TOKENS_FILE).is_file():  # resuming: the folder must hold the same kind of tokens
        old = read_json(out / TOKENS_FILE)
        diff = _differences(old, settings)
        if diff:
            raise SingsongError(
                f"{out} holds tokens written with other settings ({'; '.join(diff)}); "
                "use a new output folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / TOKENS_FILE) as f:  # marks the folder as ours, still incomplete
        json.dump(settings | {"complete": False, "manifest": str(manifest)}, f, indent=1)

    plan = [clips[i : i + shard_size] for i in range(0, len(clips), shard_size)]
    names = [f"shard-{i:05d}" for i in range(len(plan))]
    hashes = [_rows_hash(part, streams) for part in plan]
    todo = [i for i in range(len(plan)) if not _finished(out / names[i], hashes[i], infos)]
    initial = len(clips) - sum(len(plan[i]) for i in todo)
    bar = tqdm(
        total=len(clips), initial=initial, unit="clip", desc="tokenize", disable=not progress
    )
    cache = _AudioCache()
    for i in todo:
        arrays: dict[str, list[U16Array]] = {s: [] for s in streams}
        rows, failed = [], []
        for clip in plan[i]:
            try:
                codes = _encode_clip(clip, tokenizers, levels, cache, noise)
            except Exception as e:  # a bad clip is reported, not fatal to the run
                log.warning("tokenize: clip %s failed: %s", clip.id, e)
                failed.append({"id": clip.id, "error": f"{type(e).__name__}: {e}"})
            else:
                for stream, arr in codes.items():
                    arrays[stream].append(arr)
                rows.append({"id": clip.id, "frames": {s: len(a) for s, a in codes.items()}})
            bar.update(1)
        index: dict[str, Any] = {"rows_sha256": hashes[i], "tokenizers": infos, "streams": streams}
        _write_shard(out, names[i], arrays, index | {"clips": rows, "failed": failed})
    bar.close()
    for stale in out.glob("shard-*"):  # from an earlier run with a longer manifest/other size
        if stale.name not in names:
            shutil.rmtree(stale)
    shutil.rmtree(out / ".partial", ignore_errors=True)

    by_id = {c.id: c.row for c in clips}
    kept: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for name in names:
        done = read_json(out / name / INDEX_FILE)
        kept += [
            {"id": r["id"], "shard": name, "provenance": by_id[r["id"]]} for r in done["clips"]
        ]
        failures += done["failed"]
    final = settings | {"complete": True, "manifest": str(manifest), "shard_size": shard_size}
    final |= {"split": split}
    final |= {"vocal_levels": levels, "shards": names, "clips": kept, "failed": failures}
    with atomic_write(out / TOKENS_FILE) as f:
        json.dump(final, f, indent=1)
    written, skipped = len(todo), len(plan) - len(todo)
    summary = {"out": str(out), "clips": len(clips), "tokenized": len(kept)}
    return summary | {"failed": failures, "shards_written": written, "shards_skipped": skipped}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'what: was -> now' for each format field, tokenizer or stream that differs."""
    diff = [
        f"{k}: {old.get(k)!r} -> {new[k]!r}"
        for k in ("format", "format_version")
        if old.get(k) != new[k]
    ]
    for group in ("tokenizers", "streams"):
        before = old.get(group)
        before = before if isinstance(before, dict) else {}
        for key, now in new[group].items():
            was = before.get(key, {})
            diff += [
                f"{key} {f}: {was.get(f)!r} -> {v!r}" for f, v in now.items() if was.get(f) != v
            ]
    return diff


def _finished(shard: Path, rows_sha256: str, infos: dict[str, Any]) -> bool:
    """A shard is done when it was written for these rows and tokenizers without failures."""
    if not (shard / INDEX_FILE).is_file():
        return False
    index = read_json(shard / INDEX_FILE)
    same = index.get("rows_sha256") == rows_sha256 and index.get("tokenizers") == infos
    return same and not index.get("failed")

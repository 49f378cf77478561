"""Audio I/O and level handling at the system's edges.

Inside singsong audio is float32 at :data:`singsong.SAMPLE_RATE` (16 kHz), mono ``[T]`` unless
stated; multichannel arrays are channels-first ``[C, T]``. Everything here converts to that
format on the way in, writes files atomically on the way out, and raises
:class:`~singsong.errors.AudioError` with a readable message on bad input.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyloudnorm
import soundfile as sf
import soxr

from singsong import SAMPLE_RATE
from singsong.errors import AudioError

__all__ = [
    "atomic_path", "atomic_write", "load_audio", "loudness_lufs", "loudness_normalize", "mix",
    "peak", "peak_normalize", "resample", "save_audio", "sliding_windows", "to_mono",
]  # fmt: skip

FloatArray = npt.NDArray[np.float32]
AnyFloatArray = npt.NDArray[np.floating[Any]]  # inputs may be float32 or float64
StrPath = str | os.PathLike[str]

SILENCE_LUFS = -70.0
"""Loudness reported for silence: the BS.1770 absolute gate."""
_WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}
_SF_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF"
_MAGIC = [  # (offset, bytes, what it is)
    (0, b"RIFF", "a WAV/RIFF file"), (0, b"fLaC", "a FLAC file"), (0, b"OggS", "an Ogg file"),
    (0, b"ID3", "an MP3 file"), (0, b"\xff\xfb", "an MP3 file"), (0, b"FORM", "an AIFF file"),
    (4, b"ftyp", "an MP4/M4A file"), (0, b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
    (0, b"%PDF", "a PDF document"), (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"\x89PNG", "a PNG image"), (0, b"\xff\xd8\xff", "a JPEG image"),
]  # fmt: skip


def load_audio(path: StrPath, *, sample_rate: int = SAMPLE_RATE, mono: bool = True) -> FloatArray:
    """Read an audio file as float32 at ``sample_rate``: ``[T]`` if ``mono`` else ``[C, T]``.

    WAV, FLAC, OGG/Vorbis, Opus and MP3 are read with libsndfile; other formats (M4A/AAC,
    WebM, ...) are decoded by ``ffmpeg`` when it is on PATH. Channels are averaged for mono.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"expected an audio file but {p} is a directory")
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(512)
    except OSError as e:
        raise AudioError(f"cannot read audio file {p}: {e.strerror or e}") from e
    if size == 0:
        raise AudioError(f"audio file {p} is empty (0 bytes)")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)  # [T, C]
    except (RuntimeError, sf.SoundFileError) as sf_err:
        data, sr = _ffmpeg_decode(p, head, size, str(sf_err))
    wav = np.ascontiguousarray(data.T)  # [C, T]
    if wav.shape[1] == 0:
        raise AudioError(f"audio file {p} contains no samples")
    if not np.isfinite(wav).all():
        raise AudioError(f"audio file {p} contains non-finite samples (NaN or inf)")
    if mono:
        wav = to_mono(wav)  # [T]
    return resample(wav, int(sr), sample_rate)


def _ffmpeg_decode(p: Path, head: bytes, size: int, sf_err: str) -> tuple[FloatArray, int]:
    """Decode the first audio stream of ``p`` via ffmpeg to float32 WAV on stdout -> [T, C]."""
    ffmpeg = shutil.which("ffmpeg")
    detail = sf_err
    if ffmpeg is not None:
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", os.path.abspath(p), "-map", "0:a:0"]
        cmd += ["-vn", "-c:a", "pcm_f32le", "-f", "wav", "-"]
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode == 0 and len(proc.stdout) > 0:
            try:
                data, sr = sf.read(BytesIO(proc.stdout), dtype="float32", always_2d=True)
                return data, int(sr)
            except (RuntimeError, sf.SoundFileError) as e:
                detail = str(e)
        else:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"ffmpeg exited with status {proc.returncode}"
        accepted = f"{_SF_FORMATS}, and anything else ffmpeg can decode (M4A/AAC, WebM, ...)"
    else:
        accepted = f"{_SF_FORMATS} (install ffmpeg to also read M4A/AAC, WebM and more)"
    raise AudioError(
        f"cannot decode {p} as audio: it looks like {_describe(head)} ({size} bytes); "
        f"decoder said: {detail}. Accepted formats: {accepted}."
    )


def _describe(head: bytes) -> str:
    """Guess what a file is from its first bytes, for error messages."""
    for offset, magic, what in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    return "a text file" if all(c.isprintable() or c.isspace() for c in text) else "binary data"


def resample(wav: AnyFloatArray, orig_sr: int, target_sr: int) -> FloatArray:
    """Resample ``[T]`` or ``[C, T]`` audio from ``orig_sr`` to ``target_sr`` (soxr, HQ)."""
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim not in (1, 2):
        raise AudioError(f"expected audio of shape [T] or [C, T], got shape {wav.shape}")
    if orig_sr == target_sr:
        return wav
    out = soxr.resample(np.ascontiguousarray(wav.T), orig_sr, target_sr, quality="HQ")  # [T', C]
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def to_mono(wav: AnyFloatArray) -> FloatArray:
    """Average channels: ``[C, T]`` -> ``[T]``; ``[T]`` is returned as is."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav
    if wav.ndim == 2:
        return wav.mean(axis=0, dtype=np.float32)
    raise AudioError(f"expected audio of shape [T] or [C, T], got shape {wav.shape}")


def _temp_sibling(path: Path) -> Path:
    """An unused temp path next to ``path`` with the same suffix (parent dirs created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: StrPath) -> Iterator[Path]:
    """Yield a temp path next to ``path`` (same suffix); rename it onto ``path`` on success.

    On any exception the temp file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(
    path: StrPath, mode: str = "w", *, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temp file next to ``path`` for writing; rename it onto ``path`` on success.

    ``mode`` is ``"w"``/``"wt"`` (text, UTF-8 by default) or ``"wb"``. On any exception the temp
    file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write supports modes 'w', 'wt' and 'wb', not {mode!r}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f


def save_audio(
    path: StrPath,
    wav: AnyFloatArray,
    sample_rate: int = SAMPLE_RATE,
    *,
    subtype: str | None = None,
    clip: bool = False,
) -> Path:
    """Atomically write ``[T]`` or ``[C, T]`` audio to a .wav, .flac or .ogg file.

    Defaults: PCM_16 for WAV, PCM_24 for FLAC, Vorbis for OGG. Non-finite samples are refused;
    samples beyond [-1, 1] raise unless ``clip=True``. Returns the written path.
    """
    p = Path(path)
    fmt = _WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(f"cannot save audio to {p}: use a .wav, .flac or .ogg file name")
    subtype = subtype or fmt[1]
    if not sf.check_format(fmt[0], subtype):
        raise AudioError(f"subtype {subtype!r} is not valid for {fmt[0]} files ({p})")
    if sample_rate <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate}")
    arr = np.asarray(wav, dtype=np.float32)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0 or (arr.ndim == 2 and arr.shape[0] > 64):
        raise AudioError(
            f"expected non-empty audio shaped [T] or [C, T] (C <= 64), got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise AudioError(f"refusing to save {p}: audio contains non-finite samples (NaN or inf)")
    if peak(arr) > 1.0:
        if not clip:
            raise AudioError(
                f"refusing to save {p}: peak {peak(arr):.3f} exceeds 1.0 and would clip "
                "(normalize first, or pass clip=True)"
            )
        arr = np.clip(arr, -1.0, 1.0)
    with atomic_path(p) as tmp:
        sf.write(str(tmp), arr.T, sample_rate, format=fmt[0], subtype=subtype)  # [T, C]
    return p


def peak(wav: AnyFloatArray) -> float:
    """Largest absolute sample value (0.0 for empty audio)."""
    return float(np.max(np.abs(wav))) if np.size(wav) else 0.0


def peak_normalize(wav: AnyFloatArray, target: float = 0.95) -> FloatArray:
    """Scale so the peak is ``target``; silence stays silence."""
    wav = np.asarray(wav, dtype=np.float32)
    pk = peak(wav)
    return wav.copy() if pk == 0.0 else (wav * np.float32(target / pk)).astype(np.float32)


def loudness_lufs(wav: AnyFloatArray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770) of ``[T]`` or ``[C, T]`` audio in LUFS.

    Clips shorter than the 400 ms gating block are repeated to fill one block. Silence (and
    anything below the -70 LUFS absolute gate) reports :data:`SILENCE_LUFS`.
    """
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] > 5:  # pyloudnorm weights at most 5 channels
        x = x.mean(axis=0)
    x = x.T  # [T] or [T, C]
    if x.shape[0] == 0 or not np.any(x):
        return SILENCE_LUFS
    block = int(np.ceil(0.4 * sample_rate)) + 1
    if x.shape[0] < block:
        x = np.concatenate([x] * (block // x.shape[0] + 1), axis=0)[:block]
    value = float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))
    return max(value, SILENCE_LUFS) if np.isfinite(value) else SILENCE_LUFS


def loudness_normalize(
    wav: AnyFloatArray, sample_rate: int, target_lufs: float = -16.0, *, max_peak: float = 0.99
) -> FloatArray:
    """Scale to ``target_lufs``, reducing the gain instead if the peak would exceed ``max_peak``.

    Silence (below the -70 LUFS gate) is returned unchanged rather than boosted.
    """
    wav = np.asarray(wav, dtype=np.float32)
    current = loudness_lufs(wav, sample_rate)
    pk = peak(wav)
    if current <= SILENCE_LUFS or pk == 0.0:
        return wav.copy()
    gain = min(10.0 ** ((target_lufs - current) / 20.0), max_peak / pk)
    return (wav * np.float32(gain)).astype(np.float32)


def mix(
    tracks: Sequence[AnyFloatArray],
    gains_db: Sequence[float] | None = None,
    *,
    max_peak: float = 0.99,
) -> tuple[FloatArray, float]:
    """Sum equal-shape tracks with gains; scale down uniformly if the peak would pass ``max_peak``.

    Returns ``(mixture, scale)`` with ``mixture == scale * sum(10**(g/20) * track)``, so a caller
    can apply ``scale`` (and the gains) to the stems and keep them summing to the mixture.
    """
    if len(tracks) == 0:
        raise AudioError("mix needs at least one track")
    gains = [0.0] * len(tracks) if gains_db is None else list(gains_db)
    if len(gains) != len(tracks):
        raise AudioError(f"mix got {len(tracks)} tracks but {len(gains)} gains")
    shapes = [np.shape(t) for t in tracks]
    if len(set(shapes)) != 1:
        raise AudioError(f"mix needs tracks of equal length/shape, got shapes {shapes}")
    total = np.zeros(shapes[0], dtype=np.float64)
    for track, g in zip(tracks, gains, strict=True):
        total += np.asarray(track, dtype=np.float64) * 10.0 ** (g / 20.0)
    if not np.isfinite(total).all():
        raise AudioError("mix input contains non-finite samples (NaN or inf)")
    pk = float(np.max(np.abs(total))) if total.size else 0.0
    scale = max_peak / pk if pk > max_peak else 1.0
    return (total * scale).astype(np.float32), scale


def sliding_windows(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """Windows along the last axis: [..., T] -> [..., n, size], n >= 1 (input shorter than one
    window is zero-padded to one); a copy, gathered by index."""
    if x.shape[-1] < size:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - x.shape[-1])])
    n = 1 + (x.shape[-1] - size) // hop
    idx = np.arange(size)[None] + hop * np.arange(n)[:, None]  # [n, size]
    return x[..., idx]

"""Code files: ``codes.npy`` (uint16 ``[K, T]``, no pickle) + ``codes.json`` sidecar with the
tokenizer's info (name, version, rates) and the original length in samples. Loading refuses a
file written by another tokenizer or version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from singsong.audio import atomic_path, atomic_write
from singsong.errors import SingsongError
from singsong.tokenizers.base import TokenizerInfo


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_codes(path: Path, codes: np.ndarray, *, info: TokenizerInfo, num_samples: int) -> Path:
    """codes [K, T] with values < 65536 -> ``path`` (.npy) and its JSON sidecar (atomically)."""
    if path.suffix != ".npy":
        raise SingsongError(f"code files are .npy, got {path}")
    if codes.ndim != 2 or codes.min(initial=0) < 0 or codes.max(initial=0) >= 2**16:
        raise SingsongError(f"expected codes [K, T] in [0, 65536), got shape {codes.shape}")
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, codes.astype(np.uint16), allow_pickle=False)
    meta = {"tokenizer": info.to_dict(), "num_samples": num_samples, "shape": list(codes.shape)}
    with atomic_write(sidecar(path)) as f:
        json.dump(meta, f, indent=1)
    return path


def load_codes(path: Path, *, expect: TokenizerInfo) -> tuple[np.ndarray, dict[str, Any]]:
    """-> (codes [K, T] int64, sidecar dict); refuses another tokenizer's or version's codes."""
    side = sidecar(path)
    if not path.is_file() or not side.is_file():
        raise SingsongError(f"need {path} and its sidecar {side}")
    try:
        meta = json.loads(side.read_text())
        codes = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise SingsongError(f"cannot read code file {path}: {e}") from None
    got = meta.get("tokenizer", {})
    for key in ("name", "version"):
        if got.get(key) != getattr(expect, key):
            raise SingsongError(
                f"{path} holds codes of {got.get('name')} {got.get('version')}, "
                f"not {expect.name} {expect.version}: re-encode the audio with this codec"
            )
    if codes.ndim != 2 or codes.dtype != np.uint16:
        raise SingsongError(
            f"{path}: expected uint16 codes [K, T], got {codes.dtype} {codes.shape}"
        )
    return codes.astype(np.int64), meta

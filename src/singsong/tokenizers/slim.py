"""Slim copies of token folders: only the streams (and acoustic levels) a model reads.

A stage model trains on a few of a token folder's streams (its ``token_streams``; training
opens no others), so a copy with just those travels where the whole folder would not: the
planner reads the two semantic streams, 12 MB of the default recipe's 185 MB of tokens, and the
renderer the instrumental's semantic codes and 4 coarse acoustic levels of 12. The copy is a
token folder like any other (same tokenizers, same clips and frames), so ``singsong train``
reads it as it is; it records what it was cut from (``slim_of``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from singsong.audio import atomic_write
from singsong.errors import SingsongError
from singsong.tokenizers.shards import INDEX_FILE, TOKENS_FILE
from singsong.tokenizers.token_dataset import read_token_meta

__all__ = ["slim_copy"]


def slim_copy(
    src: Path,
    dst: Path,
    *,
    streams: Collection[str],
    levels: Mapping[str, int] | None = None,
) -> Path:
    """Copy token folder ``src`` to ``dst`` keeping ``streams`` only, and of each stream in
    ``levels`` its first that many codebooks (say ``{"instrumental_acoustic": 4}``). Returns
    ``dst``, which must not exist yet."""
    meta = read_token_meta(src)
    held = meta["streams"]
    levels = dict(levels or {})
    if missing := sorted(set(streams) - set(held)):
        raise SingsongError(f"{src} holds no stream {', '.join(missing)} (it holds {sorted(held)})")
    if stray := sorted(set(levels) - set(streams)):
        raise SingsongError(f"levels given for streams that are not kept: {', '.join(stray)}")
    for stream, k in levels.items():
        if not 1 <= k <= held[stream]["num_codebooks"]:
            raise SingsongError(
                f"{stream} has {held[stream]['num_codebooks']} codebooks; cannot keep {k}"
            )
    if dst.exists():
        raise SingsongError(f"{dst} exists; give a new folder")
    kept = {
        s: spec | ({"num_codebooks": levels[s]} if s in levels else {})
        for s, spec in held.items()
        if s in streams
    }
    partial = dst.with_name(dst.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name in meta["shards"]:
        index = json.loads((src / name / INDEX_FILE).read_text())
        index["streams"] = kept
        for clip in index["clips"]:
            clip["frames"] = {s: n for s, n in clip["frames"].items() if s in kept}
        (partial / name).mkdir(parents=True)
        for stream, spec in kept.items():
            codes = np.load(src / name / f"{stream}.npy", mmap_mode="r")  # [sum T, K]
            np.save(partial / name / f"{stream}.npy", np.ascontiguousarray(
                codes[:, : spec["num_codebooks"]]), allow_pickle=False)  # fmt: skip
        with atomic_write(partial / name / INDEX_FILE) as f:
            json.dump(index, f)
    with atomic_write(partial / TOKENS_FILE) as f:
        json.dump(meta | {"streams": kept, "slim_of": str(src)}, f, indent=1)
    partial.rename(dst)
    return dst

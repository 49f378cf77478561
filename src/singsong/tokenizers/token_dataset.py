"""Reading token folders for training: random access and aligned streaming windows.

The writer is :mod:`singsong.tokenizers.shards`; its docstring describes the layout.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from singsong.errors import SingsongError
from singsong.tokenizers.base import TokenizerInfo
from singsong.tokenizers.shards import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    ROLES,
    TOKENS_FILE,
    read_json,
)

__all__ = ["TokenDataset", "TokenWindows", "read_token_meta"]


class TokenDataset:
    """Random access to tokenized clips: ``ds[i]`` -> ``{stream: int64 [K, T]}``.

    ``folders``: one token folder or several (e.g. a songbook and a MIR-1K folder), read as one
    dataset: the streams all of them hold are served (each written with the same settings in
    every folder), and clip ids must not repeat across them.
    ``expect`` maps tokenizer roles (``"semantic"``, ``"acoustic"``) to the :class:`TokenizerInfo`
    the caller's models were built for; every folder must record exactly that info (name, version
    and layout) or loading is refused. Only streams of the expected roles are served, so a stage
    that needs acoustic codes alone need not name the semantic tokenizer. ``streams`` narrows
    them to the ones a model reads (its ``token_streams``): the others are never opened, so a
    copy of the folders may leave their files out (say, to ship only the semantic streams to a
    GPU machine).
    """

    def __init__(
        self,
        folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        expect: Mapping[str, TokenizerInfo],
        streams: Collection[str] | None = None,
    ) -> None:
        if isinstance(folders, str | os.PathLike):
            folders = [folders]
        self.folders = [Path(f) for f in folders]
        if not self.folders:
            raise SingsongError("no token folder given")
        if not expect:
            raise SingsongError(f"name the expected tokenizer of at least one of {list(ROLES)}")
        self.infos = {role: info for role, info in expect.items()}
        self.streams: dict[str, dict[str, Any]] = {}
        self.shards: list[Path] = []
        self.ids: list[str] = []
        # per clip: (shard number, {stream: (first frame, frames)})
        self._where: list[tuple[int, dict[str, tuple[int, int]]]] = []
        metas = [read_token_meta(folder, expect) for folder in self.folders]
        # served: the streams of the expected roles that every folder holds, written alike
        # (a folder without noisy vocals still serves stage 2, which reads no vocals)
        found = [{s: v for s, v in m["streams"].items() if v["tokenizer"] in expect} for m in metas]
        common = set(found[0]).intersection(*found[1:])
        for folder, held in zip(self.folders[1:], found[1:], strict=True):
            if differ := sorted(s for s in common if held[s] != found[0][s]):
                raise SingsongError(
                    f"{folder} and {self.folders[0]} hold the streams {differ} written with "
                    "other settings; tokenize them alike"
                )
        if streams is not None:
            if missing := sorted(set(streams) - common):
                raise SingsongError(
                    f"the token folders {self.folders} hold no stream {', '.join(missing)} of the "
                    f"expected tokenizers (they hold {', '.join(sorted(common)) or 'none'})"
                )
            common = set(streams)
        self.streams = {s: v for s, v in found[0].items() if s in common}
        for folder, meta in zip(self.folders, metas, strict=True):
            for name in meta["shards"]:
                index = read_json(folder / name / INDEX_FILE)
                if index.get("tokenizers") != meta["tokenizers"]:
                    raise SingsongError(f"{folder / name} was written by other tokenizers")
                self.shards.append(folder / name)
                start = dict.fromkeys(self.streams, 0)
                for row in index["clips"]:
                    spans = {}
                    for s in self.streams:
                        spans[s] = (start[s], int(row["frames"][s]))
                        start[s] += int(row["frames"][s])
                    self.ids.append(row["id"])
                    self._where.append((len(self.shards) - 1, spans))
        self._position = {cid: i for i, cid in enumerate(self.ids)}
        if len(self._position) != len(self.ids):
            raise SingsongError(f"clip ids repeat across the token folders {self.folders}")
        self._arrays: dict[tuple[int, str], npt.NDArray[np.uint16]] = {}

    @property
    def folder(self) -> Path:
        """The first folder (the only one, usually)."""
        return self.folders[0]

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen their own memmaps
        return self.__dict__ | {"_arrays": {}}

    def _array(self, shard: int, stream: str) -> npt.NDArray[np.uint16]:
        key = (shard, stream)
        if key not in self._arrays:
            path = self.shards[shard] / f"{stream}.npy"
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)  # [sum T, K]
            except (OSError, ValueError) as e:
                raise SingsongError(f"cannot read token shard {path}: {e}") from None
            k = self.streams[stream]["num_codebooks"]
            if arr.dtype != np.uint16 or arr.ndim != 2 or arr.shape[1] != k:
                raise SingsongError(f"{path} is {arr.dtype} {arr.shape}, expected uint16 [T, {k}]")
            self._arrays[key] = arr
        return self._arrays[key]

    def read(self, i: int, stream: str, start: int = 0, frames: int | None = None) -> torch.Tensor:
        """Frames ``[start, start + frames)`` of clip ``i``'s ``stream`` -> int64 [K, frames]."""
        shard, spans = self._where[i]
        first, length = spans[stream]
        frames = length - start if frames is None else frames
        if start < 0 or frames < 0 or start + frames > length:
            raise IndexError(f"frames [{start}, {start + frames}) outside clip of {length} frames")
        block = self._array(shard, stream)[first + start : first + start + frames]  # [T, K]
        return torch.from_numpy(block.astype(np.int64).T.copy())  # [K, T]

    def frames(self, i: int) -> dict[str, int]:
        """Frames per stream of clip ``i``."""
        return {s: length for s, (_, length) in self._where[i][1].items()}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {s: self.read(i, s) for s in self.streams}

    def clip(self, clip_id: str) -> dict[str, torch.Tensor]:
        if clip_id not in self._position:
            raise KeyError(f"no clip {clip_id!r} in {', '.join(map(str, self.folders))}")
        return self[self._position[clip_id]]

    def windows(
        self,
        *,
        seconds: float,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> TokenWindows:
        return TokenWindows(
            self, seconds=seconds, seed=seed, rank=rank, world_size=world_size, shuffle=shuffle
        )


def read_token_meta(
    folder: Path, expect: Mapping[str, TokenizerInfo] | None = None
) -> dict[str, Any]:
    r"""A finished token folder's tokens.json, checked against the ``expect``\ed tokenizers."""
    path = folder / TOKENS_FILE
    if not path.is_file():
        raise SingsongError(f"not a token folder (no {TOKENS_FILE}): {folder}")
    meta = read_json(path)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise SingsongError(
            f"{path} is not a {FORMAT} v{FORMAT_VERSION} file "
            f"(format {meta.get('format')!r} v{meta.get('format_version')!r})"
        )
    if not meta.get("complete"):
        raise SingsongError(f"tokenizing into {folder} did not finish; re-run it to resume")
    for role, info in (expect or {}).items():
        found = meta["tokenizers"].get(role)
        if found is None:
            raise SingsongError(f"{folder} has no {role!r} tokens (roles: {list(ROLES)})")
        if found != info.to_dict():
            diff = {k: (v, found.get(k)) for k, v in info.to_dict().items() if found.get(k) != v}
            raise SingsongError(
                f"{folder} holds {role} tokens from another tokenizer; refusing to load "
                f"them. Differences (expected, found): {diff}"
            )
    return meta


class TokenWindows(torch.utils.data.IterableDataset):
    """Fixed-length, frame-aligned windows of every stream, shuffled by ``(seed, epoch)``.

    A window starts and ends on a "tick", the shortest time that is a whole number of frames of
    every tokenizer (1/25 s for 25 Hz semantic + 50 Hz acoustic codes), so the semantic window of
    T frames and the acoustic one of 2T cover exactly the same audio, and the vocal and
    instrumental windows are cut at the same frames. A clip yields ``floor(len / window)``
    non-overlapping windows from a random phase; clips shorter than a window are skipped.

    With ``world_size > 1`` the clips (not windows) are split across ranks: every epoch a new
    permutation shared by all ranks is cut into ``world_size`` equal parts (the remainder is
    dropped), so ranks see disjoint clips; when clip lengths differ their window counts still
    do, so a DDP loop should run a fixed number of steps. DataLoader workers split a rank's part.
    """

    def __init__(
        self,
        dataset: TokenDataset,
        *,
        seconds: float,
        seed: int,
        rank: int,
        world_size: int,
        shuffle: bool,
    ) -> None:
        if not 0 <= rank < world_size:
            raise SingsongError(f"rank {rank} is not in [0, world_size={world_size})")
        self.dataset, self.seed, self.shuffle = dataset, seed, shuffle
        self.rank, self.world_size = rank, world_size
        periods = {role: Fraction(i.hop_length, i.sample_rate) for role, i in dataset.infos.items()}
        tick = Fraction(
            math.lcm(*(p.numerator for p in periods.values())),
            math.gcd(*(p.denominator for p in periods.values())),
        )
        window = Fraction(seconds).limit_denominator(1_000_000)
        if window <= 0 or window % tick:
            raise SingsongError(
                f"a window of {seconds} s is not a whole number of frames of every tokenizer; "
                f"use a multiple of {float(tick)} s"
            )
        self.tick = tick
        self.window_ticks = int(window / tick)
        self.frames_per_tick = {
            s: int(tick / periods[spec["tokenizer"]]) for s, spec in dataset.streams.items()
        }
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call once per epoch (as with DistributedSampler) for a new shuffle."""
        self.epoch = epoch

    def _clips(self) -> npt.NDArray[np.int64]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.dataset)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.world_size > 1:
            order = order[: n - n % self.world_size][self.rank :: self.world_size]
        worker = torch.utils.data.get_worker_info()
        return order if worker is None else order[worker.id :: worker.num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        wid = 0 if worker is None else worker.id
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, wid, 1])
        starts: list[tuple[int, int]] = []  # (clip, first tick)
        for c in self._clips():
            frames = self.dataset.frames(int(c))
            ticks = min(frames[s] // f for s, f in self.frames_per_tick.items())
            count = ticks // self.window_ticks
            if count == 0:
                continue
            slack = ticks - count * self.window_ticks
            phase = int(rng.integers(0, slack + 1)) if self.shuffle else 0
            starts += [(int(c), phase + j * self.window_ticks) for j in range(count)]
        if self.shuffle:
            rng.shuffle(starts)
        for c, t in starts:
            item: dict[str, Any] = {"id": self.dataset.ids[c], "start": float(t * self.tick)}
            for s, f in self.frames_per_tick.items():
                item[s] = self.dataset.read(c, s, t * f, self.window_ticks * f)  # [K, T_s]
            yield item

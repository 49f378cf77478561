"""Code layouts: how grids of semantic and acoustic codes become the stages' token sequences.

Notation: ``B`` batch; ``T`` semantic frames (25 Hz, hop 640); ``U = 2T`` acoustic frames (50 Hz,
hop 320); ``Q`` coarse levels (acoustic levels 1-4); ``F`` fine levels (5-12). ``s[t]`` is a
semantic code, ``a[u, q]`` the level-``q`` acoustic code of frame ``u``.

Codes stay *local* everywhere in this module: a level's code is in ``[0, size)`` of that level.
A flat sequence is :class:`Flat` = (codes ``[B, L]``, levels ``[L]``), where ``levels[i]``
indexes a :class:`LevelVocab`; the model turns it into embedding ids as
``vocab.offsets[levels] + codes`` (per-level offsets, so one table serves every level) and
scores each position only against its own level's block of that table, so a sampled code can
never fall outside its level's vocabulary. Keeping codes local also lets an unknown code ``-1``
(prompts, padding) pass through every layout unchanged.

Layouts (``|`` separates positions; all are exact inverses of their ``split_*``):

- stage-1 target (AudioLM stage 1: all semantic codes, then the coarse codes frame by frame,
  level by level), ``L = T + U * Q`` (= 9T, 2250 for 10 s)::

      s[0] | ... | s[T-1] | a[0,1] | ... | a[0,Q] | a[1,1] | ... | a[U-1,Q]

- stage-2 target (AudioLM fine stage), per chunk of ``C`` frames, ``L = C * F``::

      a[0,Q+1] | ... | a[0,Q+F] | a[1,Q+1] | ... | a[C-1,Q+F]

- stage-2 source: the chunk's coarse codes frame by frame, level by level (``C * Q``).
- vocal featurizations (stage-1 source), chosen by name:
  ``S``: ``s[0] | ... | s[T-1]`` (T);
  ``A``: the coarse codes frame by frame, level by level (``U * Q`` = 8T);
  ``SA``: aligned per semantic frame, ``s[t] | a[2t,1..Q] | a[2t+1,1..Q]`` (``T * (1 + 2Q)`` =
  9T), so each run of ``1 + 2Q`` tokens is one 40 ms frame, semantic code first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from singsong.errors import SingsongError

__all__ = [
    "FEATURIZATIONS",
    "Codes",
    "Flat",
    "LevelVocab",
    "featurize",
    "fine_target",
    "fine_vocab",
    "frame_major",
    "input_vocab",
    "source_times",
    "split_fine",
    "split_frame_major",
    "split_stage1",
    "stage1_target",
    "stage1_times",
    "stage1_vocab",
]

FEATURIZATIONS = ("S", "A", "SA")
SEMANTIC_PER_ACOUSTIC = 2  # 50 Hz acoustic frames per 25 Hz semantic frame


@dataclass(frozen=True)
class LevelVocab:
    """Levels sharing one embedding table: level ``i`` owns ids ``[offsets[i], +sizes[i])``."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def offsets(self) -> tuple[int, ...]:
        out, total = [], 0
        for size in self.sizes:
            out.append(total)
            total += size
        return tuple(out)

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def ids(self, codes: Tensor, levels: Tensor) -> Tensor:
        """Local ``codes`` [B, L] at ``levels`` [L] -> table ids [B, L]."""
        offsets = torch.tensor(self.offsets, device=codes.device)
        return codes + offsets[levels]


@dataclass(frozen=True, eq=False)  # eq=False: == on tensors is elementwise, not a bool
class Flat:
    """A flat token sequence: local ``codes`` [B, L] (-1 = unknown) and their ``levels`` [L]."""

    codes: Tensor
    levels: Tensor


@dataclass(frozen=True, eq=False)
class Codes:
    """One source's codes for a batch: ``semantic`` int64 [B, T] (25 Hz) and/or ``acoustic``
    int64 [B, K, U] (50 Hz, levels 1..K, ``U = 2T`` when both are given)."""

    semantic: Tensor | None = None
    acoustic: Tensor | None = None

    @classmethod
    def from_streams(
        cls, batch: Mapping[str, Tensor], source: str, *, levels: int | None = None
    ) -> Codes:
        """Read ``{source}_semantic`` [B, 1, T] and ``{source}_acoustic`` [B, K, U] (the
        :class:`~singsong.tokenizers.token_dataset.TokenWindows` streams, collated); keep the
        first ``levels`` acoustic levels."""
        sem, ac = batch.get(f"{source}_semantic"), batch.get(f"{source}_acoustic")
        if sem is not None:
            if sem.dim() != 3 or sem.shape[1] != 1:
                raise SingsongError(f"{source}_semantic: expected [B, 1, T], got {_shape(sem)}")
            sem = sem[:, 0]
        if ac is not None and levels is not None:
            if ac.dim() != 3 or ac.shape[1] < levels:
                raise SingsongError(
                    f"{source}_acoustic: expected [B, >={levels}, U], got {_shape(ac)}"
                )
            ac = ac[:, :levels]
        return cls(semantic=sem, acoustic=ac)

    @property
    def rows(self) -> int:
        """Batch size ``B``."""
        grid = self.semantic if self.semantic is not None else self.acoustic
        if grid is None:
            raise SingsongError("no codes given (neither semantic nor acoustic)")
        return int(grid.shape[0])

    @property
    def frames(self) -> int:
        """Semantic frames ``T`` (``U / 2`` when only acoustic codes are given)."""
        if self.semantic is not None:
            return int(self.semantic.shape[-1])
        if self.acoustic is not None:
            return int(self.acoustic.shape[-1]) // SEMANTIC_PER_ACOUSTIC
        raise SingsongError("no codes given (neither semantic nor acoustic)")


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_grid(
    x: Tensor | None,
    name: str,
    *,
    dims: int,
    size: int,
    levels: int | None = None,
    allow_unknown: bool = False,
) -> Tensor:
    """Validate an int code grid: ``dims`` dimensions, codes in ``[0, size)`` (-1 too with
    ``allow_unknown``), ``levels`` rows when given -> int64."""
    if x is None:
        raise SingsongError(f"{name} codes are required here")
    if x.dim() != dims:
        layout = "[B, T]" if dims == 2 else "[B, K, T]"
        raise SingsongError(f"{name} codes: expected {layout}, got shape {_shape(x)}")
    if x.dtype.is_floating_point or x.dtype == torch.bool:
        raise SingsongError(f"{name} codes must be integers, got {x.dtype}")
    if levels is not None and x.shape[1] != levels:
        raise SingsongError(f"{name} codes: expected {levels} levels, got {x.shape[1]}")
    if x.shape[-1] == 0:
        raise SingsongError(f"{name} codes are empty (0 frames)")
    low = -1 if allow_unknown else 0
    if x.numel() and (int(x.min()) < low or int(x.max()) >= size):
        raise SingsongError(f"{name} codes out of range [0, {size})")
    return x.long()


# --- acoustic grids <-> frame-major sequences --------------------------------------------------


def frame_major(acoustic: Tensor) -> Tensor:
    """[B, K, U] -> [B, U * K]: frame by frame, level by level."""
    b, k, u = acoustic.shape
    return acoustic.transpose(1, 2).reshape(b, u * k)


def split_frame_major(flat: Tensor, levels: int) -> Tensor:
    """Inverse of :func:`frame_major`: [B, U * K] -> [B, K, U]."""
    b, n = flat.shape
    if n % levels:
        raise SingsongError(f"a sequence of {n} codes is not whole frames of {levels} levels")
    return flat.reshape(b, n // levels, levels).transpose(1, 2).contiguous()


def _level_pattern(frames: int, levels: int, first: int, device: torch.device) -> Tensor:
    return torch.arange(first, first + levels, device=device).repeat(frames)  # [frames * levels]


# --- stage 1 -----------------------------------------------------------------------------------


def stage1_vocab(semantic_size: int, acoustic_size: int, coarse_levels: int) -> LevelVocab:
    names = ("semantic", *(f"acoustic{q + 1}" for q in range(coarse_levels)))
    return LevelVocab(names, (semantic_size, *(acoustic_size,) * coarse_levels))


def stage1_target(semantic: Tensor, coarse: Tensor) -> Flat:
    """semantic [B, T], coarse [B, Q, 2T] -> the stage-1 target (levels 0 = semantic, q)."""
    b, t = semantic.shape
    q, u = coarse.shape[1], coarse.shape[2]
    if coarse.shape[0] != b or u != SEMANTIC_PER_ACOUSTIC * t:
        raise SingsongError(
            f"instrumental semantic {_shape(semantic)} and coarse {_shape(coarse)} codes are not "
            f"aligned: expected [B, {q}, {SEMANTIC_PER_ACOUSTIC * t}] acoustic codes"
        )
    codes = torch.cat([semantic, frame_major(coarse)], dim=1)  # [B, T + U * Q]
    levels = torch.cat(
        [torch.zeros(t, dtype=torch.long, device=codes.device),
         _level_pattern(u, q, 1, codes.device)]
    )  # fmt: skip
    return Flat(codes, levels)


def split_stage1(codes: Tensor, *, frames: int, coarse_levels: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`stage1_target`: [B, T + 2T * Q] -> (semantic [B, T], coarse [B, Q, 2T])."""
    expect = frames * (1 + SEMANTIC_PER_ACOUSTIC * coarse_levels)
    if codes.dim() != 2 or codes.shape[1] != expect:
        raise SingsongError(f"expected stage-1 codes [B, {expect}], got {_shape(codes)}")
    if coarse_levels == 0:  # a semantic-only stage 1 (a planner): no coarse codes
        return codes, codes.new_zeros(codes.shape[0], 0, SEMANTIC_PER_ACOUSTIC * frames)
    return codes[:, :frames], split_frame_major(codes[:, frames:], coarse_levels)


def _acoustic_times(frames: int, levels: int, device: torch.device | None) -> Tensor:
    """Frame-major acoustic positions (``frames`` 50 Hz frames x ``levels``) -> their time in
    semantic frames (a 50 Hz frame ``u`` starts at ``u / 2``)."""
    return torch.arange(frames, device=device).repeat_interleave(levels) / SEMANTIC_PER_ACOUSTIC


def stage1_times(frames: int, coarse_levels: int, device: torch.device | None = None) -> Tensor:
    """When each position of the stage-1 target sounds, in semantic frames (float [9T]): the
    semantic code ``s[t]`` at ``t``, the coarse codes of 50 Hz frame ``u`` at ``u / 2``."""
    return torch.cat(
        [torch.arange(frames, device=device, dtype=torch.float32),
         _acoustic_times(SEMANTIC_PER_ACOUSTIC * frames, coarse_levels, device)]
    )  # fmt: skip


def source_times(featurization: str, frames: int, *, coarse_levels: int,
                 device: torch.device | None = None) -> Tensor:  # fmt: skip
    """When each position of a vocal featurization sounds, in semantic frames (float [S])."""
    _check_featurization(featurization)
    u = SEMANTIC_PER_ACOUSTIC * frames
    if featurization == "S":
        return torch.arange(frames, device=device, dtype=torch.float32)
    if featurization == "A":
        return _acoustic_times(u, coarse_levels, device)
    # SA runs: s[t] | a[2t, 1..Q] | a[2t + 1, 1..Q]
    run = torch.cat([torch.zeros(1, device=device), _acoustic_times(2, coarse_levels, device)])
    return (torch.arange(frames, device=device)[:, None] + run[None]).flatten()


# --- stage 2 -----------------------------------------------------------------------------------


def fine_vocab(acoustic_size: int, coarse_levels: int, fine_levels: int) -> LevelVocab:
    names = tuple(f"acoustic{coarse_levels + q + 1}" for q in range(fine_levels))
    return LevelVocab(names, (acoustic_size,) * fine_levels)


def fine_target(fine: Tensor) -> Flat:
    """fine [B, F, U] -> frame-major sequence [B, U * F] (levels 0..F-1 of :func:`fine_vocab`)."""
    return Flat(frame_major(fine), _level_pattern(fine.shape[2], fine.shape[1], 0, fine.device))


def split_fine(codes: Tensor, fine_levels: int) -> Tensor:
    """Inverse of :func:`fine_target`: [B, U * F] -> [B, F, U]."""
    return split_frame_major(codes, fine_levels)


# --- vocal featurizations (stage-1 source) -------------------------------------------------------


def input_vocab(
    featurization: str, semantic_size: int, acoustic_size: int, coarse_levels: int
) -> LevelVocab:
    """The source vocabulary of a featurization: only the levels it uses get table rows."""
    _check_featurization(featurization)
    full = stage1_vocab(semantic_size, acoustic_size, coarse_levels)
    if featurization == "SA":
        return full
    if featurization == "S":
        return LevelVocab(full.names[:1], full.sizes[:1])
    return LevelVocab(full.names[1:], full.sizes[1:])


def _check_featurization(featurization: str) -> None:
    if featurization not in FEATURIZATIONS:
        raise SingsongError(
            f"unknown vocal featurization {featurization!r}; choose one of {list(FEATURIZATIONS)}"
        )


def featurize(featurization: str, vocals: Codes, *, coarse_levels: int) -> Flat:
    """Vocal codes -> the encoder's token sequence (see the module docstring for layouts).

    ``vocals.acoustic`` may carry more levels than ``coarse_levels``; only the coarse ones are
    used. Levels index :func:`input_vocab` of the same featurization.
    """
    _check_featurization(featurization)
    sem, ac = vocals.semantic, vocals.acoustic
    if featurization in ("A", "SA"):
        if ac is None or ac.dim() != 3 or ac.shape[1] < coarse_levels:
            got = None if ac is None else _shape(ac)
            raise SingsongError(
                f"featurization {featurization} needs vocal acoustic codes [B, >={coarse_levels}, "
                f"U], got {got}"
            )
        ac = ac[:, :coarse_levels]
        if ac.shape[2] % SEMANTIC_PER_ACOUSTIC:
            raise SingsongError(f"vocal acoustic codes have an odd frame count {ac.shape[2]}")
    if featurization == "S":
        if sem is None or sem.dim() != 2:
            got = None if sem is None else _shape(sem)
            raise SingsongError(f"featurization S needs vocal semantic codes [B, T], got {got}")
        return Flat(sem, torch.zeros(sem.shape[1], dtype=torch.long, device=sem.device))
    assert ac is not None
    b, q, u = ac.shape
    if featurization == "A":
        return Flat(frame_major(ac), _level_pattern(u, q, 0, ac.device))
    if (
        sem is None
        or sem.dim() != 2
        or sem.shape[0] != b
        or u != SEMANTIC_PER_ACOUSTIC * sem.shape[1]
    ):
        got = None if sem is None else _shape(sem)
        raise SingsongError(
            f"featurization SA needs vocal semantic codes [B, U/2] aligned with acoustic codes "
            f"{_shape(ac)}, got {got}"
        )
    t = sem.shape[1]
    per_frame = ac.reshape(b, q, t, SEMANTIC_PER_ACOUSTIC).permute(0, 2, 3, 1)  # [B, T, 2, Q]
    codes = torch.cat([sem[:, :, None], per_frame.reshape(b, t, -1)], dim=2)  # [B, T, 1 + 2Q]
    one = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1, q + 1).repeat(2)])
    return Flat(codes.reshape(b, -1), one.to(ac.device).repeat(t))


def split_featurization(featurization: str, flat: Tensor, *, coarse_levels: int) -> Codes:
    """Inverse of :func:`featurize` (for tests and inspection): [B, L] -> :class:`Codes`."""
    _check_featurization(featurization)
    if featurization == "S":
        return Codes(semantic=flat)
    if featurization == "A":
        return Codes(acoustic=split_frame_major(flat, coarse_levels))
    b, n = flat.shape
    per = 1 + SEMANTIC_PER_ACOUSTIC * coarse_levels
    grid = flat.reshape(b, n // per, per)
    t = grid.shape[1]
    ac = grid[:, :, 1:].reshape(b, t, SEMANTIC_PER_ACOUSTIC, coarse_levels).permute(0, 3, 1, 2)
    return Codes(semantic=grid[:, :, 0], acoustic=ac.reshape(b, coarse_levels, -1))

"""Stage 2: the instrumental's coarse acoustic codes (levels 1-4) -> its fine codes (5-12).

AudioLM's fine stage, as an encoder-decoder over independent chunks of ``chunk_frames`` frames:
the encoder reads a chunk's coarse codes (frame by frame, level by level), the decoder writes its
fine codes in the same order (:mod:`singsong.models.codes`).

Why this shape:
- fine codes are local detail given the coarse ones (AudioLM also models them on short,
  independent 3 s chunks), so chunks lose little, and all chunks of a clip decode *in parallel*
  as one batch: a 10 s clip is 500 frames x 8 levels = 4000 sequential steps unchunked, but
  ``chunk_frames * 8`` steps chunked (400 for 1 s chunks, batch 10);
- an encoder instead of AudioLM's decoder-only prefix: the coarse codes are all known, so they are
  read bidirectionally once (each fine code sees the coarse codes after it too), and the decoder
  sequence and its KV cache hold only the fine codes.
``forward``/``loss`` chunk the same way, so training matches generation for any window length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singsong.errors import SingsongError
from singsong.models.codes import (
    Flat,
    LevelVocab,
    check_grid,
    fine_target,
    fine_vocab,
    frame_major,
    split_fine,
)
from singsong.models.release import (
    check_transformer,
    config_from_preset,
    load_model,
    save_model,
)
from singsong.models.sampling import SamplingParams
from singsong.models.seq2seq import CodeLM, LossOutput
from singsong.modules.transformer import MLPKind

__all__ = ["STAGE2_PRESETS", "Stage2Config", "Stage2Model"]


@dataclass(frozen=True)
class Stage2Config:
    """Stage-2 model. Defaults = the ``small`` preset."""

    acoustic_codebook_size: int = 1024
    coarse_levels: int = 4
    fine_levels: int = 8
    chunk_frames: int = 50  # 1 s at 50 Hz
    dim: int = 256
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 5
    mlp_ratio: float = 4.0
    mlp: MLPKind = "swiglu"
    dropout: float = 0.0
    # time-aligned cross-attention (as Stage1Config's): each fine code's query and each coarse
    # code's key rotated by its frame, so a fine code finds the coarse codes of its own frame
    # by their time offset (zero) instead of searching the chunk by content
    aligned_attention: bool = False

    def __post_init__(self) -> None:
        if self.chunk_frames < 1:
            raise SingsongError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        check_transformer(dim=self.dim, heads=self.heads, mlp=self.mlp)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Stage2Config:
        """A named size (``debug``, ``tiny``, ``small``) with optional field overrides."""
        return config_from_preset(STAGE2_PRESETS, name, overrides, what="stage-2")


STAGE2_PRESETS = {
    "debug": Stage2Config(
        chunk_frames=8, dim=32, heads=2, encoder_layers=1, decoder_layers=2, mlp_ratio=2.0
    ),
    "tiny": Stage2Config(dim=192, heads=4, encoder_layers=2, decoder_layers=3),
    "small": Stage2Config(),
}


class Stage2Model(nn.Module):
    """Coarse codes [B, Q, T] -> fine codes [B, F, T], chunk by chunk."""

    kind = "stage2"

    def __init__(self, config: Stage2Config) -> None:
        super().__init__()
        c = self.config = config
        self.source_vocab = LevelVocab(
            tuple(f"acoustic{q + 1}" for q in range(c.coarse_levels)),
            (c.acoustic_codebook_size,) * c.coarse_levels,
        )
        self.target_vocab = fine_vocab(c.acoustic_codebook_size, c.coarse_levels, c.fine_levels)
        self.lm = CodeLM(
            source_vocab=self.source_vocab,
            target_vocab=self.target_vocab,
            dim=c.dim,
            heads=c.heads,
            encoder_layers=c.encoder_layers,
            decoder_layers=c.decoder_layers,
            mlp_ratio=c.mlp_ratio,
            mlp=c.mlp,
            dropout=c.dropout,
            aligned_attention=c.aligned_attention,
        )

    def _times(self, device: torch.device) -> dict[str, Tensor]:
        """A chunk's ``source_times`` [C * Q] / ``target_times`` [C * F]: each code's frame
        (frame-major layouts), for time-aligned attention; none otherwise."""
        c = self.config
        if not c.aligned_attention:
            return {}
        frames = torch.arange(c.chunk_frames, device=device, dtype=torch.float32)
        return {
            "source_times": frames.repeat_interleave(c.coarse_levels),
            "target_times": frames.repeat_interleave(c.fine_levels),
        }

    # --- chunked layouts -------------------------------------------------------------------------

    def _chunks(self, x: Tensor, fill: int) -> Tensor:
        """[B, K, T] -> [B * n, K, C] (row ``b * n + j`` = chunk ``j``), the tail padded."""
        b, k, t = x.shape
        c = self.config.chunk_frames
        n = math.ceil(t / c)
        x = torch.nn.functional.pad(x, (0, n * c - t), value=fill)
        return x.reshape(b, k, n, c).permute(0, 2, 1, 3).reshape(b * n, k, c)

    def _unchunk(self, x: Tensor, frames: int) -> Tensor:
        """Inverse of :meth:`_chunks`: [B * n, K, C] -> [B, K, frames]."""
        bn, k, c = x.shape
        n = math.ceil(frames / c)
        return (
            x.reshape(bn // n, n, k, c).permute(0, 2, 1, 3).reshape(bn // n, k, n * c)[..., :frames]
        )

    def source(self, coarse: Tensor) -> tuple[Flat, Tensor]:
        """coarse [B, >=Q, T] -> (chunked encoder sequence [B * n, C * Q], its mask)."""
        c = self.config
        coarse = check_grid(coarse, "coarse", dims=3, size=c.acoustic_codebook_size)
        if coarse.shape[1] < c.coarse_levels:
            raise SingsongError(
                f"coarse codes have {coarse.shape[1]} levels; {c.coarse_levels} needed"
            )
        chunks = self._chunks(coarse[:, : c.coarse_levels], fill=-1)  # [B * n, Q, C]
        levels = torch.arange(c.coarse_levels, device=coarse.device).repeat(c.chunk_frames)
        codes = frame_major(chunks)  # [B * n, C * Q]
        return Flat(codes, levels), codes >= 0

    def target(self, fine: Tensor, *, unknown: bool = False) -> Flat:
        """fine [B, F, T] -> chunked decoder sequence [B * n, C * F] (padding = -1)."""
        c = self.config
        fine = check_grid(fine, "fine", dims=3, size=c.acoustic_codebook_size,
                          levels=c.fine_levels, allow_unknown=unknown)  # fmt: skip
        return fine_target(self._chunks(fine, fill=-1))

    # --- training --------------------------------------------------------------------------------

    def _pair(self, coarse: Tensor, fine: Tensor) -> tuple[Flat, Tensor, Flat]:
        if (
            coarse.dim() == 3
            and fine.dim() == 3
            and (coarse.shape[0] != fine.shape[0] or coarse.shape[2] != fine.shape[2])
        ):
            raise SingsongError(
                f"coarse {tuple(coarse.shape)} and fine {tuple(fine.shape)} codes do not match"
            )
        src, mask = self.source(coarse)
        return src, mask, self.target(fine)

    def forward(self, coarse: Tensor, fine: Tensor) -> Tensor:
        """Teacher-forced logits [B * n, C * F, V] (chunked layout)."""
        src, mask, tgt = self._pair(coarse, fine)
        return self.lm(
            src.codes, src.levels, tgt.codes, tgt.levels, mask, **self._times(src.codes.device)
        )

    def loss(self, coarse: Tensor, fine: Tensor) -> LossOutput:
        """Cross-entropy and per-level accuracy (``acoustic5`` ... ``acoustic12``)."""
        src, mask, tgt = self._pair(coarse, fine)
        times = self._times(src.codes.device)
        logits = self.lm(src.codes, src.levels, tgt.codes, tgt.levels, mask, **times)
        return self.lm.loss(logits, tgt.codes, tgt.levels)

    token_streams = frozenset({"instrumental_acoustic"})  # what loss_on_streams reads

    def loss_on_streams(self, batch: Mapping[str, Tensor]) -> LossOutput:
        """:meth:`loss` on collated token windows (``instrumental_acoustic`` [B, 12, U])."""
        ac = batch["instrumental_acoustic"]
        q, f = self.config.coarse_levels, self.config.fine_levels
        if ac.dim() != 3 or ac.shape[1] < q + f:
            raise SingsongError(
                f"instrumental_acoustic: expected [B, {q + f}, U], got {tuple(ac.shape)}"
            )
        return self.loss(ac[:, :q], ac[:, q : q + f])

    # --- generation ------------------------------------------------------------------------------

    def generate(
        self, coarse: Tensor, *, params: SamplingParams, prompt: Tensor | None = None
    ) -> Tensor:
        """Sample fine codes for ``coarse`` [B, >=Q, T].

        Args:
            coarse: coarse codes (levels 1..Q, extra levels are ignored).
            params: sampling settings; ``params.takes`` samples per input, in one batch.
            prompt: known fine codes of the first ``P <= T`` frames [B or B * takes, F, P];
                they are fed, not sampled.

        Returns:
            fine codes [B * takes, F, T]; row ``b * takes + n`` is take ``n`` of input ``b``.
        """
        c = self.config
        coarse = check_grid(coarse, "coarse", dims=3, size=c.acoustic_codebook_size)
        b, t, n = coarse.shape[0], coarse.shape[2], params.takes
        # one row per take (the encoder pass is cheap here): rows are (input, take, chunk)
        src, mask = self.source(coarse.repeat_interleave(n, dim=0))
        full = torch.full((b * n, c.fine_levels, t), -1, dtype=torch.long, device=coarse.device)
        if prompt is not None:
            p = check_grid(
                prompt, "prompt", dims=3, size=c.acoustic_codebook_size, levels=c.fine_levels
            )
            if p.shape[0] not in (b, b * n) or not 1 <= p.shape[2] <= t:
                raise SingsongError(
                    f"prompt {tuple(p.shape)} does not fit {b} inputs x {n} takes of {t} frames"
                )
            full[:, :, : p.shape[2]] = p.repeat_interleave(n if p.shape[0] == b else 1, dim=0)
        tgt = self.target(full, unknown=True)
        codes = self.lm.generate(
            src.codes,
            src.levels,
            tgt.levels,
            params=replace(params, takes=1),
            forced=tgt.codes if prompt is not None else None,
            source_mask=mask,
            **self._times(coarse.device),
        )  # [B * takes * n, C * F]
        return self._unchunk(split_fine(codes, c.fine_levels), t)

    # --- release artifacts -----------------------------------------------------------------------

    def save_pretrained(
        self, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None
    ) -> Path:
        return save_model(self, directory, kind=self.kind, config=self.config, dtype=dtype)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> Stage2Model:
        return load_model(directory, kind=cls.kind, config_cls=Stage2Config, build=cls)

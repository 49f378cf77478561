"""Stage 1: vocal codes -> the instrumental's semantic + coarse acoustic codes.

An encoder-decoder (T5-style) :class:`~singsong.models.seq2seq.CodeLM`: the encoder reads the
vocal featurization (``S``, ``A`` or ``SA``, see :mod:`singsong.models.codes`), the decoder writes
the AudioLM stage-1 layout (all semantic codes, then the coarse codes frame by frame, level by
level): ``9T`` tokens for ``T`` semantic frames, 2250 for a 10 s window.

Noise: vocals are noised as waveforms *before* tokenization (:mod:`singsong.models.noise`), so it
happens outside this module; the config records the SNRs the model was trained with and the one
to use at inference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singsong.errors import SingsongError
from singsong.models.codes import (
    FEATURIZATIONS,
    Codes,
    Flat,
    check_grid,
    featurize,
    input_vocab,
    source_times,
    split_stage1,
    stage1_target,
    stage1_times,
    stage1_vocab,
)
from singsong.models.noise import INFERENCE_SNR_DB, TRAIN_SNR_DB
from singsong.models.release import (
    check_transformer,
    config_from_preset,
    load_model,
    save_model,
)
from singsong.models.sampling import SamplingParams
from singsong.models.seq2seq import CodeLM, LossOutput, fill_feature_table
from singsong.modules.transformer import MLPKind

__all__ = ["STAGE1_PRESETS", "Stage1Config", "Stage1Model"]


@dataclass(frozen=True)
class Stage1Config:
    """Stage-1 model. Defaults = the ``small`` preset (about 11M parameters)."""

    featurization: str = "S"  # vocal input: "S" (semantic), "A" (coarse acoustic) or "SA"
    semantic_codebook_size: int = 1024
    acoustic_codebook_size: int = 1024
    # acoustic levels written after the semantic codes; 0 = a *planner*: the semantic codes
    # alone (SingSong's semantic stage), with a stage 1 that writes the coarse codes for them
    coarse_levels: int = 4
    dim: int = 256
    heads: int = 4
    encoder_layers: int = 4
    decoder_layers: int = 6
    mlp_ratio: float = 4.0
    mlp: MLPKind = "swiglu"
    dropout: float = 0.0
    # training aids that make the decoder listen to the vocals (see docs/model.md): the share of
    # decoder input codes hidden during training, and the weight of the semantic codes' loss
    # against each coarse level's (they are 1/9 of the positions but carry the harmony)
    target_dropout: float = 0.0
    semantic_loss_weight: float = 1.0
    # a time axis shared by the vocal and instrumental positions (sinusoids of when each code
    # sounds, added to the embeddings), so cross-attention can find the vocals of "now"
    time_axis: bool = False
    # time-aligned cross-attention: decoder queries and vocal keys rotated by when their codes
    # sound (rotary on the shared time axis), so attention scores see the time offset between
    # the code being written and each vocal code; content-only cross-attention (False, T5's)
    # has to find "the vocals of now" from content alone, which it did not learn here
    aligned_attention: bool = False
    # the decoder's self-attention on the same time axis (needs aligned_attention): the coarse
    # codes come after all semantic codes, so without it a coarse code cannot find the semantic
    # code that sounds with it by position, and the coarse codes ignore the semantic plan
    # (benchmarks/cascade_oracle.py: fed the true semantic codes, harmonic fit at chance)
    timed_self_attention: bool = False
    # what the semantic codes mean: the width of the semantic tokenizer's centroid features
    # (84 for the music backend; 0 = none). The model keeps the table in its weights, filled
    # at training from the tokenizer (`singsong train --semantic`), and adds its projection to
    # the embeddings of every semantic code, vocal and instrumental, input and output
    semantic_features: int = 0
    # vocal noise (dB SNR): train on the token folders' ``vocals_noisy_*`` streams, whose noise
    # was drawn uniformly in [min, max] (checked at training), and add noise at the fixed
    # inference SNR (None: none). vocal_noise=False trains on the clean (separated) vocals.
    vocal_noise: bool = True
    train_snr_min_db: float = TRAIN_SNR_DB[0]
    train_snr_max_db: float = TRAIN_SNR_DB[1]
    inference_snr_db: float | None = INFERENCE_SNR_DB

    def __post_init__(self) -> None:
        if self.featurization not in FEATURIZATIONS:
            raise SingsongError(
                f"unknown vocal featurization {self.featurization!r}; "
                f"choose one of {list(FEATURIZATIONS)}"
            )
        check_transformer(dim=self.dim, heads=self.heads, mlp=self.mlp)
        if not 0.0 <= self.target_dropout < 1.0:
            raise SingsongError(f"target_dropout must be in [0, 1), got {self.target_dropout}")
        if self.timed_self_attention and not self.aligned_attention:
            raise SingsongError("timed_self_attention needs aligned_attention")
        if self.semantic_features < 0:
            raise SingsongError("semantic_features must be >= 0")
        if self.semantic_loss_weight <= 0:
            raise SingsongError("semantic_loss_weight must be positive")
        if self.train_snr_min_db > self.train_snr_max_db:
            raise SingsongError("train_snr_min_db > train_snr_max_db")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Stage1Config:
        """A named size (``debug``, ``tiny``, ``small``) with optional field overrides."""
        return config_from_preset(STAGE1_PRESETS, name, overrides, what="stage-1")


STAGE1_PRESETS = {
    # tiny, for tests: real vocabulary sizes so it accepts any tokenizer's codes
    "debug": Stage1Config(dim=32, heads=2, encoder_layers=1, decoder_layers=2, mlp_ratio=2.0),
    # ~4.9M parameters: the size that trains in about an hour on two CPU cores (measured ~8 s of
    # audio per second of training on one shared core) and the released default
    "tiny": Stage1Config(dim=192, heads=4, encoder_layers=3, decoder_layers=4),
    # ~11M parameters: ~2250 KV-cached decoder steps for 10 s, a few ms each on a laptop CPU
    "small": Stage1Config(),
}


class Stage1Model(nn.Module):
    """Vocal featurization -> instrumental semantic + coarse codes."""

    kind = "stage1"

    def __init__(self, config: Stage1Config) -> None:
        super().__init__()
        c = self.config = config
        self.source_vocab = input_vocab(
            c.featurization, c.semantic_codebook_size, c.acoustic_codebook_size, c.coarse_levels
        )
        self.target_vocab = stage1_vocab(
            c.semantic_codebook_size, c.acoustic_codebook_size, c.coarse_levels
        )
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
            target_dropout=c.target_dropout,
            level_weights=None
            if c.semantic_loss_weight == 1.0
            else (c.semantic_loss_weight,) + (1.0,) * c.coarse_levels,
            time_embedding=c.time_axis,
            aligned_attention=c.aligned_attention,
            timed_self_attention=c.timed_self_attention,
            semantic_features=c.semantic_features,
        )

    def set_semantic_features(self, table: Tensor) -> None:
        """Fill the semantic feature table [semantic codebook size, semantic_features] (e.g. a
        semantic tokenizer's centroids); models without one refuse."""
        fill_feature_table(self.lm.semantic_table, table, what="stage-1")

    # --- layouts ---------------------------------------------------------------------------------

    def _check(self, codes: Codes, name: str, *, need: str, unknown: bool = False) -> Codes:
        """Validate the parts of ``codes`` that ``need`` ("S", "A" or "SA") names."""
        c = self.config
        sem, ac = codes.semantic, codes.acoustic
        if "S" in need:
            sem = check_grid(
                sem,
                f"{name} semantic",
                dims=2,
                size=c.semantic_codebook_size,
                allow_unknown=unknown,
            )
        if "A" in need:
            ac = check_grid(ac, f"{name} acoustic", dims=3, size=c.acoustic_codebook_size,
                            allow_unknown=unknown)  # fmt: skip
            if ac.shape[1] < c.coarse_levels:
                raise SingsongError(
                    f"{name} acoustic codes have {ac.shape[1]} levels; {c.coarse_levels} needed"
                )
            ac = ac[:, : c.coarse_levels]
        if "S" in need and "A" in need:
            assert sem is not None and ac is not None
            if ac.shape[0] != sem.shape[0] or ac.shape[2] != 2 * sem.shape[1]:
                raise SingsongError(
                    f"{name} codes are not aligned: semantic {tuple(sem.shape)} needs acoustic "
                    f"[{sem.shape[0]}, K, {2 * sem.shape[1]}], got {tuple(ac.shape)}"
                )
        return Codes(semantic=sem if "S" in need else None, acoustic=ac if "A" in need else None)

    def source(self, vocals: Codes) -> Flat:
        """Vocal codes -> the encoder sequence of the configured featurization."""
        vocals = self._check(vocals, "vocal", need=self.config.featurization)
        return featurize(self.config.featurization, vocals, coarse_levels=self.config.coarse_levels)

    def target(self, instrumental: Codes, *, unknown: bool = False) -> Flat:
        """Instrumental semantic [B, T] + acoustic [B, >=Q, 2T] -> the stage-1 target."""
        codes = self._check(instrumental, "instrumental", need="SA", unknown=unknown)
        assert codes.semantic is not None and codes.acoustic is not None
        return stage1_target(codes.semantic, codes.acoustic)

    def _times(self, frames: int, device: torch.device) -> dict[str, Tensor]:
        """The ``source_times`` / ``target_times`` of ``frames`` semantic frames (models with
        a time axis or time-aligned attention; none otherwise)."""
        c = self.config
        if not self.lm.needs_times:
            return {}
        return {
            "source_times": source_times(
                c.featurization, frames, coarse_levels=c.coarse_levels, device=device
            ),
            "target_times": stage1_times(frames, c.coarse_levels, device),
        }

    def _logits(self, src: Flat, tgt: Flat, frames: int) -> Tensor:
        times = self._times(frames, src.codes.device)
        return self.lm(src.codes, src.levels, tgt.codes, tgt.levels, **times)

    def _pair(self, vocals: Codes, instrumental: Codes) -> tuple[Flat, Flat]:
        src, tgt = self.source(vocals), self.target(instrumental)
        if src.codes.shape[0] != tgt.codes.shape[0] or vocals.frames != instrumental.frames:
            raise SingsongError(
                f"vocals ({src.codes.shape[0]} x {vocals.frames} frames) and instrumental "
                f"({tgt.codes.shape[0]} x {instrumental.frames} frames) do not match"
            )
        return src, tgt

    # --- training --------------------------------------------------------------------------------

    def forward(self, vocals: Codes, instrumental: Codes) -> Tensor:
        """Teacher-forced logits [B, 9T, V] over each position's level (stage-1 layout)."""
        src, tgt = self._pair(vocals, instrumental)
        return self._logits(src, tgt, vocals.frames)

    def loss(self, vocals: Codes, instrumental: Codes) -> LossOutput:
        """Cross-entropy and per-level accuracy (``semantic``, ``acoustic1`` ... ``acoustic4``)."""
        src, tgt = self._pair(vocals, instrumental)
        logits = self._logits(src, tgt, vocals.frames)
        return self.lm.loss(logits, tgt.codes, tgt.levels)

    @property
    def vocal_source(self) -> str:
        """The vocal streams this model trains on: ``vocals_noisy`` or ``vocals``."""
        return "vocals_noisy" if self.config.vocal_noise else "vocals"

    @property
    def token_streams(self) -> frozenset[str]:
        """The token streams :meth:`loss_on_streams` reads (the rest need not be loaded)."""
        feat, source = self.config.featurization, self.vocal_source
        streams = {"instrumental_semantic"}
        streams |= {"instrumental_acoustic"} if self.config.coarse_levels else set()
        streams |= {f"{source}_semantic"} if "S" in feat else set()
        streams |= {f"{source}_acoustic"} if "A" in feat else set()
        return frozenset(streams)

    def loss_on_streams(self, batch: Mapping[str, Tensor]) -> LossOutput:
        """:meth:`loss` on a collated batch of token windows (``vocals_semantic`` ...)."""
        q = self.config.coarse_levels
        source = self.vocal_source
        if f"{source}_semantic" not in batch and f"{source}_acoustic" not in batch:
            raise SingsongError(f"the batch has no {source}_* streams (streams: {sorted(batch)})")
        return self.loss(
            Codes.from_streams(
                batch, source, levels=q if "A" in self.config.featurization else None
            ),
            self._instrumental_streams(batch),
        )

    def _instrumental_streams(self, batch: Mapping[str, Tensor]) -> Codes:
        """The batch's instrumental codes; a planner (no coarse levels) reads no acoustic
        stream, so it gets an empty acoustic grid [B, 0, 2T]."""
        q = self.config.coarse_levels
        inst = Codes.from_streams(batch, "instrumental", levels=q)
        if q == 0 and inst.acoustic is None and inst.semantic is not None:
            b, t = inst.semantic.shape
            inst = Codes(semantic=inst.semantic, acoustic=inst.semantic.new_zeros(b, 0, 2 * t))
        return inst

    # names of :meth:`validation_sums`, which the trainer adds to its validation row
    validation_sum_names = ("listen_gap", "listen_gap_semantic", "listen_gap_start")
    START_FRAMES = 25  # ``listen_gap_start``: the semantic codes of a window's first second

    def validation_sums(self, batch: Mapping[str, Tensor], out: LossOutput) -> Tensor:
        """``[gap, semantic gap, start gap] * positions``: how much worse the (unweighted)
        cross-entropy gets when each window is given another window's vocals (a cyclic shift of
        the batch), over all positions, over the semantic ones, and over the semantic ones of
        the window's first second, times the scored positions. The start is where the vocals
        matter most: further on, the instrumental's own past already tells the key.
        About zero means the model ignores the vocals: an instrumental model, not an
        accompanist. A batch of one window has nothing to shuffle with and adds zero. The
        batch should mix songs (shuffled windows): a neighbour of the same song shares the key,
        so the gap would only see timing."""
        count = out.count.sum().double()
        rows = batch["instrumental_semantic"].shape[0]
        if rows < 2:
            return torch.zeros(3, dtype=torch.float64, device=out.loss.device)
        shift = torch.roll(torch.arange(rows, device=out.loss.device), 1)
        q = self.config.coarse_levels
        voc = Codes.from_streams(batch, self.vocal_source, levels=q)
        other = Codes(
            semantic=None if voc.semantic is None else voc.semantic[shift],
            acoustic=None if voc.acoustic is None else voc.acoustic[shift],
        )
        inst = self._instrumental_streams(batch)
        tgt = self.target(inst)
        valid = tgt.codes >= 0  # [B, L]
        semantic = valid & (tgt.levels == 0)
        start = semantic.clone()
        start[:, self.START_FRAMES :] = False  # semantic codes come first, one per frame

        def ce(vocals: Codes) -> Tensor:  # per-position cross-entropy [B, L]
            logits = self._logits(self.source(vocals), tgt, inst.frames).float()
            return F.cross_entropy(
                logits.transpose(1, 2), tgt.codes, ignore_index=-1, reduction="none"
            ).double()

        gap = ce(other) - ce(voc)  # [B, L]
        all_gap = gap[valid].mean()
        sem_gap = gap[semantic].mean() if semantic.any() else gap.new_zeros(())
        start_gap = gap[start].mean() if start.any() else gap.new_zeros(())
        return torch.stack([all_gap, sem_gap, start_gap]) * count

    # --- generation ------------------------------------------------------------------------------

    def generate(
        self,
        vocals: Codes,
        *,
        params: SamplingParams,
        prompt: Codes | None = None,
        negative: Codes | None = None,
        semantic: Tensor | None = None,
    ) -> Codes:
        """Sample instrumental codes for ``vocals``.

        Args:
            vocals: vocal codes of ``B`` windows of ``T`` semantic frames (the parts the
                featurization needs).
            params: sampling settings; ``params.takes`` samples per window, in one batch.
            prompt: the instrumental's first ``P <= T`` frames, already known (semantic
                [B or B * takes, P], acoustic [.., >=Q, 2P]): e.g. the overlap with the previous
                window's output. They are fed, not sampled (AudioLM-style continuation).
            negative: vocal codes shaped like ``vocals`` to guide away from when
                ``params.guidance != 1`` (e.g. the codes of silence: the model's idea of an
                instrumental that ignores the singer).
            semantic: the instrumental's semantic codes, known for every frame [B or B * takes,
                T]: they are fed, and only the coarse acoustic codes are sampled (AudioLM's
                coarse stage alone: e.g. to measure it on the true semantic codes).

        Returns:
            Codes with semantic [B * takes, T] and acoustic [B * takes, Q, 2T]; row
            ``b * takes + n`` is take ``n`` of window ``b``.
        """
        src = self.source(vocals)
        b, t, n = src.codes.shape[0], vocals.frames, params.takes
        q = self.config.coarse_levels
        full_sem = torch.full((b * n, t), -1, dtype=torch.long, device=src.codes.device)
        full_ac = torch.full((b * n, q, 2 * t), -1, dtype=torch.long, device=src.codes.device)
        forced = None
        if prompt is not None:
            p = self._check(prompt, "prompt", need="SA")
            assert p.semantic is not None and p.acoustic is not None
            rows, frames = p.semantic.shape
            if rows not in (b, b * n) or not 1 <= frames <= t:
                raise SingsongError(
                    f"prompt of {rows} rows x {frames} frames does not fit {b} windows x {n} takes "
                    f"of {t} frames"
                )
            reps = n if rows == b else 1
            full_sem[:, :frames] = p.semantic.repeat_interleave(reps, dim=0)
            full_ac[:, :, : 2 * frames] = p.acoustic.repeat_interleave(reps, dim=0)
            forced = stage1_target(full_sem, full_ac).codes
        if semantic is not None:
            sem = check_grid(semantic, "semantic", dims=2, size=self.config.semantic_codebook_size)
            if sem.shape[0] not in (b, b * n) or sem.shape[1] != t:
                raise SingsongError(
                    f"semantic codes {tuple(sem.shape)} do not fit {b} windows x {n} takes of "
                    f"{t} frames"
                )
            full_sem = sem.repeat_interleave(n if sem.shape[0] == b else 1, dim=0)
            forced = stage1_target(full_sem, full_ac).codes
        levels = stage1_target(full_sem[:1], full_ac[:1]).levels
        neg = None if negative is None else self.source(negative).codes
        codes = self.lm.generate(
            src.codes, src.levels, levels, params=params, forced=forced, negative=neg,
            **self._times(t, src.codes.device),
        )  # fmt: skip
        semantic, coarse = split_stage1(codes, frames=t, coarse_levels=q)
        return Codes(semantic=semantic, acoustic=coarse)

    # --- release artifacts -----------------------------------------------------------------------

    def save_pretrained(
        self, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None
    ) -> Path:
        return save_model(self, directory, kind=self.kind, config=self.config, dtype=dtype)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> Stage1Model:
        return load_model(directory, kind=cls.kind, config_cls=Stage1Config, build=cls)

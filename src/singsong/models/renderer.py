"""The renderer: the instrumental's semantic codes (its *plan*) -> its coarse acoustic codes.

SingSong's coarse stage written the way SoundStorm (Borsos et al., 2023) writes it: a
bidirectional transformer over the codec frames (50 Hz) that fills in masked codes level by
level, a few parallel steps per level (MaskGIT's confidence schedule), instead of an
autoregressive decoder over ``Q`` codes per frame.

Why not stage 1's decoder: fed the *true* semantic codes, stage 1's coarse codes came out at
chance harmonic fit (``benchmarks/cascade_oracle.py``, docs/model.md): a coarse code is so well
predicted by the coarse codes before it that the decoder learnt to continue them and not to
render the plan. Here each frame's plan code is part of that frame's input, and with most of a
level masked the plan is all there is to go on, so the model must learn to render it.

It reads no vocals: the planner (a semantic-only stage 1) listens, the renderer sounds out what
it planned. A bundle with a renderer therefore needs a planner (``Components.check``).
Generation continues a prompt (the previous window's coarse codes over the overlap), so it
slots into the pipeline where stage 1 would.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singsong.errors import SingsongError
from singsong.models.codes import Codes, check_grid
from singsong.models.release import (
    check_transformer,
    config_from_preset,
    load_model,
    save_model,
)
from singsong.models.sampling import SamplingParams, filter_logits
from singsong.models.seq2seq import LossOutput, fill_feature_table, init_weights
from singsong.modules.transformer import Encoder, MLPKind

__all__ = ["RENDERER_PRESETS", "RendererConfig", "RendererModel"]


@dataclass(frozen=True)
class RendererConfig:
    """Renderer model. Defaults = the ``small`` preset."""

    semantic_codebook_size: int = 1024
    acoustic_codebook_size: int = 1024
    coarse_levels: int = 4
    dim: int = 256
    heads: int = 4
    layers: int = 8
    mlp_ratio: float = 4.0
    mlp: MLPKind = "swiglu"
    dropout: float = 0.0
    # the semantic tokenizer's centroid features (84 for the music backend; 0 = none), added
    # to the plan's embeddings as in Stage1Config: a code's pitch is known from the first step
    semantic_features: int = 0
    # parallel decoding steps per coarse level at generation: the first level carries the
    # harmony and the rhythm and gets the most; the later ones refine it (SoundStorm: 16, 1, ..)
    decode_steps: tuple[int, ...] = (16, 4, 4, 4)
    # training: the share of windows whose first frames (up to half) are known at all levels,
    # as when a window continues the previous one's overlap
    prompt_rate: float = 0.5
    # training: the share of windows rendered with no plan (its embedding zeroed; no weights),
    # so the model also knows the codes of "any plan" and generation can guide towards the
    # plan (classifier-free guidance: logits = none + plan_guidance * (plan - none))
    plan_dropout: float = 0.0
    plan_guidance: float = 1.0  # at generation; 1 = none (one pass), > 1 needs plan_dropout

    def __post_init__(self) -> None:
        object.__setattr__(self, "decode_steps", tuple(self.decode_steps))  # JSON gives a list
        if self.coarse_levels < 1:
            raise SingsongError(f"coarse_levels must be >= 1, got {self.coarse_levels}")
        if len(self.decode_steps) != self.coarse_levels or min(self.decode_steps) < 1:
            raise SingsongError(
                f"decode_steps needs one count >= 1 per coarse level ({self.coarse_levels}), "
                f"got {list(self.decode_steps)}"
            )
        check_transformer(dim=self.dim, heads=self.heads, mlp=self.mlp)
        if self.semantic_features < 0:
            raise SingsongError("semantic_features must be >= 0")
        if not 0.0 <= self.prompt_rate <= 1.0:
            raise SingsongError(f"prompt_rate must be in [0, 1], got {self.prompt_rate}")
        if not 0.0 <= self.plan_dropout < 1.0:
            raise SingsongError(f"plan_dropout must be in [0, 1), got {self.plan_dropout}")
        if not (self.plan_guidance >= 0 and math.isfinite(self.plan_guidance)):
            raise SingsongError(f"plan_guidance must be >= 0 (1 = none), got {self.plan_guidance}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RendererConfig:
        """A named size (``debug``, ``tiny``, ``small``) with optional field overrides."""
        return config_from_preset(RENDERER_PRESETS, name, overrides, what="renderer")


RENDERER_PRESETS = {
    "debug": RendererConfig(dim=32, heads=2, layers=2, mlp_ratio=2.0, decode_steps=(3, 1, 1, 1)),
    # 4.4M parameters (with 84 semantic features): 24 x 6 s windows per 1.4 s step on 2 CPU threads
    "tiny": RendererConfig(dim=192, heads=4, layers=6),
    "small": RendererConfig(),
}


class RendererModel(nn.Module):
    """Plan (semantic codes [B, T]) -> coarse codes [B, Q, 2T], by iterative unmasking."""

    kind = "renderer"

    def __init__(self, config: RendererConfig) -> None:
        super().__init__()
        c = self.config = config
        q, v = c.coarse_levels, c.acoustic_codebook_size
        self.plan_embed = nn.Embedding(c.semantic_codebook_size, c.dim)
        self.half_embed = nn.Embedding(2, c.dim)  # 1st or 2nd codec frame of its plan frame
        self.level_embed = nn.Embedding(q, c.dim)  # the level being written
        self.code_embed = nn.Embedding(q * (v + 1), c.dim)  # per level: v codes, then [MASK]
        self.encoder = Encoder(dim=c.dim, depth=c.layers, heads=c.heads,
                               mlp_ratio=c.mlp_ratio, mlp=c.mlp, dropout=c.dropout)  # fmt: skip
        self.out = nn.Parameter(torch.empty(q, v, c.dim))  # per-level output projection
        self.semantic_table: Tensor | None
        self.features: nn.Linear | None = None
        if c.semantic_features:
            self.register_buffer("semantic_table", torch.zeros(c.semantic_codebook_size,
                                                               c.semantic_features))  # fmt: skip
            self.features = nn.Linear(c.semantic_features, c.dim, bias=False)
        else:
            self.semantic_table = None
        self.level_offsets: Tensor
        self.register_buffer("level_offsets", torch.arange(q) * (v + 1), persistent=False)
        init_weights(self, layers=c.layers)
        nn.init.normal_(self.out, std=0.02)

    def set_semantic_features(self, table: Tensor) -> None:
        """Fill the semantic feature table [semantic codebook size, semantic_features]."""
        fill_feature_table(self.semantic_table, table, what="renderer")

    def set_plan_guidance(self, guidance: float) -> None:
        """Change the plan guidance it generates with (stored in its config when saved); a
        setting that changes no weight, so a released renderer can take another."""
        if guidance != 1 and self.config.plan_dropout == 0:
            raise SingsongError(
                "plan guidance needs a renderer trained with plan_dropout > 0 (it knows no "
                "'no plan' codes to guide away from)"
            )
        self.config = replace(self.config, plan_guidance=guidance)  # validated there

    # --- the network -----------------------------------------------------------------------------

    def logits(
        self, plan: Tensor, coarse: Tensor, level: Tensor, *, keep_plan: Tensor | None = None
    ) -> Tensor:
        """Logits [B, U, V] of level ``level[b]`` of each row at every frame.

        Args:
            plan: semantic codes [B, T].
            coarse: coarse codes [B, Q, U = 2T], -1 where masked (unknown).
            level: [B], the level each row is writing.
            keep_plan: [B] bool; rows where it is False are rendered with no plan (default:
                every row has its plan).
        """
        c = self.config
        up = plan.repeat_interleave(2, dim=1)  # [B, U]: each plan frame spans two codec frames
        u = up.shape[1]
        x = self.plan_embed(up)
        if self.features is not None and self.semantic_table is not None:
            x = x + self.features(self.semantic_table[up])
        if keep_plan is not None:
            x = x * keep_plan[:, None, None].to(x.dtype)
        x = x + self.half_embed(torch.arange(u, device=up.device) % 2)[None]
        x = x + self.level_embed(level)[:, None]
        ids = torch.where(coarse >= 0, coarse, c.acoustic_codebook_size)  # [B, Q, U]
        x = x + self.code_embed(ids + self.level_offsets[None, :, None]).sum(dim=1)  # [B, U, D]
        h = self.encoder(x)  # [B, U, D]
        return torch.einsum("bud,bvd->buv", h, self.out[level])

    # --- training --------------------------------------------------------------------------------

    def _check(self, plan: Tensor, coarse: Tensor | None, *, unknown: bool = False) -> None:
        c = self.config
        check_grid(plan, "plan (semantic)", dims=2, size=c.semantic_codebook_size)
        if coarse is None:
            return
        check_grid(coarse, "coarse", dims=3, size=c.acoustic_codebook_size,
                   levels=c.coarse_levels, allow_unknown=unknown)  # fmt: skip
        if coarse.shape[0] != plan.shape[0] or coarse.shape[2] != 2 * plan.shape[1]:
            raise SingsongError(
                f"coarse codes {tuple(coarse.shape)} do not fit the plan {tuple(plan.shape)} "
                f"(need [{plan.shape[0]}, {c.coarse_levels}, {2 * plan.shape[1]}])"
            )

    def training_mask(
        self, coarse: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """SoundStorm's masking of a batch of true coarse codes [B, Q, U].

        Each row writes one level ``q`` (uniform): the levels below are known, a share
        cos(pi/2 * r), r ~ U(0, 1), of level ``q`` is masked, the levels above are all masked;
        a ``prompt_rate`` share of rows also know everything before a random frame (up to
        half the window). Returns (known [B, Q, U] bool, level [B], scored [B, U] bool: the
        masked frames of level ``q`` whose truth is known).
        """
        b, q, u = coarse.shape
        dev = coarse.device

        def rand(*shape: int) -> Tensor:
            return torch.rand(shape, generator=generator, device=dev)

        level = (rand(b) * q).long().clamp(max=q - 1)  # [B]
        masked_share = torch.cos(rand(b) * math.pi / 2)  # [B]
        n_masked = (masked_share * u).ceil().clamp(1, u)  # [B]
        rank = rand(b, u).argsort(dim=1).argsort(dim=1)  # [B, U]: a random order of frames
        masked = rank < n_masked[:, None]  # [B, U]
        prompted = rand(b) < self.config.prompt_rate
        prefix_len = (rand(b) * (u // 2 + 1)).long() * prompted  # [B]
        prefix = torch.arange(u, device=dev)[None] < prefix_len[:, None]  # [B, U]
        lv = torch.arange(q, device=dev)[None, :, None]  # [1, Q, 1]
        row_level = level[:, None, None]
        known = (lv < row_level) | ((lv == row_level) & ~masked[:, None]) | prefix[:, None]
        scored = masked & ~prefix & (_level_codes(coarse, level) >= 0)
        return known & (coarse >= 0), level, scored

    def _ce(self, plan: Tensor, coarse: Tensor, known: Tensor, level: Tensor) -> Tensor:
        """Per-frame cross-entropy [B, U] of each row's level, given the ``known`` codes."""
        logits = self.logits(plan, torch.where(known, coarse, -1), level).float()
        target = _level_codes(coarse, level).clamp(min=0)
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none")

    def loss(self, plan: Tensor, coarse: Tensor) -> LossOutput:
        """Masked-code cross-entropy and accuracy per level (``acoustic1`` ...) for true
        ``plan`` [B, T] and ``coarse`` [B, Q, 2T] (-1 = padding), under a fresh random mask."""
        self._check(plan, coarse, unknown=True)
        known, level, scored = self.training_mask(coarse)
        masked_in = torch.where(known, coarse, -1)
        keep = None
        if self.training and self.config.plan_dropout > 0:
            keep = torch.rand(plan.shape[0], device=plan.device) >= self.config.plan_dropout
        logits = self.logits(plan, masked_in, level, keep_plan=keep)  # [B, U, V]
        target = torch.where(scored, _level_codes(coarse, level), -1)  # [B, U]
        ce = F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=-1)
        if not scored.any():  # nothing to score (all padding): a zero that keeps the graph
            ce = logits.sum() * 0.0
        q = self.config.coarse_levels
        with torch.no_grad():
            hit = ((logits.argmax(-1) == target) & scored).sum(1)  # [B]
            correct = torch.zeros(q, dtype=torch.long, device=plan.device)
            count = torch.zeros_like(correct)
            correct.index_add_(0, level, hit)
            count.index_add_(0, level, scored.sum(1))
        names = tuple(f"acoustic{k + 1}" for k in range(q))
        return LossOutput(ce, correct, count, names)

    token_streams = frozenset({"instrumental_semantic", "instrumental_acoustic"})  # it reads these

    def loss_on_streams(self, batch: Mapping[str, Tensor]) -> LossOutput:
        """:meth:`loss` on collated token windows (``instrumental_semantic`` / ``_acoustic``)."""
        inst = Codes.from_streams(batch, "instrumental", levels=self.config.coarse_levels)
        if inst.semantic is None or inst.acoustic is None:
            raise SingsongError(f"the batch has no instrumental streams ({sorted(batch)})")
        return self.loss(inst.semantic, inst.acoustic)

    # names of :meth:`validation_sums`, which the trainer adds to its validation row
    validation_sum_names = ("plan_gap",)

    def validation_sums(self, batch: Mapping[str, Tensor], out: LossOutput) -> Tensor:
        """``[plan gap] * positions``: how much worse the masked codes' cross-entropy gets when
        each window is given another window's plan (a cyclic shift of the batch), under one
        fixed mask. About zero = the renderer ignores its plan (stage 1's failure)."""
        count = out.count.sum().double()
        inst = Codes.from_streams(batch, "instrumental", levels=self.config.coarse_levels)
        assert inst.semantic is not None and inst.acoustic is not None
        plan, coarse = inst.semantic, inst.acoustic
        if plan.shape[0] < 2:
            return torch.zeros(1, dtype=torch.float64, device=plan.device)
        gen = torch.Generator(device=plan.device).manual_seed(0)
        known, level, scored = self.training_mask(coarse, gen)
        other = torch.roll(plan, 1, dims=0)
        gap = self._ce(other, coarse, known, level) - self._ce(plan, coarse, known, level)
        if not scored.any():
            return torch.zeros(1, dtype=torch.float64, device=plan.device)
        return gap[scored].double().mean().view(1) * count

    # --- generation ------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        vocals: Codes | None = None,
        *,
        params: SamplingParams,
        semantic: Tensor | None = None,
        prompt: Codes | None = None,
        negative: Codes | None = None,
    ) -> Codes:
        """Render coarse codes for a plan (Stage1Model.generate's signature, so the pipeline
        calls either the same way).

        Args:
            vocals: unused (the renderer reads no vocals); gives the window count ``B`` when
                the plan has one row per take.
            params: sampling settings; ``params.takes`` renderings per plan row when the plan
                has ``B`` rows (as many as ``vocals``, or its own row count without vocals).
            semantic: the plan [B or B * takes, T] (required).
            prompt: the first ``P <= T`` frames' coarse codes, known (acoustic [B or B * takes,
                >=Q, 2P]; its semantic part is the plan's and is not read): they are kept.
            negative: unused (vocal guidance belongs to the planner).

        Returns:
            Codes with semantic = the plan [B * takes, T] and acoustic [B * takes, Q, 2T].
        """
        del negative
        c = self.config
        if semantic is None:
            raise SingsongError(
                "the renderer writes the coarse codes of a plan: give semantic= (in a bundle, "
                "a renderer needs a planner)"
            )
        self._check(semantic, None)
        n = params.takes
        b = semantic.shape[0] if vocals is None else vocals.rows
        if semantic.shape[0] not in (b, b * n):
            raise SingsongError(
                f"plan of {semantic.shape[0]} rows does not fit {b} windows x {n} takes"
            )
        plan = semantic.repeat_interleave(n if semantic.shape[0] == b else 1, dim=0)
        rows, t = plan.shape
        coarse = torch.full((rows, c.coarse_levels, 2 * t), -1, dtype=torch.long,
                            device=plan.device)  # fmt: skip
        if prompt is not None:
            if prompt.acoustic is None:
                raise SingsongError("the renderer's prompt needs its coarse (acoustic) codes")
            p = check_grid(prompt.acoustic, "prompt acoustic", dims=3,
                           size=c.acoustic_codebook_size)  # fmt: skip
            if p.shape[0] not in (b, rows) or p.shape[1] < c.coarse_levels:
                raise SingsongError(
                    f"prompt {tuple(p.shape)} does not fit {b} windows x {n} takes of "
                    f"{c.coarse_levels} levels"
                )
            if not 1 <= p.shape[2] <= 2 * t:
                raise SingsongError(f"prompt of {p.shape[2]} frames does not fit {2 * t}")
            p = p[:, : c.coarse_levels].repeat_interleave(rows // p.shape[0], dim=0)
            coarse[:, :, : p.shape[2]] = p
        gen = params.generator(plan.device)
        for q in range(c.coarse_levels):
            self._fill_level(plan, coarse, q, c.decode_steps[q], params, gen)
        return Codes(semantic=plan, acoustic=coarse)

    def _fill_level(
        self,
        plan: Tensor,  # [R, T]
        coarse: Tensor,  # [R, Q, U], filled in place
        q: int,
        steps: int,
        params: SamplingParams,
        gen: torch.Generator,
    ) -> None:
        """MaskGIT decoding of level ``q``: each step samples every unknown code, keeps the
        most confident ones (cosine schedule: most are kept in the late steps), and re-masks
        the rest; the confidence gets Gumbel noise (scaled by the temperature, fading over the
        steps) so the choice of what to keep is sampled too."""
        rows, u = coarse.shape[0], coarse.shape[2]
        level = torch.full((rows,), q, dtype=torch.long, device=plan.device)
        todo0 = (coarse[:, q] < 0).sum(1)  # [R]
        for s in range(steps):
            todo = coarse[:, q] < 0  # [R, U]
            if not todo.any():
                return
            logits = self._guided_logits(plan, coarse, level)  # [R, U, V]
            flat = logits.flatten(0, 1)
            if params.temperature == 0:
                codes = flat.argmax(-1)
                logp = flat.log_softmax(-1).gather(1, codes[:, None])[:, 0]
            else:
                filtered = filter_logits(flat / params.temperature, top_k=params.top_k,
                                         top_p=params.top_p)  # fmt: skip
                probs = filtered.softmax(-1)
                codes = torch.multinomial(probs, 1, generator=gen)[:, 0]
                logp = probs.gather(1, codes[:, None])[:, 0].clamp(min=1e-30).log()
            codes, logp = codes.view(rows, u), logp.view(rows, u)
            if params.temperature > 0:
                noise = torch.rand(logp.shape, generator=gen, device=logp.device)
                gumbel = -torch.log(-torch.log(noise.clamp(1e-10, 1 - 1e-10)))
                logp = logp + params.temperature * (1 - (s + 1) / steps) * gumbel
            logp = logp.masked_fill(~todo, float("-inf"))
            still = (todo0.double() * math.cos(math.pi / 2 * (s + 1) / steps)).floor().long()
            n_fill = (todo.sum(1) - still).clamp(min=1)  # [R]: at least one code per step
            rank = logp.argsort(dim=1, descending=True).argsort(dim=1)  # [R, U]
            fill = todo & (rank < n_fill[:, None])
            coarse[:, q] = torch.where(fill, codes, coarse[:, q])

    def _guided_logits(self, plan: Tensor, coarse: Tensor, level: Tensor) -> Tensor:
        """Generation's logits [R, U, V]: with ``plan_guidance`` != 1, pushed away from the
        no-plan logits (one batch of 2R rows)."""
        g = self.config.plan_guidance
        if g == 1.0:
            return self.logits(plan, coarse, level).float()
        rows = plan.shape[0]
        keep = torch.arange(2 * rows, device=plan.device) < rows  # first half: with the plan
        both = self.logits(plan.repeat(2, 1), coarse.repeat(2, 1, 1), level.repeat(2),
                           keep_plan=keep).float()  # fmt: skip
        with_plan, none = both[:rows], both[rows:]
        return none + g * (with_plan - none)

    # --- release artifacts -----------------------------------------------------------------------

    def save_pretrained(
        self, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None
    ) -> Path:
        return save_model(self, directory, kind=self.kind, config=self.config, dtype=dtype)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> RendererModel:
        return load_model(directory, kind=cls.kind, config_cls=RendererConfig, build=cls)


def _level_codes(coarse: Tensor, level: Tensor) -> Tensor:
    """Each row's codes of its own level: coarse [B, Q, U], level [B] -> [B, U]."""
    return coarse.gather(1, level[:, None, None].expand(-1, 1, coarse.shape[2]))[:, 0]

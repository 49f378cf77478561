"""The encoder-decoder code language model both stages share.

A :class:`CodeLM` reads a source token sequence with a bidirectional encoder and models a target
sequence with a causal decoder. Every sequence is a :class:`~singsong.models.codes.Flat` of
local codes plus levels (see :mod:`singsong.models.codes`); each target position is scored only
against its own level's rows of the (tied) target embedding table, so logits are ``[B, L, V]``
over local codes (``V`` = the largest level; smaller levels are padded with -inf) and sampling
can never leave a level's vocabulary.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singsong.checkpoint import load_pretrained, save_pretrained
from singsong.errors import SingsongError
from singsong.models.codes import LevelVocab
from singsong.models.sampling import SamplingParams, sample
from singsong.modules.transformer import Decoder, Encoder, MLPKind

__all__ = ["CodeLM", "LossOutput", "load_model", "save_model"]

C = TypeVar("C")
M = TypeVar("M", bound=nn.Module)


@dataclass
class LossOutput:
    """Teacher-forced loss and per-level accuracy counts (sums, so ranks can all-reduce them)."""

    loss: Tensor  # scalar, mean cross-entropy over all scored positions
    correct: Tensor  # [levels] int64, argmax == target
    count: Tensor  # [levels] int64, scored positions
    level_names: tuple[str, ...]

    def accuracy(self) -> dict[str, float]:
        """Per-level accuracy, plus ``"all"``."""
        out = {
            name: float(c) / max(int(n), 1)
            for name, c, n in zip(self.level_names, self.correct, self.count, strict=True)
        }
        out["all"] = float(self.correct.sum()) / max(int(self.count.sum()), 1)
        return out


class CodeLM(nn.Module):
    """Encoder over source codes, causal decoder over target codes (nanoGPT-style init)."""

    def __init__(
        self,
        *,
        source_vocab: LevelVocab,
        target_vocab: LevelVocab,
        dim: int,
        heads: int,
        encoder_layers: int,
        decoder_layers: int,
        mlp_ratio: float,
        mlp: MLPKind,
        dropout: float,
    ) -> None:
        super().__init__()
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.bos = target_vocab.total  # one extra row after the levels' blocks
        self.source_embed = nn.Embedding(source_vocab.total, dim)
        self.target_embed = nn.Embedding(target_vocab.total + 1, dim)
        self.drop = nn.Dropout(dropout)
        self.encoder = Encoder(
            dim=dim,
            depth=encoder_layers,
            heads=heads,
            mlp_ratio=mlp_ratio,
            mlp=mlp,
            dropout=dropout,
        )
        self.decoder = Decoder(
            dim=dim,
            depth=decoder_layers,
            heads=heads,
            mlp_ratio=mlp_ratio,
            mlp=mlp,
            dropout=dropout,
        )
        self.source_offsets: Tensor
        self.target_offsets: Tensor
        self.register_buffer("source_offsets", torch.tensor(source_vocab.offsets), persistent=False)
        self.register_buffer("target_offsets", torch.tensor(target_vocab.offsets), persistent=False)
        self.apply(self._init)
        # GPT-2: scale the projections that write into the residual stream by depth
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "w_out.weight")):
                nn.init.normal_(p, std=0.02 / (2 * (encoder_layers + decoder_layers)) ** 0.5)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    # --- pieces ----------------------------------------------------------------------------------

    def encode(self, codes: Tensor, levels: Tensor, mask: Tensor | None = None) -> Tensor:
        """Source codes [B, S] at levels [S] (+ padding mask [B, S]) -> memory [B, S, D]."""
        ids = codes.clamp(min=0) + self.source_offsets[levels]
        return self.encoder(self.drop(self.source_embed(ids)), mask)

    def _embed_targets(self, codes: Tensor, levels: Tensor) -> Tensor:
        # unknown (-1) codes only occur after the last real one of a sequence (padding), where
        # causality keeps them from affecting anything scored; any valid id will do
        return self.target_embed(codes.clamp(min=0) + self.target_offsets[levels])

    def _bos(self, batch: int, device: torch.device) -> Tensor:
        return self.target_embed(torch.full((batch, 1), self.bos, device=device))  # [B, 1, D]

    def level_logits(self, h: Tensor, levels: Tensor) -> Tensor:
        """Hidden states [B, L, D] at target levels [L] -> local-code logits [B, L, V]."""
        sizes, offsets = self.target_vocab.sizes, self.target_vocab.offsets
        out = h.new_full((*h.shape[:2], max(sizes)), float("-inf"))
        weight = self.target_embed.weight  # tied output projection
        for lvl, (off, size) in enumerate(zip(offsets, sizes, strict=True)):
            idx = (levels == lvl).nonzero()[:, 0]
            if len(idx):
                out[:, idx, :size] = h[:, idx] @ weight[off : off + size].T
        return out

    # --- training --------------------------------------------------------------------------------

    def forward(
        self,
        source: Tensor,  # [B, S] local codes
        source_levels: Tensor,  # [S]
        target: Tensor,  # [B, L] local codes (-1 = padding, not scored)
        target_levels: Tensor,  # [L]
        source_mask: Tensor | None = None,  # [B, S] bool, True = real
    ) -> Tensor:
        """Teacher forcing: logits [B, L, V] where position ``i`` predicts ``target[:, i]``
        from the source and ``target[:, :i]``."""
        memory = self.encode(source, source_levels, source_mask)
        x = torch.cat(
            [self._bos(target.shape[0], target.device),
             self._embed_targets(target[:, :-1], target_levels[:-1])],
            dim=1,
        )  # fmt: skip
        h = self.decoder(self.drop(x), memory, source_mask)
        return self.level_logits(h, target_levels)

    def loss(self, logits: Tensor, target: Tensor, target_levels: Tensor) -> LossOutput:
        """Mean cross-entropy over positions with a known target (-1 is ignored)."""
        flat = logits.float().flatten(0, 1)  # [B * L, V]
        ce = F.cross_entropy(flat, target.flatten(), ignore_index=-1)
        with torch.no_grad():
            valid = target >= 0
            hit = (logits.argmax(dim=-1) == target) & valid  # [B, L]
            n = len(self.target_vocab.sizes)
            lv = target_levels.expand_as(target)
            correct = torch.zeros(n, dtype=torch.long, device=target.device)
            count = torch.zeros_like(correct)
            correct.index_add_(0, lv[valid], hit[valid].long())
            count.index_add_(0, lv[valid], torch.ones_like(lv[valid]))
        return LossOutput(ce, correct, count, self.target_vocab.names)

    # --- generation ------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        source: Tensor,  # [B, S]
        source_levels: Tensor,  # [S]
        target_levels: Tensor,  # [L]
        *,
        params: SamplingParams,
        forced: Tensor | None = None,  # [B * takes, L] known codes (-1 = sample)
        source_mask: Tensor | None = None,  # [B, S]
    ) -> Tensor:
        """Sample target codes [B * takes, L] (row ``b * takes + n`` is take ``n`` of input
        ``b``) with a KV cache. Forced positions are fed, not sampled; runs of positions that
        are forced in every row (a prompt) go through the decoder as one block."""
        n_takes, length = params.takes, len(target_levels)
        memory = self.encode(source, source_levels, source_mask)
        memory = memory.repeat_interleave(n_takes, dim=0)  # the takes share one encoder pass
        mask = None if source_mask is None else source_mask.repeat_interleave(n_takes, dim=0)
        rows = memory.shape[0]
        if forced is None:
            forced = torch.full((rows, length), -1, dtype=torch.long, device=memory.device)
        if forced.shape != (rows, length):
            raise ValueError(f"forced codes {tuple(forced.shape)} != {(rows, length)}")
        all_forced = (forced >= 0).all(dim=0).tolist()
        cache = self.decoder.start(memory, capacity=length, memory_mask=mask)
        generator = params.generator(memory.device)
        out = forced.clone()
        levels = target_levels.tolist()
        fed = 0  # target positions [0, fed) are in the cache; BOS goes with the first block
        started = False
        i = 0
        while i < length:
            if all_forced[i]:
                i += 1  # known in every row: fed later together with the next block
                continue
            x = self._embed_targets(out[:, fed:i], target_levels[fed:i])  # [B', i - fed, D]
            if not started:
                x = torch.cat([self._bos(rows, memory.device), x], dim=1)
                started = True
            h = self.decoder.step(x, cache)[:, -1]  # [B', D], predicts position i
            off, size = self.target_vocab.offsets[levels[i]], self.target_vocab.sizes[levels[i]]
            logits = h @ self.target_embed.weight[off : off + size].T  # [B', size]
            code = sample(logits, params, generator)
            out[:, i] = torch.where(forced[:, i] >= 0, forced[:, i], code)
            fed, i = i, i + 1
        return out


FORMAT_VERSION = "1"
# in a stage release folder: the tokenizers whose codes the model was trained on (written by the
# trainer, checked when a bundle is assembled)
STAGE_TOKENIZERS_FILE = "tokenizers.json"


def config_from_preset(
    presets: Mapping[str, C], name: str, overrides: Mapping[str, Any], *, what: str
) -> C:
    """``presets[name]`` with ``overrides`` replaced; clear errors for unknown presets, fields."""
    if name not in presets:
        raise SingsongError(f"unknown {what} preset {name!r}; choose one of {list(presets)}")
    base = presets[name]
    if unknown := set(overrides) - {f.name for f in dataclasses.fields(base)}:  # type: ignore[arg-type]
        raise SingsongError(f"unknown {type(base).__name__} fields: {sorted(unknown)}")
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]


def save_model(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    kind: str,
    config: Any,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a stage model as a release artifact (``config.json`` + ``model.safetensors``);
    ``dtype=torch.float16`` halves the file (loading casts back to float32)."""
    return save_pretrained(
        directory, kind=kind, version=FORMAT_VERSION, config=config,
        state_dict=model.state_dict(), dtype=dtype,
    )  # fmt: skip


def load_model(
    directory: str | os.PathLike[str], *, kind: str, config_cls: type[C], build: Callable[[C], M]
) -> M:
    """Rebuild a stage model from its folder: strict config, strict weights, eval mode."""
    config, state, meta = load_pretrained(directory, kind=kind, config_cls=config_cls)
    if meta.get("version") != FORMAT_VERSION:
        raise SingsongError(
            f"{directory} holds a {kind} model of format {meta.get('version')!r}; "
            f"this singsong reads format {FORMAT_VERSION!r}"
        )
    model = build(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise SingsongError(f"the weights in {directory} do not fit its config: {e}") from None
    return model.eval()

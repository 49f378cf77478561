"""The encoder-decoder code language model both stages share.

A :class:`CodeLM` reads a source token sequence with a bidirectional encoder and models a target
sequence with a causal decoder. Every sequence is a :class:`~singsong.models.codes.Flat` of
local codes plus levels (see :mod:`singsong.models.codes`); each target position is scored only
against its own level's rows of the (tied) target embedding table, so logits are ``[B, L, V]``
over local codes (``V`` = the largest level; smaller levels are padded with -inf) and sampling
can never leave a level's vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singsong.errors import SingsongError
from singsong.models.codes import LevelVocab
from singsong.models.sampling import SamplingParams, sample
from singsong.modules.transformer import Decoder, Encoder, MLPKind

__all__ = ["CodeLM", "LossOutput", "fill_feature_table", "init_weights", "time_features"]


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


def init_weights(model: nn.Module, *, layers: int) -> None:
    """nanoGPT's init: linear and embedding weights ~ N(0, 0.02), and (GPT-2) the projections
    that write into the residual stream scaled down by the depth, ``layers`` blocks in all."""

    def normal(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    model.apply(normal)  # children first, as nn.Module.apply always went: the same draws
    for name, p in model.named_parameters():
        if name.endswith(("proj.weight", "w_out.weight")):
            nn.init.normal_(p, std=0.02 / (2 * layers) ** 0.5)


def fill_feature_table(buffer: Tensor | None, table: Tensor, *, what: str) -> None:
    """Copy a semantic feature table [codebook size, features] (a semantic tokenizer's
    centroids) into a model's ``semantic_table`` buffer; models without one, or of another
    shape, refuse."""
    if buffer is None:
        raise SingsongError(f"this {what} config has no semantic features (semantic_features 0)")
    if tuple(table.shape) != tuple(buffer.shape):
        raise SingsongError(
            f"semantic feature table {tuple(table.shape)} does not fit the {what}'s "
            f"{tuple(buffer.shape)} (codebook size x semantic_features)"
        )
    with torch.no_grad():
        buffer.copy_(table.to(buffer))


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
        target_dropout: float = 0.0,
        level_weights: tuple[float, ...] | None = None,
        time_embedding: bool = False,
        aligned_attention: bool = False,
        timed_self_attention: bool = False,
        semantic_features: int = 0,
    ) -> None:
        super().__init__()
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        if not 0.0 <= target_dropout < 1.0:
            raise SingsongError(f"target_dropout must be in [0, 1), got {target_dropout}")
        # training only: this fraction of the decoder's *input* codes is replaced by the BOS row,
        # so the decoder cannot lean on copying its own past and has to use the source (word
        # dropout, as in Bowman et al. 2016); generation always sees every code
        self.target_dropout = target_dropout
        self.level_weights: Tensor | None
        if level_weights is not None and len(level_weights) != len(target_vocab.sizes):
            raise SingsongError(
                f"{len(level_weights)} level weights for {len(target_vocab.sizes)} target levels"
            )
        self.register_buffer(
            "level_weights",
            None if level_weights is None else torch.tensor(level_weights, dtype=torch.float32),
            persistent=False,
        )
        self.bos = target_vocab.total  # one extra row after the levels' blocks
        self.source_embed = nn.Embedding(source_vocab.total, dim)
        self.target_embed = nn.Embedding(target_vocab.total + 1, dim)
        # what each semantic code *means*: a fixed table of its tokenizer's centroid features
        # (pitch, chroma, ... of the cluster), projected and added to the learnt embedding of
        # every "semantic" level, on the input and on the tied output side. A code's harmony is
        # then known from the first step instead of learnt code by code, 1024 x 1024 pairs.
        self.semantic_table: Tensor | None
        self.source_features: nn.Linear | None = None
        self.target_features: nn.Linear | None = None
        if semantic_features > 0:
            rows = _level_size(target_vocab, "semantic") or _level_size(source_vocab, "semantic")
            if rows is None:
                raise SingsongError("semantic_features needs a level named 'semantic'")
            self.register_buffer("semantic_table", torch.zeros(rows, semantic_features))
            if _level_size(source_vocab, "semantic") is not None:
                self.source_features = nn.Linear(semantic_features, dim, bias=False)
            if _level_size(target_vocab, "semantic") is not None:
                self.target_features = nn.Linear(semantic_features, dim, bias=False)
        else:
            self.semantic_table = None
        # a shared time axis for source and target (see :func:`time_features`): the rotary
        # positions of each attention are its own sequence's indices, so without it the
        # cross-attention cannot tell which vocal frame sounds with the code being written
        self.time_embed = (
            nn.Linear(2 * TIME_FREQUENCIES, dim, bias=False) if time_embedding else None
        )
        # time-aligned cross-attention: decoder queries and encoder keys rotated by their times
        # (see :class:`~singsong.modules.transformer.CrossAttention`); no parameters of its own
        self.aligned_attention = aligned_attention
        if timed_self_attention and not aligned_attention:
            raise SingsongError("timed_self_attention needs aligned_attention (the same times)")
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
            timed_self_attention=timed_self_attention,
        )
        self.source_offsets: Tensor
        self.target_offsets: Tensor
        self.register_buffer("source_offsets", torch.tensor(source_vocab.offsets), persistent=False)
        self.register_buffer("target_offsets", torch.tensor(target_vocab.offsets), persistent=False)
        init_weights(self, layers=encoder_layers + decoder_layers)
        if self.time_embed is not None:
            # starts silent: the sinusoids (norm ~5.7) would otherwise swamp the 0.02-std token
            # embeddings and slow early learning; the model turns the time signal up as it helps
            nn.init.zeros_(self.time_embed.weight)

    # --- pieces ----------------------------------------------------------------------------------

    @property
    def needs_times(self) -> bool:
        """Whether ``forward``/``generate`` need the positions' times."""
        return self.time_embed is not None or self.aligned_attention

    def _aligned(self, times: Tensor | None) -> Tensor | None:
        """``times`` for the decoder's time-aligned cross-attention (None when it has none)."""
        if not self.aligned_attention:
            return None
        if times is None:
            raise SingsongError("this model has time-aligned attention: pass the positions' times")
        return times

    def _time(self, x: Tensor, times: Tensor | None) -> Tensor:
        """Add the time signal of ``times`` [L] to ``x`` [B, L, D] (models with a time axis)."""
        if self.time_embed is None:
            return x
        if times is None:
            raise SingsongError("this model has a time axis: pass the positions' times")
        return x + self.time_embed(time_features(times.to(x.device)).to(x.dtype))

    def encode(
        self,
        codes: Tensor,
        levels: Tensor,
        mask: Tensor | None = None,
        times: Tensor | None = None,  # [S], for models with a time axis
    ) -> Tensor:
        """Source codes [B, S] at levels [S] (+ padding mask [B, S]) -> memory [B, S, D]."""
        ids = codes.clamp(min=0) + self.source_offsets[levels]
        x = self._add_features(
            self.source_embed(ids), codes, levels, self.source_vocab, self.source_features
        )
        return self.encoder(self.drop(self._time(x, times)), mask)

    def _embed_targets(self, codes: Tensor, levels: Tensor, times: Tensor | None) -> Tensor:
        """Decoder inputs: target codes [B, L] at ``levels`` [L]; ``times`` [L] are the times
        of the positions these inputs *predict* (each input's next position)."""
        # unknown (-1) codes only occur after the last real one of a sequence (padding), where
        # causality keeps them from affecting anything scored; any valid id will do
        ids = codes.clamp(min=0) + self.target_offsets[levels]
        if self.training and self.target_dropout > 0:
            drop = torch.rand(ids.shape, device=ids.device) < self.target_dropout
            ids = ids.masked_fill(drop, self.bos)
            codes = codes.masked_fill(drop, -1)  # a hidden code hides its features too
        x = self._add_features(
            self.target_embed(ids), codes, levels, self.target_vocab, self.target_features
        )
        return self._time(x, times)

    def _bos(self, batch: int, device: torch.device, times: Tensor | None) -> Tensor:
        bos = self.target_embed(torch.full((batch, 1), self.bos, device=device))  # [B, 1, D]
        return self._time(bos, None if times is None else times[:1])  # predicts position 0

    def _add_features(
        self,
        x: Tensor,  # [B, L, D] embeddings
        codes: Tensor,  # [B, L] local codes (-1 = none)
        levels: Tensor,  # [L]
        vocab: LevelVocab,
        proj: nn.Linear | None,
    ) -> Tensor:
        """``x`` plus the projected semantic features of the semantic positions' codes."""
        if proj is None or self.semantic_table is None:
            return x
        table = self.semantic_table
        here = (levels == vocab.names.index("semantic"))[None] & (codes >= 0)  # [B, L]
        feats = proj(table[codes.clamp(0, table.shape[0] - 1)])  # [B, L, D]
        return x + feats * here[..., None].to(x.dtype)

    def output_table(self, level: int) -> Tensor:
        """The tied output embeddings of one target level [size, D] (with its features)."""
        off, size = self.target_vocab.offsets[level], self.target_vocab.sizes[level]
        weight = self.target_embed.weight[off : off + size]
        if self.target_features is not None and self.target_vocab.names[level] == "semantic":
            assert self.semantic_table is not None
            weight = weight + self.target_features(self.semantic_table)
        return weight

    def level_logits(self, h: Tensor, levels: Tensor) -> Tensor:
        """Hidden states [B, L, D] at target levels [L] -> local-code logits [B, L, V]."""
        sizes = self.target_vocab.sizes
        out = h.new_full((*h.shape[:2], max(sizes)), float("-inf"))
        for lvl, size in enumerate(sizes):
            idx = (levels == lvl).nonzero()[:, 0]
            if len(idx):
                out[:, idx, :size] = h[:, idx] @ self.output_table(lvl).T
        return out

    # --- training --------------------------------------------------------------------------------

    def forward(
        self,
        source: Tensor,  # [B, S] local codes
        source_levels: Tensor,  # [S]
        target: Tensor,  # [B, L] local codes (-1 = padding, not scored)
        target_levels: Tensor,  # [L]
        source_mask: Tensor | None = None,  # [B, S] bool, True = real
        source_times: Tensor | None = None,  # [S] float, for models with a time axis
        target_times: Tensor | None = None,  # [L] float
    ) -> Tensor:
        """Teacher forcing: logits [B, L, V] where position ``i`` predicts ``target[:, i]``
        from the source and ``target[:, :i]``."""
        memory = self.encode(source, source_levels, source_mask, source_times)
        next_times = None if target_times is None else target_times[1:]
        x = torch.cat(
            [self._bos(target.shape[0], target.device, target_times),
             self._embed_targets(target[:, :-1], target_levels[:-1], next_times)],
            dim=1,
        )  # fmt: skip
        h = self.decoder(
            self.drop(x),
            memory,
            source_mask,
            times=self._aligned(target_times),
            memory_times=self._aligned(source_times),
        )
        return self.level_logits(h, target_levels)

    def loss(self, logits: Tensor, target: Tensor, target_levels: Tensor) -> LossOutput:
        """Mean cross-entropy over positions with a known target (-1 is ignored), weighted
        per level when the model has ``level_weights``."""
        flat = logits.float().flatten(0, 1)  # [B * L, V]
        if self.level_weights is None:
            ce = F.cross_entropy(flat, target.flatten(), ignore_index=-1)
        else:
            per = F.cross_entropy(flat, target.flatten(), ignore_index=-1, reduction="none")
            w = self.level_weights[target_levels].expand_as(target).flatten()  # [B * L]
            w = w * (target.flatten() >= 0)
            ce = (per * w).sum() / w.sum().clamp(min=1e-8)
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
        source_times: Tensor | None = None,  # [S], for models with a time axis
        target_times: Tensor | None = None,  # [L]
        negative: Tensor | None = None,  # [B, S]: the guidance's negative source codes
    ) -> Tensor:
        """Sample target codes [B * takes, L] (row ``b * takes + n`` is take ``n`` of input
        ``b``) with a KV cache. Forced positions are fed, not sampled; runs of positions that
        are forced in every row (a prompt) go through the decoder as one block. With
        ``params.guidance != 1`` a second decoder pass reads ``negative`` (same levels, mask
        and times as ``source``) and the logits are pushed away from it."""
        n_takes, length = params.takes, len(target_levels)
        guided = params.guidance != 1.0
        if guided and (negative is None or negative.shape != source.shape):
            raise SingsongError("guidance needs negative source codes shaped like the source")
        memory = self.encode(source, source_levels, source_mask, source_times)
        memory = memory.repeat_interleave(n_takes, dim=0)  # the takes share one encoder pass
        mask = None if source_mask is None else source_mask.repeat_interleave(n_takes, dim=0)
        rows = memory.shape[0]
        if forced is None:
            forced = torch.full((rows, length), -1, dtype=torch.long, device=memory.device)
        if forced.shape != (rows, length):
            raise ValueError(f"forced codes {tuple(forced.shape)} != {(rows, length)}")
        all_forced = (forced >= 0).all(dim=0).tolist()
        q_times = self._aligned(target_times)  # [L]: position p predicts (and sounds at) p
        cache = self.decoder.start(
            memory, capacity=length, memory_mask=mask, memory_times=self._aligned(source_times)
        )
        neg_cache = None
        if guided:
            assert negative is not None
            neg = self.encode(negative, source_levels, source_mask, source_times)
            neg_cache = self.decoder.start(
                neg.repeat_interleave(n_takes, dim=0), capacity=length, memory_mask=mask,
                memory_times=self._aligned(source_times),
            )  # fmt: skip
        generator = params.generator(memory.device)
        out = forced.clone()
        levels = target_levels.tolist()
        # each level's output rows [size, D], once per call (semantic ones add their features)
        tables = [self.output_table(lvl) for lvl in range(len(self.target_vocab.sizes))]
        fed = 0  # target positions [0, fed) are in the cache; BOS goes with the first block
        started = False
        i = 0
        while i < length:
            if all_forced[i]:
                i += 1  # known in every row: fed later together with the next block
                continue
            next_times = None if target_times is None else target_times[fed + 1 : i + 1]
            x = self._embed_targets(out[:, fed:i], target_levels[fed:i], next_times)
            if not started:  # x: [B', i - fed (+ 1 with BOS), D]
                x = torch.cat([self._bos(rows, memory.device, target_times), x], dim=1)
                started = True
            step_times = None
            if q_times is not None:
                step_times = q_times[cache.length : cache.length + x.shape[1]]
            table = tables[levels[i]]  # [size of the level, D]
            logits = self.decoder.step(x, cache, step_times)[:, -1] @ table.T  # [B', size]
            if neg_cache is not None:  # predicts position i from the negative source
                base = self.decoder.step(x, neg_cache, step_times)[:, -1] @ table.T
                logits = base + params.guidance * (logits - base)
            code = sample(logits, params, generator)
            out[:, i] = torch.where(forced[:, i] >= 0, forced[:, i], code)
            fed, i = i, i + 1
        return out


def _level_size(vocab: LevelVocab, name: str) -> int | None:
    return vocab.sizes[vocab.names.index(name)] if name in vocab.names else None


TIME_FREQUENCIES = 32
TIME_PERIODS = (3.0, 3000.0)  # shortest and longest period, in semantic frames (40 ms)


def time_features(times: Tensor) -> Tensor:
    """Times [L] (float, in semantic frames) -> sinusoids [L, 2 * TIME_FREQUENCIES] at periods
    spaced geometrically over :data:`TIME_PERIODS` (Vaswani et al.'s positions, on a time axis
    that source and target share)."""
    lo, hi = TIME_PERIODS
    periods = torch.logspace(
        torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), TIME_FREQUENCIES,
        device=times.device,
    )  # fmt: skip
    angle = 2 * torch.pi * times.float()[:, None] / periods  # [L, F]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)

"""T5-style transformer blocks: pre-norm (RMSNorm), rotary positions, SDPA attention, KV cache.

Read top to bottom: norms and rotary positions, the three attentions (causal/bidirectional
self-attention, cross-attention), the MLP, the two blocks, then :class:`Encoder` and
:class:`Decoder`. Shapes: ``B`` batch, ``L`` decoder positions, ``S`` encoder positions, ``D``
model width, ``H`` heads, ``Dh = D / H``.

Incremental decoding keeps its state in a :class:`KVCache` that the caller owns and passes in
(``Decoder.start`` -> ``Decoder.step`` ...); the modules themselves hold no decoding state, so
one model can serve several generations at once. The cache is preallocated to its capacity, so a
step writes in place instead of concatenating (which would cost O(L) copies per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Decoder", "Encoder", "KVCache", "LayerCache", "MLPKind"]

MLPKind = Literal["swiglu", "gelu"]
Rope = tuple[Tensor, Tensor]  # (cos, sin), each [L, Dh / 2]


class Rotary(nn.Module):
    """Rotary position embedding (RoPE): positions as rotations of query/key channel pairs, so
    attention scores depend on relative offsets and any length works (no position table)."""

    def __init__(self, head_dim: int, *, base: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {head_dim}")
        self.inv_freq: Tensor
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)  # [Dh / 2]
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: Tensor) -> Rope:
        angles = positions.to(self.inv_freq)[:, None] * self.inv_freq[None]  # [L, Dh / 2]
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, rope: Rope) -> Tensor:
    """``x`` [B, H, L, Dh] rotated by position (rotate-half pairing, as GPT-NeoX/LLaMA)."""
    cos, sin = (r.to(x.dtype) for r in rope)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


@dataclass
class LayerCache:
    """One decoder layer's cached keys/values: self-attention grows, cross-attention is fixed."""

    k: Tensor  # [B, H, capacity, Dh]
    v: Tensor  # [B, H, capacity, Dh]
    cross_k: Tensor  # [B, H, S, Dh]
    cross_v: Tensor  # [B, H, S, Dh]


@dataclass
class KVCache:
    """Decoding state of one generation: ``length`` positions are filled, up to ``capacity``."""

    layers: list[LayerCache]
    memory_mask: Tensor | None  # [B, 1, 1, S] bool, True = attend
    capacity: int
    aligned: bool = False  # time-aligned cross-attention: keys rotated, steps need times
    length: int = 0


class SelfAttention(nn.Module):
    def __init__(self, *, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: Tensor,  # [B, L, D]
        rope: Rope,
        *,
        mask: Tensor | None = None,  # bool, broadcast to [B, H, L, L_keys], True = attend
        causal: bool = False,
        cache: LayerCache | None = None,
        start: int = 0,  # position of x[:, 0] (with a cache)
    ) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, rope), apply_rotary(k, rope)  # [B, H, L, Dh]
        if cache is not None:
            cache.k[:, :, start : start + n] = k
            cache.v[:, :, start : start + n] = v
            k, v = cache.k[:, :, : start + n], cache.v[:, :, : start + n]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))  # [B, L, D]


class CrossAttention(nn.Module):
    """Decoder queries over encoder outputs. Without ropes there are no positions here (as in
    T5): alignment is learnt from content. With ropes (time-aligned cross-attention), queries
    and keys are rotated by the *time* at which their codes sound, on an axis both sequences
    share, so scores depend on the time offset between a code being written and a vocal code
    and "attend to the vocals of now" is one learnable pattern instead of a search."""

    def __init__(self, *, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def memory_kv(self, memory: Tensor, rope: Rope | None = None) -> tuple[Tensor, Tensor]:
        """``memory`` [B, S, D] -> keys, values [B, H, S, Dh] (computed once per generation);
        ``rope``: the memory positions' times (time-aligned cross-attention)."""
        b, s, d = memory.shape
        k, v = self.kv(memory).view(b, s, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return (k if rope is None else apply_rotary(k, rope)), v

    def forward(
        self,
        x: Tensor,  # [B, L, D]
        kv: tuple[Tensor, Tensor],
        mask: Tensor | None,
        rope: Rope | None = None,  # the queries' times, with keys rotated by ``memory_kv``
    ) -> Tensor:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)  # [B, H, L, Dh]
        if rope is not None:
            q = apply_rotary(q, rope)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """SwiGLU (gate * value, as T5 v1.1 / LLaMA) or plain GELU feed-forward."""

    def __init__(self, *, dim: int, hidden: int, kind: MLPKind, dropout: float) -> None:
        super().__init__()
        if kind not in ("swiglu", "gelu"):
            raise ValueError(f"unknown MLP kind {kind!r}; use 'swiglu' or 'gelu'")
        self.kind = kind
        self.w_in = nn.Linear(dim, 2 * hidden if kind == "swiglu" else hidden, bias=False)
        self.w_out = nn.Linear(hidden, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.w_in(x)
        if self.kind == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = F.gelu(h)
        return self.drop(self.w_out(h))


class EncoderBlock(nn.Module):
    def __init__(self, *, dim: int, heads: int, hidden: int, mlp: MLPKind, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(dim, eps=1e-6), nn.RMSNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim=dim, heads=heads, dropout=dropout)
        self.mlp = MLP(dim=dim, hidden=hidden, kind=mlp, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, rope: Rope, mask: Tensor | None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), rope, mask=mask))
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    def __init__(self, *, dim: int, heads: int, hidden: int, mlp: MLPKind, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.RMSNorm(dim, eps=1e-6) for _ in range(3))
        self.attn = SelfAttention(dim=dim, heads=heads, dropout=dropout)
        self.cross = CrossAttention(dim=dim, heads=heads, dropout=dropout)
        self.mlp = MLP(dim=dim, hidden=hidden, kind=mlp, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,  # [B, L, D]
        rope: Rope,
        memory_kv: tuple[Tensor, Tensor],
        memory_mask: Tensor | None,
        *,
        self_mask: Tensor | None = None,
        causal: bool = False,
        cache: LayerCache | None = None,
        start: int = 0,
        cross_rope: Rope | None = None,
    ) -> Tensor:
        h = self.attn(self.norm1(x), rope, mask=self_mask, causal=causal, cache=cache, start=start)
        x = x + self.drop(h)
        x = x + self.drop(self.cross(self.norm2(x), memory_kv, memory_mask, cross_rope))
        return x + self.mlp(self.norm3(x))


def _hidden(dim: int, mlp_ratio: float, kind: MLPKind) -> int:
    # SwiGLU has three matrices instead of two: 2/3 of the width keeps the parameter count.
    scale = 2 / 3 if kind == "swiglu" else 1.0
    return max(8, round(dim * mlp_ratio * scale / 8) * 8)


def _key_mask(mask: Tensor | None) -> Tensor | None:
    """[B, S] bool (True = real position) -> [B, 1, 1, S] for SDPA."""
    return None if mask is None else mask[:, None, None, :].bool()


class Encoder(nn.Module):
    """Bidirectional pre-norm transformer: ``x`` [B, S, D] (+ padding mask) -> [B, S, D]."""

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        mlp: MLPKind = "swiglu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = _hidden(dim, mlp_ratio, mlp)
        self.rotary = Rotary(dim // heads)
        self.blocks = nn.ModuleList(
            EncoderBlock(dim=dim, heads=heads, hidden=hidden, mlp=mlp, dropout=dropout)
            for _ in range(depth)
        )
        self.norm = nn.RMSNorm(dim, eps=1e-6)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` [B, S] bool, True where ``x`` is real (padding is ignored as a key)."""
        rope = self.rotary(torch.arange(x.shape[1], device=x.device))
        key_mask = _key_mask(mask)
        for block in self.blocks:
            x = block(x, rope, key_mask)
        return self.norm(x)


class Decoder(nn.Module):
    """Causal pre-norm transformer with cross-attention to encoder outputs.

    ``forward`` runs a whole (teacher-forced) sequence; ``start`` + ``step`` decode it piece by
    piece with a :class:`KVCache` and give the same outputs.

    ``timed_self_attention``: self-attention rotated by the positions' *times* instead of their
    indices (``times`` then required). For a sequence that holds several streams one after the
    other (stage 1's semantic codes, then its coarse codes), the index offset between a code and
    the code of another stream that sounds with it changes along the sequence, so "read the
    semantic code of now" cannot be learnt from positions; on the time axis it is one offset.
    The causal mask still orders positions that share a time.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        mlp: MLPKind = "swiglu",
        dropout: float = 0.0,
        timed_self_attention: bool = False,
    ) -> None:
        super().__init__()
        hidden = _hidden(dim, mlp_ratio, mlp)
        self.dim, self.heads = dim, heads
        self.timed_self_attention = timed_self_attention
        self.rotary = Rotary(dim // heads)
        self.blocks: nn.ModuleList = nn.ModuleList(
            DecoderBlock(dim=dim, heads=heads, hidden=hidden, mlp=mlp, dropout=dropout)
            for _ in range(depth)
        )
        self.norm = nn.RMSNorm(dim, eps=1e-6)

    def _blocks(self) -> list[DecoderBlock]:
        return [b for b in self.blocks if isinstance(b, DecoderBlock)]

    def _cross_rope(self, times: Tensor | None) -> Rope | None:
        return None if times is None else self.rotary(times.float())

    def _self_rope(self, positions: Tensor, times: Tensor | None) -> Rope:
        """Self-attention's rotation: by index, or by time (``timed_self_attention``)."""
        if not self.timed_self_attention:
            return self.rotary(positions)
        if times is None:
            raise ValueError("this decoder's self-attention is timed: pass the positions' times")
        return self.rotary(times.float())

    def forward(
        self,
        x: Tensor,  # [B, L, D]
        memory: Tensor,  # [B, S, D]
        memory_mask: Tensor | None = None,  # [B, S] bool
        *,
        times: Tensor | None = None,  # [L] float: when each position's code sounds
        memory_times: Tensor | None = None,  # [S] float, same axis (time-aligned cross-attention)
    ) -> Tensor:
        """-> [B, L, D]. Give both ``times`` and ``memory_times`` for time-aligned
        cross-attention (see :class:`CrossAttention`), neither for content-only."""
        if (times is None) != (memory_times is None):
            raise ValueError("time-aligned cross-attention needs both times and memory_times")
        rope = self._self_rope(torch.arange(x.shape[1], device=x.device), times)
        q_rope, k_rope = self._cross_rope(times), self._cross_rope(memory_times)
        key_mask = _key_mask(memory_mask)
        for block in self._blocks():
            kv = block.cross.memory_kv(memory, k_rope)
            x = block(x, rope, kv, key_mask, causal=True, cross_rope=q_rope)
        return self.norm(x)

    def start(
        self,
        memory: Tensor,
        *,
        capacity: int,
        memory_mask: Tensor | None = None,
        memory_times: Tensor | None = None,  # [S], for time-aligned cross-attention
    ) -> KVCache:
        """An empty cache for decoding up to ``capacity`` positions against ``memory`` [B, S, D]."""
        b = memory.shape[0]
        shape = (b, self.heads, capacity, self.dim // self.heads)
        layers = []
        k_rope = self._cross_rope(memory_times)
        for block in self._blocks():
            ck, cv = block.cross.memory_kv(memory, k_rope)
            k = memory.new_zeros(shape)
            layers.append(LayerCache(k=k, v=torch.zeros_like(k), cross_k=ck, cross_v=cv))
        return KVCache(
            layers=layers,
            memory_mask=_key_mask(memory_mask),
            capacity=capacity,
            aligned=memory_times is not None,
        )

    def step(self, x: Tensor, cache: KVCache, times: Tensor | None = None) -> Tensor:
        """Feed the next ``n`` positions ``x`` [B, n, D] (sounding at ``times`` [n] with
        time-aligned cross-attention) -> their outputs [B, n, D]; advances ``cache.length``."""
        if cache.aligned != (times is not None):
            raise ValueError("pass times to step() exactly when the cache has memory_times")
        n, start = x.shape[1], cache.length
        if start + n > cache.capacity:
            raise ValueError(f"KV cache full: {start} + {n} positions > capacity {cache.capacity}")
        positions = torch.arange(start, start + n, device=x.device)
        rope = self._self_rope(positions, times)  # cached keys keep their own rotation
        # One new position may see everything cached; a block of several needs a causal mask
        # aligned at `start` (SDPA's is_causal assumes equal query and key lengths).
        mask = None
        if n > 1:
            mask = torch.arange(start + n, device=x.device)[None, :] <= positions[:, None]
        cross_rope = self._cross_rope(times)
        for block, layer in zip(self.blocks, cache.layers, strict=True):
            x = block(
                x,
                rope,
                (layer.cross_k, layer.cross_v),
                cache.memory_mask,
                self_mask=mask,
                cache=layer,
                start=start,
                cross_rope=cross_rope,
            )
        cache.length = start + n
        return self.norm(x)

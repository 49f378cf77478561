"""One typed interface for every tokenizer: audio <-> discrete codes ``[B, K, T]``.

Both the semantic tokenizer (features + k-means, 25 Hz) and the acoustic codec (residual VQ,
50 Hz) implement :class:`Tokenizer`, so the stage models never import a backend's library.

Frame alignment (exact, the same rule for every tokenizer): a tokenizer with hop ``H`` samples
turns ``N`` samples into ``ceil(N / H)`` frames; the input is zero-padded at the end to a whole
number of hops, and frame ``t`` covers samples ``[t * H, (t + 1) * H)``. With the 25 Hz semantic
hop (640) and the 50 Hz acoustic hop (320) at 16 kHz, a clip whose length is a multiple of 640
samples gives exactly twice as many acoustic frames as semantic frames: 10 s -> 250 and 500.
Decoding ``T`` frames gives ``T * H`` samples.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

import torch

from singsong.errors import SingsongError


@dataclass(frozen=True)
class TokenizerInfo:
    """What a token file records about the tokenizer that wrote it."""

    name: str
    version: str
    sample_rate: int
    hop_length: int
    num_codebooks: int
    codebook_size: int

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


class Tokenizer(ABC):
    """Audio at ``sample_rate`` <-> codes ``[B, K, T]`` with ``K = num_codebooks``."""

    name: str
    version: str
    sample_rate: int
    hop_length: int
    num_codebooks: int
    codebook_size: int

    @property
    def frame_rate(self) -> float:
        return self.info.frame_rate

    @property
    def info(self) -> TokenizerInfo:
        return TokenizerInfo(
            self.name,
            self.version,
            self.sample_rate,
            self.hop_length,
            self.num_codebooks,
            self.codebook_size,
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` samples: ``ceil(num_samples / hop_length)``."""
        return math.ceil(num_samples / self.hop_length)

    @property
    def can_decode(self) -> bool:
        return False

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav`` [B, N] (or [B, 1, N]) float at ``sample_rate`` -> codes [B, K, ceil(N / hop)]
        (int64, values in ``[0, codebook_size)``)."""

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K', T] (K' <= K: the first K' levels) -> wav [B, T * hop_length]."""
        raise SingsongError(f"the {self.name} tokenizer cannot decode codes to audio")


def as_batch(wav: torch.Tensor, *, hop_length: int) -> torch.Tensor:
    """Validate and shape a waveform for encoding: -> float [B, N'] zero-padded to whole hops."""
    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise SingsongError(f"expected mono audio [B, 1, N], got shape {tuple(wav.shape)}")
        wav = wav[:, 0]
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2:
        raise SingsongError(f"expected audio [B, N], got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise SingsongError("cannot encode empty audio (0 samples)")
    if not torch.is_floating_point(wav):
        raise SingsongError(f"expected float audio, got {wav.dtype}")
    if not torch.isfinite(wav).all():
        raise SingsongError("audio contains NaN or infinite samples")
    pad = -wav.shape[-1] % hop_length
    return torch.nn.functional.pad(wav, (0, pad)) if pad else wav


def check_codes(codes: torch.Tensor, *, num_codebooks: int, codebook_size: int) -> torch.Tensor:
    """Validate codes [B, K', T] for decoding (K' between 1 and num_codebooks)."""
    if codes.dim() != 3:
        raise SingsongError(f"expected codes [B, K, T], got shape {tuple(codes.shape)}")
    if not 1 <= codes.shape[1] <= num_codebooks:
        raise SingsongError(f"expected 1 to {num_codebooks} codebooks, got {codes.shape[1]}")
    if codes.numel() and (codes.min() < 0 or codes.max() >= codebook_size):
        raise SingsongError(f"codes out of range [0, {codebook_size})")
    return codes.long()

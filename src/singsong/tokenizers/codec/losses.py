"""Codec losses and the metrics the evaluation shares with them.

- :class:`MelDistance`: multi-resolution mel distance, the mean L1 distance between
  log10-mel magnitude spectrograms at three STFT sizes (512, 1024, 2048; hop = size / 4;
  80 mel bands, 0-8 kHz; magnitudes floored at 1e-5). Used as a loss and as an eval metric.
- multi-resolution STFT loss from ``auraloss`` (spectral convergence + log-magnitude L1).
- :func:`si_sdr`: scale-invariant SDR in dB; its negative is the waveform term that makes the
  decoder reproduce phase (magnitude losses alone leave phase free and SI-SDR near 0 dB).
"""

from __future__ import annotations

from dataclasses import dataclass

import auraloss
import numpy as np
import torch
from torch import nn


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney-style triangular mel filters [n_mels, n_fft // 2 + 1] (area-normalised)."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(0, hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return torch.from_numpy(fb.astype(np.float32))


class MelDistance(nn.Module):
    """Mean L1 between log10-mel spectrograms over STFT sizes 512, 1024, 2048."""

    def __init__(self, *, sample_rate: int = 16000, sizes: tuple[int, ...] = (512, 1024, 2048)):
        super().__init__()
        self.sizes = sizes
        for n in sizes:
            self.register_buffer(
                f"fb{n}", mel_filterbank(sample_rate=sample_rate, n_fft=n, n_mels=80)
            )
            self.register_buffer(f"win{n}", torch.hann_window(n))

    def logmel(self, wav: torch.Tensor, n: int) -> torch.Tensor:  # [B, N] -> [B, 80, frames]
        spec = torch.stft(wav, n, n // 4, window=getattr(self, f"win{n}"), return_complex=True)
        return (getattr(self, f"fb{n}") @ spec.abs()).clamp_min(1e-5).log10()

    def forward(
        self, est: torch.Tensor, ref: torch.Tensor, *, per_item: bool = False
    ) -> torch.Tensor:
        """est, ref [B, N] -> scalar (or [B] with ``per_item``)."""
        dist = [
            (self.logmel(est, n) - self.logmel(ref, n)).abs().mean(dim=(1, 2)) for n in self.sizes
        ]
        out = torch.stack(dist).mean(0)
        return out if per_item else out.mean()


def si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB of est vs ref, both [B, N] (zero-meaned) -> [B]."""
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))


@dataclass(frozen=True)
class LossWeights:
    mel: float = 1.0
    stft: float = 1.0
    sisdr: float = 0.1  # per dB: 10 dB -> -1.0
    commit: float = 1.0


class CodecLoss(nn.Module):
    def __init__(self, *, weights: LossWeights, sample_rate: int = 16000) -> None:
        super().__init__()
        self.weights = weights
        self.mel = MelDistance(sample_rate=sample_rate)
        self.stft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=[512, 1024, 2048], hop_sizes=[128, 256, 512], win_lengths=[512, 1024, 2048]
        )

    def forward(
        self, est: torch.Tensor, ref: torch.Tensor, commit: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """est, ref [B, N] -> (total loss, its parts as floats)."""
        mel = self.mel(est, ref)
        stft = self.stft(est[:, None], ref[:, None])
        sdr = si_sdr(est, ref).mean()
        w = self.weights
        total = w.mel * mel + w.stft * stft - w.sisdr * sdr + w.commit * commit
        parts = {"loss": total.item(), "mel": mel.item(), "stft": stft.item()}
        parts |= {"sisdr": sdr.item(), "commit": commit.item()}
        return total, parts

"""STFT / inverse STFT with "same" padding: ``N`` samples <-> ``N / hop`` frames exactly.

Frame ``t`` is the window centred on the middle of hop ``t`` (samples ``[t*hop, (t+1)*hop)``),
so these transforms follow the tokenizers' frame-alignment rule (see ``tokenizers.base``).
The inverse is a windowed overlap-add normalised by the window envelope, as in Vocos.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad(n_fft: int, hop: int) -> int:
    if (n_fft - hop) % 2:
        raise ValueError(f"n_fft - hop must be even, got n_fft={n_fft}, hop={hop}")
    return (n_fft - hop) // 2


def stft_same(wav: torch.Tensor, *, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """``wav`` [B, N] (N a multiple of hop) -> complex spectrum [B, n_fft // 2 + 1, N // hop]."""
    pad = _pad(n_fft, hop)
    x = F.pad(wav, (pad, pad))
    return torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)


def istft_same(spec: torch.Tensor, *, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """Complex spectrum [B, n_fft // 2 + 1, T] -> wav [B, T * hop]."""
    pad = _pad(n_fft, hop)
    frames = spec.shape[-1]
    y = torch.fft.irfft(spec, n_fft, dim=1) * window[None, :, None]  # [B, n_fft, T]
    size = (frames - 1) * hop + n_fft
    y = F.fold(y, output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop))[:, 0, 0]
    env = (window.square()[None, :, None]).expand(1, -1, frames)
    env = F.fold(env, output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop))[:, 0, 0]
    return y[:, pad : size - pad] / env[:, pad : size - pad].clamp_min(1e-8)

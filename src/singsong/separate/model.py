"""The builtin separator's network: an Open-Unmix-style spectrogram masker, small enough for a CPU.

Why this design: a mask on the mixture's magnitude spectrogram (with the mixture's phase) is the
cheapest separator that works well on vocals, and Open-Unmix showed that a frequency-compressing
layer plus a bidirectional LSTM over time reaches good quality with few parameters. It trains in
minutes on two CPU cores and separates far faster than real time; a U-Net of similar quality costs
several times more compute per frame, and band-split RNNs need many more parameters.

Shapes: wav [B, N] -> spec [B, F, T] (F = n_fft // 2 + 1) -> two masks [B, 2, F, T] (vocals,
instrumental) -> two waveforms [B, 2, N].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UnmixConfig:
    n_fft: int = 1024
    hop_length: int = 256
    hidden: int = 256
    layers: int = 2
    # Bins above max_bin (about 6 kHz) hold little vocal energy: they are not fed to the network,
    # which still predicts masks for every bin.
    max_bin: int = 385

    @classmethod
    def preset(cls, name: str) -> UnmixConfig:
        presets = {
            "default": cls(),
            "debug": cls(n_fft=256, hop_length=64, hidden=16, layers=1, max_bin=96),
        }
        if name not in presets:
            raise ValueError(f"unknown separator preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


class UnmixModel(nn.Module):
    window: torch.Tensor

    def __init__(self, config: UnmixConfig) -> None:
        super().__init__()
        self.config = config
        bins = config.n_fft // 2 + 1
        self.max_bin = min(config.max_bin, bins)
        h = config.hidden
        # Per-bin input standardisation, learnt (Open-Unmix does the same with dataset stats).
        self.input_mean = nn.Parameter(torch.zeros(self.max_bin))
        self.input_scale = nn.Parameter(torch.ones(self.max_bin))
        self.encode = nn.Sequential(
            nn.Linear(self.max_bin, h, bias=False), nn.LayerNorm(h), nn.Tanh()
        )
        self.lstm = nn.LSTM(
            h, h // 2, num_layers=config.layers, bidirectional=True, batch_first=True, dropout=0.0
        )
        self.decode = nn.Sequential(
            nn.Linear(2 * h, h, bias=False), nn.LayerNorm(h), nn.ReLU(), nn.Linear(h, 2 * bins)
        )
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, N] -> complex spec [B, F, T]."""
        return torch.stft(
            wav, self.config.n_fft, self.config.hop_length, window=self.window, return_complex=True
        )

    def masks(self, mag: torch.Tensor) -> torch.Tensor:
        """mag [B, F, T] -> masks [B, 2, F, T] in (0, 1)."""
        b, f, t = mag.shape
        x = torch.log1p(mag[:, : self.max_bin].transpose(1, 2))  # [B, T, F']
        x = (x - self.input_mean) * self.input_scale
        x = self.encode(x)  # [B, T, H]
        y, _ = self.lstm(x)  # [B, T, H]
        y = self.decode(torch.cat([x, y], dim=-1))  # [B, T, 2F]
        return torch.sigmoid(y.view(b, t, 2, f).permute(0, 2, 3, 1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav [B, N] -> (sources [B, 2, N] = vocals, instrumental; masked specs [B, 2, F, T])."""
        spec = self.stft(wav)  # [B, F, T]
        masked = self.masks(spec.abs()) * spec[:, None]  # [B, 2, F, T]
        b, s, f, t = masked.shape
        sources = torch.istft(
            masked.reshape(b * s, f, t),
            self.config.n_fft,
            self.config.hop_length,
            window=self.window,
            length=wav.shape[-1],
        )
        return sources.view(b, s, -1), masked

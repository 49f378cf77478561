"""1-D convolutional blocks: ConvNeXt (frame-rate processing) and SEANet-style upsampling."""

from __future__ import annotations

import torch
from torch import nn


class ConvNeXtBlock1d(nn.Module):
    """ConvNeXt block on ``[B, C, T]``: depthwise conv -> LayerNorm -> MLP, with layer scale.

    The block Vocos uses for its frame-rate backbone: cheap on a CPU because the only
    full-width mixing is two pointwise linear layers.
    """

    def __init__(
        self, *, dim: int, hidden: int, kernel_size: int = 7, layer_scale: float = 0.1
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, C, T]
        y = self.dwconv(x).transpose(1, 2)  # [B, T, C]
        y = self.pw2(self.act(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ResidualUnit1d(nn.Module):
    """SEANet residual unit on ``[B, C, T]``: ELU -> dilated conv(7) -> ELU -> conv(1)."""

    def __init__(self, *, channels: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ELU(),
            nn.Conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            nn.ELU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, C, T]
        return x + self.block(x)


class UpsampleBlock1d(nn.Module):
    """Transposed conv by ``stride`` then residual units (dilations 1, 3, 9):
    ``[B, C_in, T]`` -> ``[B, C_out, T * stride]``."""

    def __init__(self, *, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(
            in_channels, out_channels, 2 * stride, stride=stride, padding=stride // 2 + stride % 2,
            output_padding=stride % 2,
        )  # fmt: skip
        self.res = nn.Sequential(
            *(ResidualUnit1d(channels=out_channels, dilation=d) for d in (1, 3, 9))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.up(nn.functional.elu(x)))

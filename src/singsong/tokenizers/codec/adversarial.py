"""A multi-resolution STFT discriminator and its losses, for fine-tuning the codec's decoder.

The codec was trained on reconstruction losses alone (mel, multi-resolution STFT, SI-SDR), which
average away the noisy fine structure of real spectra: its output is peakier than real music
(docs/model.md, "Tone match"). A discriminator on complex spectrograms at three resolutions
(EnCodec's MS-STFT discriminator, small: 16 channels) with hinge losses and feature matching
pushes the decoder back towards real texture while the reconstruction losses keep it faithful.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "MultiResolutionDiscriminator",
    "STFTDiscriminator",
    "discriminator_loss",
    "generator_losses",
]

Features = list[torch.Tensor]


class STFTDiscriminator(nn.Module):
    """Waveform [B, N] -> (logits [B, 1, frames, bins'], per-layer features), read from the
    real and imaginary parts of an STFT (hop n_fft / 2) by 2-d convolutions that stride over
    frequency."""

    window: torch.Tensor

    def __init__(self, n_fft: int, *, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [nn.Conv2d(2, c, (3, 9), stride=(1, 2), padding=(1, 4))]
            + [nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4)) for _ in range(3)]
            + [nn.Conv2d(c, c, (3, 3), padding=1)]
        )
        self.out = nn.Conv2d(c, 1, (3, 3), padding=1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, Features]:
        spec = torch.stft(
            wav, self.n_fft, self.n_fft // 2, window=self.window, return_complex=True
        )  # [B, F, T]
        h = torch.stack([spec.real, spec.imag], 1).transpose(2, 3)  # [B, 2, T, F]
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            features.append(h)
        return self.out(h), features


class MultiResolutionDiscriminator(nn.Module):
    """One :class:`STFTDiscriminator` per FFT size (default 256, 512, 1024: 16-64 ms)."""

    def __init__(self, *, ffts: tuple[int, ...] = (256, 512, 1024), channels: int = 16) -> None:
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(n, channels=channels) for n in ffts)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, Features]]:
        return [d(wav) for d in self.discs]


def discriminator_loss(
    disc: MultiResolutionDiscriminator, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """Hinge loss of the discriminator (``fake`` is detached here)."""
    loss = real.new_zeros(())
    for (r, _), (f, _) in zip(disc(real), disc(fake.detach()), strict=True):
        loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return loss


def generator_losses(
    disc: MultiResolutionDiscriminator, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hinge adversarial loss, feature matching) of the generator: feature matching is the L1
    distance between the discriminator's features of ``fake`` and of ``real``, each layer
    relative to the real features' mean magnitude, averaged over layers."""
    adv, fm = real.new_zeros(()), real.new_zeros(())
    with torch.no_grad():
        real_out = disc(real)
    for (f, f_feats), (_, r_feats) in zip(disc(fake), real_out, strict=True):
        adv = adv + F.relu(1 - f).mean()
        pairs = zip(f_feats, r_feats, strict=True)
        layers = [(a - b).abs().mean() / (b.abs().mean() + 1e-5) for a, b in pairs]
        fm = fm + torch.stack(layers).mean()
    return adv, fm

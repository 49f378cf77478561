"""Vocal noise augmentation: white noise on the vocal waveform, before tokenization.

Why (SingSong, Donahue et al. 2023): separated training vocals carry faint residue of the
instruments; a model trained on them learns to read that residue and fails on clean, isolated
vocals. White noise over the vocals masks the residue, so the model has to listen to the voice.
The paper adds the noise at training time and also at inference (the model never saw clean
vocals, so clean input would be out of distribution); we do the same.

Levels (our defaults; the SNR is relative to the clip's mean vocal power): at training time an
SNR drawn uniformly from :data:`TRAIN_SNR_DB` per clip, at inference the fixed
:data:`INFERENCE_SNR_DB`, the middle of that range. NOTE: these numbers were chosen here, not
copied from the paper's text (which was not at hand when this was written): check them against
the paper before quoting them as the paper's. A stage-1 config records the values it was trained
with, so the pipeline adds the same noise at inference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from singsong.errors import SingsongError

__all__ = ["INFERENCE_SNR_DB", "TRAIN_SNR_DB", "add_noise", "augment_vocals", "random_snr"]

TRAIN_SNR_DB = (10.0, 30.0)
INFERENCE_SNR_DB = 20.0


def add_noise(wav: Tensor, snr_db: float | Tensor, generator: torch.Generator) -> Tensor:
    """Add white Gaussian noise at ``snr_db`` (per row) to ``wav`` [B, N] (or [N]).

    Deterministic given the generator's state. The noise power is the row's mean power
    divided by ``10 ** (snr_db / 10)``; an all-silent row stays silent (its SNR is undefined).
    ``snr_db`` is a number or a tensor [B]; ``inf`` adds nothing.
    """
    if not torch.is_floating_point(wav):
        raise SingsongError(f"expected float audio, got {wav.dtype}")
    squeeze = wav.dim() == 1
    x = wav[None] if squeeze else wav
    if x.dim() != 2:
        raise SingsongError(f"expected audio [B, N] or [N], got shape {tuple(wav.shape)}")
    snr = torch.as_tensor(snr_db, dtype=torch.float64, device=x.device).reshape(-1)
    if snr.numel() not in (1, x.shape[0]):
        raise SingsongError(f"{snr.numel()} SNRs for {x.shape[0]} clips")
    power = x.double().pow(2).mean(dim=-1)  # [B]
    scale = (power / 10 ** (snr / 10)).sqrt().to(x.dtype)  # [B], 0 for silence or inf SNR
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
    out = x + noise.to(x.device) * scale[:, None]
    return out[0] if squeeze else out


def random_snr(
    batch: int,
    generator: torch.Generator,
    *,
    low: float = TRAIN_SNR_DB[0],
    high: float = TRAIN_SNR_DB[1],
) -> Tensor:
    """SNRs in dB [B], uniform in ``[low, high]``."""
    if not low <= high:
        raise SingsongError(f"SNR range [{low}, {high}] is empty")
    u = torch.rand(batch, generator=generator, dtype=torch.float64, device=generator.device)
    return low + (high - low) * u


def augment_vocals(
    wav: Tensor,
    generator: torch.Generator,
    *,
    low: float = TRAIN_SNR_DB[0],
    high: float = TRAIN_SNR_DB[1],
) -> Tensor:
    """Training-time augmentation: each clip of ``wav`` [B, N] gets noise at a random SNR."""
    batch = 1 if wav.dim() == 1 else wav.shape[0]
    return add_noise(wav, random_snr(batch, generator, low=low, high=high), generator)

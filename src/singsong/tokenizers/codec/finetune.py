"""``singsong codec finetune``: a released codec's decoder, fine-tuned adversarially.

The encoder and the quantizer stay frozen, so every code means what it meant and every stage
model trained on these codes stays valid; the exported release keeps the codec's ``version``
(which names its codes). The decoder learns from 12-level codes only (what the pipeline
decodes), with the codec's reconstruction losses (x ``recon_weight``) plus a multi-resolution
STFT discriminator's hinge loss and feature matching (:mod:`.adversarial`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from singsong.errors import SingsongError
from singsong.tokenizers.codec.adversarial import (
    MultiResolutionDiscriminator,
    discriminator_loss,
    generator_losses,
)
from singsong.tokenizers.codec.data import CropSampler, validation_set
from singsong.tokenizers.codec.losses import CodecLoss, LossWeights, MelDistance, si_sdr
from singsong.tokenizers.codec.tokenizer import CodecTokenizer
from singsong.tokenizers.codec.train import Prefetcher, TrainConfig

__all__ = ["FinetuneConfig", "finetune_decoder"]


@dataclass(frozen=True)
class FinetuneConfig:
    decoder_lr: float = 5e-5
    disc_lr: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    recon_weight: float = 10.0  # x the codec's mel + STFT - 0.1 SI-SDR loss
    adv_weight: float = 1.0
    fm_weight: float = 2.0
    disc_ffts: tuple[int, ...] = (256, 512, 1024)
    disc_channels: int = 16
    batch_size: int = 8  # crops of 1-2 s, as codec training
    grad_clip: float = 1.0
    save_minutes: float = 5.0  # validate and export this often
    threads: int = 2
    seed: int = 7


@torch.no_grad()
def _validate(tok: CodecTokenizer, valid: dict[str, torch.Tensor], mel: MelDistance) -> str:
    """Mel distance and SI-SDR (dB) of 12-level re-synthesis per held-out set."""
    model = tok.model
    model.decoder.eval()
    shown = []
    for name, clips in valid.items():
        est = model.decode(model.encode(clips))
        shown.append(f"{name}: mel {mel(est, clips):.4f} si-sdr {si_sdr(est, clips).mean():.2f}")
    model.decoder.train()
    return "; ".join(shown)


def finetune_decoder(
    release: Path,
    out: Path,
    *,
    songbook: Path | None,
    mir1k: Path | None,
    minutes: float,
    max_steps: int | None = None,
    config: FinetuneConfig | None = None,
    quiet: bool = False,
) -> Path:
    """Fine-tune the decoder of the codec in ``release`` for ``minutes`` of wall time (or
    ``max_steps``); export to ``out`` (config.json + model.safetensors) every
    ``save_minutes`` and at the end. Returns ``out``."""
    cfg = config or FinetuneConfig()
    if songbook is None and mir1k is None:
        raise SingsongError("give training audio: a songbook folder and/or MIR-1K")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tok = CodecTokenizer.from_pretrained(release)
    model = tok.model
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.decoder.parameters():
        p.requires_grad_(True)
    model.decoder.train()
    disc = MultiResolutionDiscriminator(ffts=cfg.disc_ffts, channels=cfg.disc_channels)
    adversarial = cfg.adv_weight > 0 or cfg.fm_weight > 0  # else reconstruction alone
    opt_g = torch.optim.AdamW(model.decoder.parameters(), lr=cfg.decoder_lr, betas=cfg.betas)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=cfg.betas)
    recon_loss = CodecLoss(weights=LossWeights(), sample_rate=model.config.sample_rate)
    crops = TrainConfig(batch_size=cfg.batch_size, seed=cfg.seed)
    sampler = CropSampler(songbook=songbook, mir1k=mir1k, seed=cfg.seed)
    prefetch = Prefetcher(sampler, crops, model.config.hop_length)
    valid = {
        k: torch.from_numpy(v)
        for k, v in validation_set(songbook=songbook, mir1k=mir1k, clips=24, seconds=2.0).items()
    }

    def export() -> None:
        # same version: the encoder and the quantizer, hence the codes, did not change
        CodecTokenizer(model, version=tok.version).save_pretrained(out)

    if not quiet:
        print(f"step 0: {_validate(tok, valid, recon_loss.mel)}", flush=True)
    start = last_save = time.monotonic()
    step = 0
    try:
        while time.monotonic() - start < minutes * 60 and (max_steps is None or step < max_steps):
            x = prefetch.get()  # [B, N]
            with torch.no_grad():
                zq = model.quantizer.lookup(model.encode(x))  # [B, T, D], all 12 levels
            fake = model.decoder(zq)  # [B, N]
            recon, parts = recon_loss(fake, x, torch.zeros(()))
            loss_d = adv = fm = torch.zeros(())
            if adversarial:
                loss_d = discriminator_loss(disc, x, fake)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                adv, fm = generator_losses(disc, x, fake)
            loss_g = cfg.recon_weight * recon + cfg.adv_weight * adv + cfg.fm_weight * fm
            if not torch.isfinite(loss_g):
                raise SingsongError(f"decoder fine-tuning diverged at step {step}")
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(model.decoder.parameters(), cfg.grad_clip)
            opt_g.step()
            step += 1
            if not quiet and step % 20 == 0:
                shown = f"mel {parts['mel']:.3f} si-sdr {parts['sisdr']:.2f}"
                if adversarial:
                    shown += f" disc {loss_d.item():.3f} adv {adv.item():.3f} fm {fm.item():.3f}"
                print(f"step {step} {(time.monotonic() - start) / 60:.1f} min {shown}", flush=True)
            if time.monotonic() - last_save >= cfg.save_minutes * 60:
                export()
                last_save = time.monotonic()
                if not quiet:
                    print(f"step {step}: {_validate(tok, valid, recon_loss.mel)}", flush=True)
    finally:
        prefetch.close()
    model.eval()
    export()
    if not quiet:
        print(f"step {step}: {_validate(tok, valid, recon_loss.mel)}; saved {out}", flush=True)
    return out

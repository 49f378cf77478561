"""``singsong codec finetune``: a released codec's decoder, fine-tuned adversarially.

The encoder and the quantizer stay frozen, so every code means what it meant and every stage
model trained on these codes stays valid; the exported release keeps the codec's ``version``
(which names its codes). The decoder learns from 12-level codes only (what the pipeline
decodes), with the codec's reconstruction losses (x ``recon_weight``) plus a multi-resolution
STFT discriminator's hinge loss and feature matching (:mod:`.adversarial`). It trains on the
songbook and MIR-1K (train splits), or on a folder of audio files held in memory (what a GPU
needs to stay busy).
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
from singsong.tokenizers.codec.data import CropSampler, FolderCrops, validation_set
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
    device: str = "cpu"


@torch.no_grad()
def _validate(tok: CodecTokenizer, valid: dict[str, torch.Tensor], mel: MelDistance) -> str:
    """Mel distance and SI-SDR (dB) of 12-level re-synthesis per held-out set."""
    model = tok.model
    model.decoder.eval()
    shown = []
    for name, clips in valid.items():
        clips = clips.to(next(model.parameters()).device)
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
    audio: Path | None = None,
    max_steps: int | None = None,
    config: FinetuneConfig | None = None,
    keep_exports: bool = False,
    fp16: bool = False,
    quiet: bool = False,
) -> Path:
    """Fine-tune the decoder of the codec in ``release`` for ``minutes`` of wall time (or
    ``max_steps``) on the songbook and/or MIR-1K, or on the audio files under ``audio``;
    export to ``out`` (config.json + model.safetensors, float16 weights if ``fp16``) every
    ``save_minutes`` (to ``out/step-NNNNNN`` instead if ``keep_exports``) and at the end.
    Returns ``out``."""
    cfg = config or FinetuneConfig()
    if songbook is None and mir1k is None and audio is None:
        raise SingsongError("give training audio: a songbook folder and/or MIR-1K, or a folder")
    if audio is not None and (songbook is not None or mir1k is not None):
        raise SingsongError("give either a folder of audio or the songbook/MIR-1K, not both")
    try:
        device = torch.device(cfg.device)
    except RuntimeError:
        raise SingsongError(f"unknown device {cfg.device!r} (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SingsongError(f"device {cfg.device!r} asked for, but torch sees no CUDA GPU")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tok = CodecTokenizer.from_pretrained(release)
    model = tok.model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.decoder.parameters():
        p.requires_grad_(True)
    model.decoder.train()
    disc = MultiResolutionDiscriminator(ffts=cfg.disc_ffts, channels=cfg.disc_channels)
    disc.to(device)
    adversarial = cfg.adv_weight > 0 or cfg.fm_weight > 0  # else reconstruction alone
    opt_g = torch.optim.AdamW(model.decoder.parameters(), lr=cfg.decoder_lr, betas=cfg.betas)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=cfg.betas)
    recon_loss = CodecLoss(weights=LossWeights(), sample_rate=model.config.sample_rate)
    recon_loss.to(device)
    crops = TrainConfig(batch_size=cfg.batch_size, seed=cfg.seed)
    sampler: CropSampler | FolderCrops
    if audio is not None:
        sampler = FolderCrops(audio, seed=cfg.seed)
        if not quiet:
            print(f"{audio}: {sampler.seconds / 60:.1f} minutes of audio in memory", flush=True)
    else:
        sampler = CropSampler(songbook=songbook, mir1k=mir1k, seed=cfg.seed)
    prefetch = Prefetcher(sampler, crops, model.config.hop_length)
    valid = {
        k: torch.from_numpy(v)
        for k, v in validation_set(songbook=songbook, mir1k=mir1k, clips=24, seconds=2.0).items()
    }

    def export(folder: Path) -> None:
        # same version: the encoder and the quantizer, hence the codes, did not change
        dtype = torch.float16 if fp16 else None
        CodecTokenizer(model, version=tok.version).save_pretrained(folder, dtype=dtype)

    if not quiet and valid:
        print(f"step 0: {_validate(tok, valid, recon_loss.mel)}", flush=True)
    start = last_save = time.monotonic()
    step = 0
    # TF32 for the decoder's matmuls on a GPU (STFTs stay fp32); the caller's setting is restored
    # at the end (it is process-wide)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or device.type == "cuda"
    try:
        while time.monotonic() - start < minutes * 60 and (max_steps is None or step < max_steps):
            x = prefetch.get().to(device, non_blocking=True)  # [B, N]
            with torch.no_grad():
                zq = model.quantizer.lookup(model.encode(x))  # [B, T, D], all 12 levels
            fake = model.decoder(zq)  # [B, N]
            recon, parts = recon_loss(fake, x, x.new_zeros(()))
            loss_d = adv = fm = x.new_zeros(())
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
                export(out / f"step-{step:06d}" if keep_exports else out)
                last_save = time.monotonic()
                if not quiet and valid:
                    print(f"step {step}: {_validate(tok, valid, recon_loss.mel)}", flush=True)
    finally:
        prefetch.close()
        torch.backends.cuda.matmul.allow_tf32 = tf32
    model.eval()
    export(out)
    if not quiet:
        shown = f"{_validate(tok, valid, recon_loss.mel)}; " if valid else ""
        print(f"step {step}: {shown}saved {out}", flush=True)
    return out

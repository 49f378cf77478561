"""The semantic tokenizer: frame features -> standardise -> nearest of K k-means centroids.

25 Hz (hop 640 at 16 kHz), one codebook of ``codebook_size`` (1024) codes, encode only. A release
artifact (``kind = "semantic"``) is ``config.json`` (backend and its settings) plus
``model.safetensors`` with ``centroids`` [K, D], ``mean`` [D] and ``std`` [D]; the transformers
backend records the model's path, never its weights.

The version string ends in a fingerprint of the fitted statistics, so two fits never share a
version and token files written by one refuse to load under the other.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from singsong.checkpoint import load_pretrained, save_pretrained
from singsong.errors import SingsongError
from singsong.tokenizers.base import Tokenizer, as_batch
from singsong.tokenizers.semantic.features import (
    FeatureExtractor,
    MusicFeatureConfig,
    MusicFeatures,
)
from singsong.tokenizers.semantic.hf import HFFeatureConfig, HFFeatures
from singsong.tokenizers.semantic.kmeans import KMeansResult, assign, fit_kmeans, log_progress

KIND = "semantic"
FORMAT_VERSION = "1"
BACKENDS = ("music", "transformers")


@dataclass(frozen=True)
class SemanticConfig:
    backend: str = "music"
    codebook_size: int = 1024
    dim: int = 0  # feature dimension, fixed by the backend (checked on load)
    # "group": one std per feature group (keeps a group's inner geometry, e.g. which pitch is
    # loudest); "dim": one std per dimension.
    normalization: str = "group"
    music: MusicFeatureConfig | None = field(default=None)
    hf: HFFeatureConfig | None = field(default=None)  # the transformers backend

    def __post_init__(self) -> None:
        # config.json holds the nested configs as dicts; rebuild them (unknown keys -> TypeError,
        # which the loader reports as a config mismatch).
        if isinstance(self.music, dict):
            object.__setattr__(self, "music", MusicFeatureConfig(**self.music))
        if isinstance(self.hf, dict):
            object.__setattr__(self, "hf", HFFeatureConfig(**self.hf))
        if self.backend == "music" and self.music is None:  # record the settings explicitly
            object.__setattr__(self, "music", MusicFeatureConfig())
        if self.backend not in BACKENDS:
            raise SingsongError(f"unknown semantic backend {self.backend!r}; use one of {BACKENDS}")
        if self.backend == "transformers" and self.hf is None:
            raise SingsongError("the transformers backend needs a model path and layer")
        if self.normalization not in ("group", "dim"):
            raise SingsongError(f"normalization must be 'group' or 'dim', not {self.normalization}")


def build_extractor(config: SemanticConfig) -> FeatureExtractor:
    if config.backend == "music":
        return MusicFeatures(config=config.music or MusicFeatureConfig())
    assert config.hf is not None  # checked by SemanticConfig
    return HFFeatures(config=config.hf)


def group_weights(extractor: FeatureExtractor) -> torch.Tensor:
    """Per-dimension weights [D]: each group's weight spread over its dimensions.

    After standardising, a group of ``n`` dimensions would add ``n`` units of variance to the
    k-means distance; ``weight / sqrt(n)`` makes that ``weight**2`` whatever its size.
    """
    weights = getattr(extractor, "group_weights", {})
    parts = [
        torch.full((n,), float(weights.get(name, 1.0)) / n**0.5) for name, n in extractor.groups
    ]
    return torch.cat(parts)


class SemanticTokenizer(Tokenizer):
    """Audio [B, N] at 16 kHz -> codes [B, 1, ceil(N / 640)] (int64 in [0, codebook_size))."""

    sample_rate = 16_000
    hop_length = 640
    num_codebooks = 1

    def __init__(
        self,
        *,
        config: SemanticConfig,
        centroids: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        extractor: FeatureExtractor | None = None,
    ) -> None:
        self.config = config
        self.extractor = extractor or build_extractor(config)
        dim = self.extractor.dim
        if config.dim != dim:
            raise SingsongError(
                f"semantic tokenizer expects {config.dim}-d features but the {config.backend} "
                f"backend gives {dim}-d ones (different model or settings than at fit time)"
            )
        k = config.codebook_size
        for label, t, shape in (("centroids", centroids, (k, dim)), ("mean", mean, (dim,))):
            if tuple(t.shape) != shape:
                raise SingsongError(f"{label} has shape {tuple(t.shape)}, expected {shape}")
        if tuple(std.shape) != (dim,) or not bool((std > 0).all()):
            raise SingsongError(f"std must be positive with shape ({dim},)")
        if not all(bool(torch.isfinite(t).all()) for t in (centroids, mean, std)):
            raise SingsongError("semantic tokenizer weights contain NaN or infinite values")
        self.centroids = centroids.float().contiguous()  # [K, D]
        self.mean = mean.float()  # [D]
        self.std = std.float()  # [D]
        self.scale = group_weights(self.extractor) / self.std  # [D]
        self.codebook_size = k
        self.name = f"singsong-semantic-{config.backend}"
        self.version = f"{FORMAT_VERSION}.{self.fingerprint()}"

    def fingerprint(self) -> str:
        """First 10 hex digits of a sha256 over the config and the fitted tensors.

        The transformers model's folder is left out: moving it (and editing config.json to
        match) does not change the codes.
        """
        config = asdict(self.config)
        if config["hf"] is not None:
            config["hf"].pop("model_path")
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for t in (self.centroids, self.mean, self.std):
            h.update(t.numpy().astype("<f4").tobytes())
        return h.hexdigest()[:10]

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """Standardised, group-weighted features: wav [B, N] -> [B, ceil(N / 640), D]."""
        feats = self.extractor(as_batch(wav, hop_length=self.hop_length))  # [B, T, D]
        return (feats - self.mean) * self.scale

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        z = self.features(wav)  # [B, T, D]
        codes = assign(z.reshape(-1, z.shape[-1]), self.centroids)  # [B * T]
        return codes.reshape(z.shape[0], 1, z.shape[1])  # [B, 1, T]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"centroids": self.centroids, "mean": self.mean, "std": self.std}

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        extra = {"name": self.name, "tokenizer_version": self.version, "info": self.info.to_dict()}
        save_pretrained(
            directory,
            kind=KIND,
            version=FORMAT_VERSION,
            config=self.config,
            state_dict=self.state_dict(),
            extra=extra,
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> SemanticTokenizer:
        config, state, meta = load_pretrained(directory, kind=KIND, config_cls=SemanticConfig)
        if meta.get("version") != FORMAT_VERSION:
            raise SingsongError(
                f"{directory} is semantic tokenizer format {meta.get('version')!r}; this "
                f"singsong reads format {FORMAT_VERSION!r}"
            )
        expected = {"centroids", "mean", "std"}
        if set(state) != expected:
            raise SingsongError(
                f"weights of {directory} hold {sorted(state)}, expected {sorted(expected)}"
            )
        tok = cls(config=config, centroids=state["centroids"], mean=state["mean"], std=state["std"])
        recorded = meta.get("tokenizer_version")
        if recorded is not None and recorded != tok.version:
            raise SingsongError(
                f"{directory} is inconsistent: config.json says version {recorded} but its "
                f"weights give {tok.version} (edited or mixed files?)"
            )
        return tok


def standardisation(
    frames: torch.Tensor, extractor: FeatureExtractor, normalization: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and std [D] of training frames [N, D] (std shared within a group if "group")."""
    mean = frames.mean(0)
    var = frames.var(0)
    if normalization == "group":
        start = 0
        for _, n in extractor.groups:
            var[start : start + n] = var[start : start + n].mean()
            start += n
    return mean, var.sqrt().clamp(min=1e-5)


@dataclass(frozen=True)
class FitResult:
    tokenizer: SemanticTokenizer
    kmeans: KMeansResult
    frames_seen: int
    frames_used: int


def fit_semantic(
    config: SemanticConfig,
    audio: Iterable[np.ndarray | torch.Tensor],
    *,
    max_frames: int = 1_000_000,
    passes: int = 20,
    seed: int = 0,
    progress: bool = False,
) -> FitResult:
    """Fit a tokenizer: features of every clip in ``audio`` (16 kHz mono [N]), standardise,
    k-means on at most ``max_frames`` randomly chosen frames.

    ``config.dim`` is filled in from the backend. ``progress`` prints the k-means passes.
    """
    extractor = build_extractor(config)
    chunks = []
    for wav in audio:
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
        if x.dim() != 1 or x.numel() == 0:
            raise SingsongError(f"training audio must be non-empty mono [N], got {tuple(x.shape)}")
        chunks.append(extractor(x[None])[0])  # [T, D]
    if not chunks:
        raise SingsongError("no training audio to fit the semantic tokenizer on")
    frames = torch.cat(chunks)  # [N, D]
    seen = frames.shape[0]
    if seen > max_frames:
        gen = torch.Generator().manual_seed(seed)
        frames = frames[torch.randperm(seen, generator=gen)[:max_frames]]
    config = replace(config, dim=extractor.dim)
    mean, std = standardisation(frames, extractor, config.normalization)
    z = (frames - mean) * (group_weights(extractor) / std)  # [N, D]
    if progress:
        print(f"k-means: k={config.codebook_size} on {len(z)} of {seen} frames", flush=True)
    report = log_progress() if progress else None
    km = fit_kmeans(z, config.codebook_size, passes=passes, seed=seed, progress=report)
    tok = SemanticTokenizer(
        config=config, centroids=km.centroids, mean=mean, std=std, extractor=extractor
    )
    return FitResult(tokenizer=tok, kmeans=km, frames_seen=seen, frames_used=frames.shape[0])

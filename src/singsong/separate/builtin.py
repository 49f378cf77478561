"""The builtin separator: the trained Open-Unmix-style masker behind the Separator interface."""

from __future__ import annotations

import os

import numpy as np
import torch

from singsong.checkpoint import load_pretrained, save_pretrained
from singsong.separate.base import Separation, Separator, apply_chunked, check_mixture
from singsong.separate.model import UnmixConfig, UnmixModel

KIND = "separator"
VERSION = "1"


class BuiltinSeparator(Separator):
    name = "builtin"

    def __init__(
        self,
        model: UnmixModel,
        *,
        version: str = VERSION,
        segment_seconds: float = 30.0,
        overlap_seconds: float = 2.0,
    ) -> None:
        self.model = model.eval()
        self.version = version
        self.segment = int(segment_seconds * self.sample_rate)
        self.overlap = int(overlap_seconds * self.sample_rate)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **kwargs: float) -> BuiltinSeparator:
        config, state, meta = load_pretrained(path, kind=KIND, config_cls=UnmixConfig)
        model = UnmixModel(config)
        model.load_state_dict(state, strict=True)
        return cls(model, version=str(meta.get("version", VERSION)), **kwargs)

    def save_pretrained(self, path: str | os.PathLike[str], *, extra: dict | None = None) -> None:
        save_pretrained(
            path,
            kind=KIND,
            version=self.version,
            config=self.model.config,
            state_dict=self.model.state_dict(),
            extra=extra,
        )

    def separate(self, mixture: np.ndarray) -> Separation:
        mixture = check_mixture(mixture)
        out = apply_chunked(self._run, mixture, segment=self.segment, overlap=self.overlap)
        return Separation(out[0], out[1])

    @torch.inference_mode()
    def _run(self, chunk: np.ndarray) -> np.ndarray:
        n_fft = self.model.config.n_fft
        n = chunk.shape[-1]
        x = torch.from_numpy(np.pad(chunk, (0, max(0, n_fft - n))))[None]  # [1, N]
        sources, _ = self.model(x)  # [1, 2, N]
        return sources[0, :, :n].numpy()

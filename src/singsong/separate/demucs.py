"""Demucs (Défossez et al.) as a separator, from a local weights file: an optional extra.

Demucs models are stereo at 44.1 kHz with four sources; singsong's audio is mono 16 kHz. The
mixture is resampled and duplicated to stereo, separated, and the ``vocals`` source becomes the
vocals while the other sources sum to the instrumental; both come back as mono 16 kHz.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from singsong.audio import resample
from singsong.errors import SingsongError
from singsong.separate.base import Separation, Separator, check_mixture


class DemucsSeparator(Separator):
    name = "demucs"

    def __init__(self, model: Any, *, version: str, shifts: int = 0, overlap: float = 0.25) -> None:
        if "vocals" not in list(model.sources):
            raise SingsongError(f"this Demucs model has no vocals source: {model.sources}")
        self.model = model.eval()
        self.version = version
        self.shifts = shifts
        self.overlap = overlap

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> DemucsSeparator:
        """Load a Demucs model package (a ``.th`` file saved by Demucs) from a local path."""
        try:
            from demucs.states import load_model
        except ImportError:
            raise SingsongError(
                "the demucs separator needs Demucs: pip install 'singsong[demucs]'"
            ) from None
        if not os.path.isfile(path):
            raise SingsongError(f"Demucs weights not found: {path}")
        import torch

        package = torch.load(path, map_location="cpu", weights_only=False)  # Demucs's own format
        return cls(load_model(package), version=os.path.basename(os.fspath(path)))

    def separate(self, mixture: np.ndarray) -> Separation:
        import torch
        from demucs.apply import apply_model

        mixture = check_mixture(mixture)
        rate = int(self.model.samplerate)
        x = resample(mixture, self.sample_rate, rate)
        stereo = np.stack([x] * int(self.model.audio_channels))  # [C, N]
        with torch.inference_mode():
            out = apply_model(
                self.model,
                torch.from_numpy(stereo)[None],
                shifts=self.shifts,
                split=True,
                overlap=self.overlap,
            )[0]  # [S, C, N]
        sources = list(self.model.sources)
        vocals = out[sources.index("vocals")].mean(0).numpy()
        others = [out[i].mean(0).numpy() for i, s in enumerate(sources) if s != "vocals"]
        back = [
            resample(np.asarray(a, dtype=np.float32), rate, self.sample_rate)[: len(mixture)]
            for a in (vocals, np.sum(others, axis=0))
        ]
        back = [np.pad(a, (0, len(mixture) - len(a))) for a in back]
        return Separation(back[0], back[1])

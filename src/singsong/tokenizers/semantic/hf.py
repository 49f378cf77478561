"""The ``transformers`` feature backend: a HuBERT / wav2vec2(-BERT) / MERT-style model's hidden
layer, pooled to 25 Hz.

The model is read from a local folder only (``local_files_only=True``; a hub id is refused before
transformers sees it), so nothing is fetched at run time. ``transformers`` is imported lazily:
install it with ``pip install 'singsong[hf]'``.

Frame alignment: audio is resampled to the model's rate and, for models with a convolutional
front end (stride ``S``, receptive field ``R``), padded by ``(R - S) / 2`` on the left and enough
on the right that model frame ``j`` is centred on the middle of ``[S j, S (j + 1))``. Each 25 Hz
frame ``t`` then averages the model frames centred inside ``[40 t, 40 (t + 1))`` ms: exactly two
for a 50 Hz model, three for a 75 Hz one (MERT at 24 kHz). A 25 Hz frame with no model frame
inside (models slower than 25 Hz) takes the nearest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singsong.audio import resample
from singsong.errors import SingsongError
from singsong.tokenizers.semantic.features import HOP_LENGTH, SAMPLE_RATE, FeatureExtractor

EXTRA = "hf"


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise SingsongError(
            f"the transformers semantic backend needs the {EXTRA!r} extra: "
            f"pip install 'singsong[{EXTRA}]'"
        ) from None
    return transformers


@dataclass(frozen=True)
class HFFeatureConfig:
    model_path: str  # a local folder written by save_pretrained (config.json + weights)
    layer: int = 6  # 0 = the input of the first transformer layer
    trust_remote_code: bool = False  # MERT ships its model code in the folder


class HFFeatures(FeatureExtractor):
    """Hidden layer ``layer`` of a local transformers audio model, pooled to 25 Hz."""

    name = "transformers"
    version = "1"
    # Attention cost grows with the square of the length: 30 s segments, 1 s of context.
    segment_hops = 750
    context_hops = 25

    def __init__(self, *, config: HFFeatureConfig) -> None:
        self.config = config
        path = Path(config.model_path).expanduser()
        if not path.is_dir() or not (path / "config.json").is_file():
            raise SingsongError(
                f"no transformers model at {path}: give the local folder of a HuBERT, wav2vec2 "
                "or MERT-style model (with config.json and weights); nothing is downloaded"
            )
        transformers = import_transformers()
        remote = config.trust_remote_code
        try:
            model = transformers.AutoModel.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=remote
            )
        except (OSError, ValueError, KeyError) as e:
            raise SingsongError(f"cannot load a transformers model from {path}: {e}") from None
        self.model = model.eval()
        try:
            self.processor: Any = transformers.AutoFeatureExtractor.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=remote
            )
        except (OSError, ValueError, KeyError):
            self.processor = None  # raw waveform input at 16 kHz, as HuBERT/wav2vec2 expect
        self.model_rate = int(getattr(self.processor, "sampling_rate", SAMPLE_RATE))
        mcfg = self.model.config
        n_layers = int(getattr(mcfg, "num_hidden_layers", 0))
        if not 0 <= config.layer <= n_layers:
            raise SingsongError(f"layer must be between 0 and {n_layers}, got {config.layer}")
        self.dim = int(mcfg.hidden_size)
        self.groups = (("hidden", self.dim),)
        kernels = getattr(mcfg, "conv_kernel", None)
        strides = getattr(mcfg, "conv_stride", None)
        self.stride = self.field = 0
        if kernels and strides:
            self.stride = math.prod(strides)
            self.field = 1 + sum((k - 1) * math.prod(strides[:i]) for i, k in enumerate(kernels))

    def _model_frames(self, x: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """x [B, N] at the model rate -> (hidden [B, F, D], frame centres in samples [F])."""
        n = x.shape[1]
        left = right = 0
        if self.stride:
            left = (self.field - self.stride) // 2
            right = self.field - self.stride - left + (-n % self.stride)
        x = np.pad(x, ((0, 0), (left, right)))
        if self.processor is not None:
            inputs = dict(
                self.processor(list(x), sampling_rate=self.model_rate, return_tensors="pt")
            )
        else:
            inputs = {"input_values": torch.from_numpy(x)}
        out = self.model(**inputs, output_hidden_states=True)
        hidden = out.hidden_states[self.config.layer].float()  # [B, F, D]
        frames = hidden.shape[1]
        if self.stride and frames == math.ceil(n / self.stride):
            centres = self.stride * (np.arange(frames) + 0.5)
        else:  # no conv front end we know of: assume the frames tile the input evenly
            centres = (np.arange(frames) + 0.5) * n / max(frames, 1)
        return hidden, centres

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        total = wav.shape[1] // HOP_LENGTH
        x = wav.numpy()
        if self.model_rate != SAMPLE_RATE:
            x = resample(x, SAMPLE_RATE, self.model_rate)  # [B, N'] (rows as channels)
        hidden, centres = self._model_frames(np.ascontiguousarray(x, dtype=np.float32))
        # Pooling matrix [T, F]: 25 Hz frame t averages the model frames centred inside it.
        index = np.floor(centres / self.model_rate * SAMPLE_RATE / HOP_LENGTH).astype(np.int64)
        pool = torch.zeros(total, hidden.shape[1])
        inside = (index >= 0) & (index < total)
        pool[torch.from_numpy(index[inside]), torch.from_numpy(np.flatnonzero(inside))] = 1.0
        empty = (pool.sum(1) == 0).nonzero().flatten()
        if len(empty) and hidden.shape[1]:
            t_centres = (empty.numpy() + 0.5) * HOP_LENGTH / SAMPLE_RATE * self.model_rate
            nearest = np.abs(centres[None] - t_centres[:, None]).argmin(1)
            pool[empty, torch.from_numpy(nearest)] = 1.0
        pool = pool / pool.sum(1, keepdim=True).clamp(min=1.0)
        return torch.einsum("tf,bfd->btd", pool, hidden)  # [B, T, D]

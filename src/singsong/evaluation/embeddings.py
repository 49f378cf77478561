"""Audio embeddings for the Fréchet Audio Distance, behind one small typed interface.

- ``musicfeat`` (default, offline, no weights): per 0.96 s window (hop 0.48 s), the mean and
  standard deviation of 64 log-mel bands, of a 12-bin log chroma and of the onset strength
  (154 numbers). It is fixed and deterministic, so distances are comparable across runs and
  machines, and it is music-aware: the mel statistics see timbre and dynamics, the chroma sees
  harmony (an out-of-key band moves it), the onset statistics see rhythm density. It is not a
  learned perceptual space, so its absolute values do not compare with published VGGish FADs;
  benchmarks/eval_fad_sanity.py measures that it ranks real audio above degraded audio.
- ``vggish``: the paper's embedding. The network (VGGish, Hershey et al. 2017) is rebuilt here in
  torch with the parameter names of the widely used torch port (harritaylor/torchvggish), and its
  weights file (``vggish-10086976.pth``) is read from a local path. The packaged ports download
  their weights at run time or need torchaudio, which has no build for our torch.
- ``clap``: LAION-CLAP audio embeddings through ``transformers`` (``ClapModel``) from a local
  folder saved with ``save_pretrained`` (e.g. ``laion/larger_clap_music``); extra ``hf``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import FloatArray, resample, sliding_windows
from singsong.errors import SingsongError
from singsong.evaluation.analysis import require

__all__ = ["EMBEDDINGS", "ClapEmbedding", "Embedding", "MusicFeatures", "VGGish", "load_embedding"]

EMBEDDINGS = ("musicfeat", "vggish", "clap")


class Embedding(ABC):
    """Audio -> a sequence of embedding vectors. Input is always mono float32 [T] at 16 kHz;
    a backend that wants another rate resamples inside."""

    name: str
    version: str
    dim: int

    @abstractmethod
    def embed(self, wav: FloatArray) -> FloatArray:
        """[T] at 16 kHz -> [frames, dim] (frames >= 1 for any input of 1 s or more)."""


class MusicFeatures(Embedding):
    """The offline default: log-mel, chroma and onset statistics per 0.96 s window."""

    name = "musicfeat"
    version = "1"
    dim = 154
    WINDOW = 48  # frames of 20 ms: 0.96 s, as VGGish
    HOP = 24

    def embed(self, wav: FloatArray) -> FloatArray:
        librosa = require("librosa")

        from singsong.evaluation.analysis import HOP, _chroma, _salience

        x = np.asarray(wav, dtype=np.float32)
        mel = librosa.feature.melspectrogram(
            y=x, sr=SAMPLE_RATE, n_fft=1024, hop_length=HOP, n_mels=64, fmin=30.0
        )
        logmel = np.log(mel + 1e-6)  # [64, F]
        salience = _salience(x) if np.any(x) else np.zeros((84, logmel.shape[1]), np.float32)
        chroma = np.log(_chroma(salience) + 1e-3)  # [12, F]
        onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=SAMPLE_RATE)
        f = min(logmel.shape[1], chroma.shape[1], onset.shape[0])
        feats = np.concatenate([logmel[:, :f], chroma[:, :f], onset[None, :f]])  # [77, F]
        w = sliding_windows(feats, self.WINDOW, self.HOP)  # [77, n, 48]
        out = np.concatenate([w.mean(-1), w.std(-1)]).T  # [n, 154]
        return out.astype(np.float32)


def _vggish_network() -> Any:
    """VGGish in torch, parameter names as in harritaylor/torchvggish (strict load)."""
    from torch import nn

    class VGGishNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            c = 1
            for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    assert isinstance(v, int)
                    layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                    c = v
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(
                nn.Linear(512 * 4 * 6, 4096),
                nn.ReLU(True),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Linear(4096, 128),
                nn.ReLU(True),
            )

        def forward(self, x: Any) -> Any:  # [B, 1, 96, 64] log-mel patches
            x = self.features(x)  # [B, 512, 6, 4]
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF's channels-last flattening
            return self.embeddings(x)  # [B, 128]

    return VGGishNet()


def _vggish_mel_matrix(
    bins: int = 257, bands: int = 64, lo: float = 125.0, hi: float = 7500.0
) -> np.ndarray:
    """VGGish's mel weights [bins, bands]: triangles spaced and shaped on the HTK mel scale
    (as TF's ``mel_features.spectrogram_to_mel_matrix``), no area normalisation, DC dropped."""

    def mel(hz: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bins_mel = mel(np.linspace(0.0, SAMPLE_RATE / 2, bins))  # [bins]
    edges = np.linspace(mel(np.array(lo)), mel(np.array(hi)), bands + 2)  # [bands + 2]
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # [bands] each
    up = (bins_mel[:, None] - lower) / (center - lower)
    down = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(up, down))  # [bins, bands]
    weights[0, :] = 0.0
    return weights


def vggish_log_mel(wav: FloatArray) -> FloatArray:
    """VGGish's input: 25 ms periodic-Hann STFT every 10 ms (FFT 512), 64 HTK mel bands from
    125 to 7500 Hz, log(mel + 0.01), cut into 0.96 s patches -> [n, 96, 64]."""
    x = np.asarray(wav, dtype=np.float64)
    win, hop = 400, 160
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    frames = sliding_windows(x, win, hop)  # [F, 400]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    spec = np.abs(np.fft.rfft(frames * window, n=512))  # [F, 257]
    logmel = np.log(spec @ _vggish_mel_matrix() + 0.01)  # [F, 64]
    patches = sliding_windows(logmel.T, 96, 96)  # [64, n, 96]
    return patches.transpose(1, 2, 0).astype(np.float32)  # [n, 96, 64]


class VGGish(Embedding):
    """VGGish embeddings (128-d per 0.96 s, before the PCA/quantisation post-processing, which
    FAD implementations skip) from a local weights file."""

    name = "vggish"
    version = "1"
    dim = 128

    def __init__(self, weights: str | os.PathLike[str]) -> None:
        import torch

        if not os.path.isfile(weights):
            raise SingsongError(
                f"VGGish weights not found: {weights} (give the path of vggish-10086976.pth, "
                "the torchvggish port's weights file)"
            )
        self.net = _vggish_network().eval()
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, KeyError) as e:
            raise SingsongError(f"{weights} is not a VGGish state dict: {e}") from None

    def embed(self, wav: FloatArray) -> FloatArray:
        import torch

        patches = torch.from_numpy(vggish_log_mel(wav))[:, None]  # [n, 1, 96, 64]
        with torch.inference_mode():
            return self.net(patches).numpy().astype(np.float32)  # [n, 128]


class ClapEmbedding(Embedding):
    """CLAP audio embeddings from a local ``transformers`` model: one per window of the model's
    input length (10 s for the LAION checkpoints), hop half a window."""

    name = "clap"
    version = "1"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not os.path.isdir(path):
            raise SingsongError(f"CLAP model folder not found: {path} (a save_pretrained folder)")
        try:
            from transformers import ClapFeatureExtractor, ClapModel
        except ImportError:
            raise SingsongError(
                "the clap embedding needs transformers: pip install 'singsong[hf]'"
            ) from None
        try:
            self.model = ClapModel.from_pretrained(str(path), local_files_only=True).eval()
            self.extractor = ClapFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise SingsongError(f"cannot load a CLAP model from {path}: {e}") from None
        self.dim = int(self.model.config.projection_dim)

    def embed(self, wav: FloatArray) -> FloatArray:
        import torch

        sr = int(self.extractor.sampling_rate)
        x = resample(np.asarray(wav, dtype=np.float32), SAMPLE_RATE, sr)
        # Windows of exactly the extractor's input length: longer input would be cropped at
        # random ("rand_trunc"/"fusion"), which would make the embedding non-deterministic.
        size = int(self.extractor.nb_max_samples)
        hop = size // 2
        chunks = list(sliding_windows(x, size, hop)) if x.size > size else [x]
        fusion = bool(getattr(self.model.config.audio_config, "enable_fusion", False))
        inputs = self.extractor(
            chunks,
            sampling_rate=sr,
            return_tensors="pt",
            truncation="fusion" if fusion else "rand_trunc",  # the model's input layout
        )
        with torch.inference_mode():
            out = self.model.get_audio_features(**inputs)
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output
        return emb.numpy().astype(np.float32)  # [n, dim]


def load_embedding(name: str, path: str | os.PathLike[str] | None = None) -> Embedding:
    """An embedding by name; ``vggish`` and ``clap`` need ``path`` (local weights)."""
    if name == "musicfeat":
        return MusicFeatures()
    if name in ("vggish", "clap"):
        if path is None:
            what = "vggish-10086976.pth" if name == "vggish" else "a save_pretrained CLAP folder"
            raise SingsongError(f"the {name} embedding needs --weights PATH ({what})")
        return VGGish(path) if name == "vggish" else ClapEmbedding(path)
    raise SingsongError(f"unknown embedding {name!r}; choose {', '.join(EMBEDDINGS)}")

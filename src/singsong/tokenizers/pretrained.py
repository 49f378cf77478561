"""Pretrained third-party codecs (DAC, EnCodec) read from a local folder, behind :class:`Tokenizer`.

The folder is what ``transformers``' ``save_pretrained`` writes (``config.json`` with a
``model_type`` + weights), e.g. a local copy of ``descript/dac_16khz`` (12 x 1024 codes at 50 Hz,
hop 320, 16 kHz: the SoundStream layout of the paper) or ``facebook/encodec_24khz`` (75 Hz at
24 kHz). Nothing is downloaded: the path must be an existing folder and loading runs with
``local_files_only=True``. ``transformers`` is an optional extra, imported only here and lazily.

Both wrappers apply the frame rule of :mod:`singsong.tokenizers.base` themselves instead of
trusting the model's padding: the input is zero-padded to whole hops, the model's frames are
trimmed/padded to ``ceil(N / hop)`` and decoding ``T`` frames returns exactly ``T * hop`` samples.

``version`` is a hash of the model's weights and architecture (not of the folder name), so tokens
written with one set of weights refuse to load under another, wherever the folder is copied.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from singsong.checkpoint import read_json_object
from singsong.errors import SingsongError
from singsong.tokenizers.base import Tokenizer, as_batch, check_codes

__all__ = ["DacTokenizer", "EncodecTokenizer", "read_hf_config"]

HF_EXTRA = "pip install 'singsong[hf]'"
# config.json keys that change when the same weights are re-saved, so they stay out of the version.
_VOLATILE_KEYS = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def read_hf_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``path/config.json`` of a transformers model folder, with clear errors."""
    folder = Path(path)
    if not folder.exists():
        raise SingsongError(f"model folder not found: {folder}")
    if not folder.is_dir():
        raise SingsongError(f"expected a model folder, but {folder} is a file")
    config = folder / "config.json"
    if not config.is_file():
        raise SingsongError(f"not a model folder (no config.json): {folder}")
    return read_json_object(config)


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise SingsongError(
            f"pretrained DAC/EnCodec codecs need the 'transformers' package: {HF_EXTRA}"
        ) from None
    return transformers


def _weights_version(folder: Path, meta: dict[str, Any]) -> str:
    """sha256 prefix of the architecture config and every weights file: identifies the codes."""
    digest = hashlib.sha256()
    stable = {k: v for k, v in meta.items() if k not in _VOLATILE_KEYS}
    digest.update(json.dumps(stable, sort_keys=True).encode())
    weights = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    if not weights:
        raise SingsongError(f"no weights (*.safetensors or *.bin) in model folder {folder}")
    for p in weights:
        digest.update(p.name.encode())
        with p.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _load_model(path: str | os.PathLike[str], model_type: str, cls_name: str) -> tuple[Any, str]:
    """-> (model in eval mode, version). Refuses a folder holding another kind of model."""
    folder = Path(path).resolve()
    meta = read_hf_config(folder)
    found = meta.get("model_type")
    if found != model_type:
        what = f"a {found!r} model" if found else "no transformers model_type"
        raise SingsongError(f"{folder} holds {what}, not a {model_type!r} codec")
    version = _weights_version(folder, meta)
    transformers = _import_transformers()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # ours is the only progress bar shown
    try:
        # An absolute path to an existing folder plus local_files_only: never a hub lookup.
        model = getattr(transformers, cls_name).from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # transformers and safetensors raise many error types
        raise SingsongError(f"cannot load the {model_type} model in {folder}: {e}") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    model.eval()
    return model, version


def _fit_frames(codes: torch.Tensor, frames: int) -> torch.Tensor:
    """Trim codes [B, K, T'] to [B, K, frames], or pad them by repeating the last frame (a
    model's own padding may leave it a frame short or long of the frame rule)."""
    t = codes.shape[-1]
    if t >= frames:
        return codes[..., :frames]
    if t == 0:
        raise SingsongError(f"the codec returned no frames for {frames} expected")
    return torch.cat([codes, codes[..., -1:].expand(*codes.shape[:-1], frames - t)], dim=-1)


def _fit_samples(wav: torch.Tensor, samples: int) -> torch.Tensor:
    """Trim or zero-pad wav [B, N'] to [B, samples]."""
    n = wav.shape[-1]
    return wav[..., :samples] if n >= samples else torch.nn.functional.pad(wav, (0, samples - n))


class _HFCodec(Tokenizer):
    """Shared encode/decode plumbing; subclasses call the model's own encode/decode."""

    def __init__(self, *, model: Any, name: str, version: str, sample_rate: int, hop: int) -> None:
        self.model = model
        self.name = name
        self.version = version
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop)

    @property
    def can_decode(self) -> bool:
        return True

    @property
    def _param(self) -> torch.Tensor:
        return next(self.model.parameters())

    def _encode_codes(self, wav: torch.Tensor) -> torch.Tensor:
        """float [B, 1, N] (N a multiple of hop) on the model's device -> codes [B, K, T']."""
        raise NotImplementedError

    def _decode_wav(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K', T] on the model's device -> wav [B, N']."""
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        batch = as_batch(wav, hop_length=self.hop_length)  # [B, N'] whole hops
        frames = batch.shape[-1] // self.hop_length
        p = self._param
        codes = self._encode_codes(batch[:, None].to(device=p.device, dtype=p.dtype))
        codes = _fit_frames(codes.long(), frames)  # [B, K, ceil(N / hop)]
        return codes.to(wav.device)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = check_codes(
            codes, num_codebooks=self.num_codebooks, codebook_size=self.codebook_size
        )  # [B, K', T]
        frames = codes.shape[-1]
        if frames == 0:
            return torch.zeros(codes.shape[0], 0, device=codes.device)
        wav = self._decode_wav(codes.to(self._param.device)).float()  # [B, N']
        return _fit_samples(wav, frames * self.hop_length).to(codes.device)  # [B, T * hop]


class DacTokenizer(_HFCodec):
    """Descript Audio Codec (transformers ``DacModel``); ``dac_16khz``: 12 x 1024 at 50 Hz.

    Decoding from the first ``K'`` levels sums only those quantizers, as the RVQ is trained to
    allow (quantizer dropout), so coarse codes alone give audio.
    """

    def __init__(self, *, model: Any, version: str) -> None:
        cfg = model.config
        super().__init__(
            model=model,
            name="dac",
            version=version,
            sample_rate=cfg.sampling_rate,
            hop=cfg.hop_length,
        )
        self.num_codebooks = int(cfg.n_codebooks)
        self.codebook_size = int(cfg.codebook_size)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
    ) -> DacTokenizer:
        model, version = _load_model(path, "dac", "DacModel")
        return cls(model=model.to(device), version=version)

    def _encode_codes(self, wav: torch.Tensor) -> torch.Tensor:
        out = self.model.encode(wav, return_dict=True)
        return out.audio_codes  # [B, K, T']

    def _decode_wav(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.model.decode(audio_codes=codes, return_dict=True)
        return out.audio_values  # [B, N']


class EncodecTokenizer(_HFCodec):
    """EnCodec (transformers ``EncodecModel``), e.g. ``encodec_24khz`` (75 Hz, up to 32 levels).

    ``bandwidth`` (kbps, one of the model's ``target_bandwidths``) sets the number of levels; the
    default is 6 kbps when the model offers it (8 levels for the 24 kHz model, the usual choice
    for language models), else its largest. Only whole-clip, mono models without per-chunk
    loudness scales are accepted: a chunked model (48 kHz) encodes overlapping chunks whose frames
    do not follow the frame rule, and a normalizing one keeps a scale outside the codes.
    """

    DEFAULT_BANDWIDTH = 6.0

    def __init__(self, *, model: Any, version: str, bandwidth: float | None = None) -> None:
        cfg = model.config
        if cfg.audio_channels != 1 or cfg.chunk_length_s is not None or cfg.normalize:
            raise SingsongError(
                "only mono EnCodec models that encode whole clips without normalization "
                "(like encodec_24khz) are supported; this one has "
                f"audio_channels={cfg.audio_channels}, chunk_length_s={cfg.chunk_length_s}, "
                f"normalize={cfg.normalize}"
            )
        offered = [float(b) for b in cfg.target_bandwidths]
        if bandwidth is None:
            bandwidth = (
                self.DEFAULT_BANDWIDTH if self.DEFAULT_BANDWIDTH in offered else max(offered)
            )
        if float(bandwidth) not in offered:
            raise SingsongError(f"EnCodec bandwidth {bandwidth} kbps is not one of {offered}")
        super().__init__(
            model=model,
            name="encodec",
            version=version,
            sample_rate=cfg.sampling_rate,
            hop=cfg.hop_length,
        )
        self.bandwidth = float(bandwidth)
        self.num_codebooks = int(model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth))
        self.codebook_size = int(cfg.codebook_size)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        bandwidth: float | None = None,
        device: str | torch.device = "cpu",
    ) -> EncodecTokenizer:
        model, version = _load_model(path, "encodec", "EncodecModel")
        return cls(model=model.to(device), version=version, bandwidth=bandwidth)

    def _encode_codes(self, wav: torch.Tensor) -> torch.Tensor:
        out = self.model.encode(wav, bandwidth=self.bandwidth, return_dict=True)
        return out.audio_codes[0]  # [chunks=1, B, K, T'] -> [B, K, T']

    def _decode_wav(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.model.decode(codes[None], [None], return_dict=True)  # one chunk, no scale
        return out.audio_values[:, 0]  # [B, 1, N'] -> [B, N']

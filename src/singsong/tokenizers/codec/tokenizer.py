"""The codec behind the :class:`~singsong.tokenizers.base.Tokenizer` interface, and its
release artifact (``config.json`` + ``model.safetensors``, kind ``"codec"``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from singsong.checkpoint import load_pretrained, save_pretrained
from singsong.errors import SingsongError
from singsong.tokenizers.base import Tokenizer, as_batch, check_codes
from singsong.tokenizers.codec.model import Codec, CodecConfig

KIND = "codec"
FORMAT = "1"  # bump when the meaning of the weights changes (architecture, transforms)


def weights_digest(model: Codec) -> str:
    """First 12 hex digits of a sha256 over the state dict (names, shapes, fp32 values)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


class CodecTokenizer(Tokenizer):
    """16 kHz audio <-> 50 Hz codes ``[B, 12, T]`` of 1024 values (the first ``n`` levels decode).

    ``version`` names the codes (``FORMAT-digest`` of the weights that first wrote them): codes
    only mean something to the codec that wrote them, so token files record it and refuse to
    load under another. ``singsong codec finetune`` changes only the decoder and keeps it.
    """

    name = "singsong-codec"

    def __init__(self, model: Codec, *, version: str | None = None) -> None:
        self.model = model.eval()
        cfg = model.config
        self.config = cfg
        self.sample_rate = cfg.sample_rate
        self.hop_length = cfg.hop_length
        self.num_codebooks = cfg.num_quantizers
        self.codebook_size = cfg.codebook_size
        self.version = version or f"{FORMAT}-{weights_digest(model)}"

    @property
    def can_decode(self) -> bool:
        return True

    def _check_trained(self) -> None:
        if not self.model.initialized:
            raise SingsongError("this codec is untrained (its codebooks were never fitted)")

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, N] (or [B, 1, N], [N]) float at 16 kHz -> codes [B, 12, ceil(N / 320)]."""
        self._check_trained()
        x = as_batch(wav, hop_length=self.hop_length).float()  # [B, N'] whole hops
        return self.model.eval().encode(x).long()

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K', T] (the first K' <= 12 levels) -> wav [B, T * 320]."""
        self._check_trained()
        if torch.is_floating_point(codes):
            raise SingsongError(f"codes must be integers, got {codes.dtype}")
        codes = check_codes(
            codes, num_codebooks=self.num_codebooks, codebook_size=self.codebook_size
        )
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 0)
        return self.model.eval().decode(codes)

    def save_pretrained(
        self, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None
    ) -> Path:
        """Write the release artifact; ``dtype=torch.float16`` halves its size."""
        self._check_trained()
        return save_pretrained(
            directory,
            kind=KIND,
            version=self.version,
            config=self.config,
            state_dict=self.model.state_dict(),
            extra={"tokenizer": self.info.to_dict()},
            dtype=dtype,
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> CodecTokenizer:
        try:
            config, state, meta = load_pretrained(directory, kind=KIND, config_cls=CodecConfig)
        except ValueError as e:  # CodecConfig validation
            raise SingsongError(f"bad codec config in {directory}: {e}") from None
        version = meta.get("version")
        if not isinstance(version, str) or not version.startswith(f"{FORMAT}-"):
            raise SingsongError(f"{directory}: codec format {version!r} is not supported")
        model = Codec(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            detail = " ".join(first[:3])
            raise SingsongError(
                f"weights in {directory} do not match its config: {detail}"
            ) from None
        tok = cls(model, version=version)
        tok._check_trained()
        return tok

"""The acoustic codec: 16 kHz audio <-> 50 Hz x 12 levels x 1024 codes (6 kbps).

A SoundStream-style neural codec with a Vocos-style spectral decoder, trained here on CPU.
``CodecTokenizer.from_pretrained(path)`` loads a release artifact; training lives in
:mod:`singsong.tokenizers.codec.train` (``singsong codec train``).
"""

from singsong.tokenizers.codec.model import Codec, CodecConfig
from singsong.tokenizers.codec.tokenizer import CodecTokenizer

__all__ = ["Codec", "CodecConfig", "CodecTokenizer"]

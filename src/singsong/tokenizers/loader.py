"""``load_tokenizer(path)``: any tokenizer folder -> a :class:`Tokenizer`, chosen by its config.

Accepted folders:

- a singsong release artifact (``config.json`` with a ``"kind"``): ``"codec"`` (the acoustic
  codec trained here) or ``"semantic"`` (features + k-means fitted here);
- a transformers model folder whose ``model_type`` is ``"dac"`` or ``"encodec"`` (pretrained
  codecs; needs the ``hf`` extra).

Backends are imported by module path only when a folder needs them, so a missing optional
package (or a backend not built yet) matters only to the folders that use it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from singsong.errors import SingsongError
from singsong.tokenizers.base import Tokenizer
from singsong.tokenizers.pretrained import read_hf_config

__all__ = ["load_tokenizer"]

# kind in singsong's config.json -> (module, class) with a ``from_pretrained(path)`` classmethod
KINDS: dict[str, tuple[str, str]] = {
    "codec": ("singsong.tokenizers.codec", "CodecTokenizer"),
    "semantic": ("singsong.tokenizers.semantic", "SemanticTokenizer"),
}
# transformers model_type -> class in singsong.tokenizers.pretrained
MODEL_TYPES: dict[str, tuple[str, str]] = {
    "dac": ("singsong.tokenizers.pretrained", "DacTokenizer"),
    "encodec": ("singsong.tokenizers.pretrained", "EncodecTokenizer"),
}


def _accepted() -> str:
    kinds = ", ".join(repr(k) for k in KINDS)
    types = ", ".join(repr(t) for t in MODEL_TYPES)
    return (
        f"a singsong tokenizer folder (config.json with kind {kinds}) or a transformers "
        f"codec folder (config.json with model_type {types})"
    )


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Load the tokenizer stored in folder ``path`` (see the module docstring for what is accepted).

    Raises:
        SingsongError: the folder is missing, has no readable ``config.json``, holds something
            else, or its backend cannot be imported.
    """
    folder = Path(path)
    meta = read_hf_config(folder)  # same checks: exists, is a folder, has a JSON config
    if "kind" in meta:
        kind = meta["kind"]
        target = KINDS.get(kind) if isinstance(kind, str) else None
        if target is None:
            raise SingsongError(
                f"{folder} holds a singsong {kind!r} model, which is not a tokenizer; "
                f"expected {_accepted()}"
            )
    elif "model_type" in meta:
        target = MODEL_TYPES.get(meta["model_type"])
        if target is None:
            raise SingsongError(
                f"{folder} holds a transformers {meta['model_type']!r} model, which is not a "
                f"supported codec; expected {_accepted()}"
            )
    else:
        raise SingsongError(f"cannot tell what {folder} holds; expected {_accepted()}")
    module_name, class_name = target
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SingsongError(f"cannot load {folder}: {module_name} is unavailable ({e})") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise SingsongError(f"cannot load {folder}: {module_name} has no {class_name}")
    tokenizer = cls.from_pretrained(folder)
    if not isinstance(tokenizer, Tokenizer):
        raise SingsongError(f"{module_name}.{class_name} did not return a Tokenizer for {folder}")
    return tokenizer

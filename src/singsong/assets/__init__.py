"""What ships inside the package: the default model bundle and the example vocals.

``"default"`` names the bundled model wherever a model is asked for (``Accompanist.
from_pretrained("default")``, ``singsong accompany --model default``, ``singsong serve``); it is
read from this folder, so nothing is downloaded. Its card is ``default/MODEL_CARD.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

from singsong.errors import SingsongError

__all__ = ["DEFAULT_MODEL", "default_model_dir", "example_vocals", "resolve_model"]

DEFAULT_MODEL = "default"
_HERE = Path(__file__).resolve().parent


def default_model_dir() -> Path:
    """The bundled model's folder (``config``/weights per part plus ``singsong.json``)."""
    folder = _HERE / DEFAULT_MODEL
    if not (folder / "singsong.json").is_file():
        raise SingsongError(
            f"the bundled model is missing from {folder}: this singsong was installed without "
            "its package data; reinstall it, or pass --model PATH to a bundle folder"
        )
    return folder


def example_vocals() -> Path:
    """The example vocals (12 s of a held-out songbook song, licensed with the code)."""
    return _HERE / "examples" / "vocals.flac"


def resolve_model(model: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """``"default"`` -> the bundled model's folder; anything else unchanged."""
    return default_model_dir() if str(model) == DEFAULT_MODEL else model

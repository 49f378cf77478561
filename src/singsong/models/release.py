"""A stage model's release folder: ``config.json`` + ``model.safetensors`` (strict, weights
only) and the ``tokenizers.json`` that says whose codes it was trained on; config presets."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from singsong.checkpoint import load_pretrained, read_json_object, save_pretrained
from singsong.errors import SingsongError

__all__ = [
    "STAGE_TOKENIZERS_FILE",
    "check_transformer",
    "config_from_preset",
    "load_model",
    "read_stage_tokenizers",
    "save_model",
]

C = TypeVar("C")
M = TypeVar("M", bound=nn.Module)

FORMAT_VERSION = "1"
# in a stage release folder: the tokenizers whose codes the model was trained on (written by the
# trainer, checked when a bundle is assembled)
STAGE_TOKENIZERS_FILE = "tokenizers.json"


def read_stage_tokenizers(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A stage release's ``tokenizers.json``: role -> the tokenizer info its codes came from;
    a one-line error when it is missing (not a training release) or broken."""
    path = Path(folder) / STAGE_TOKENIZERS_FILE
    if not path.is_file():
        raise SingsongError(
            f"{path} is missing: cannot tell which tokenizers the model was trained on (not a "
            "training release: `singsong train` writes it into the release folder)"
        )
    return read_json_object(path)


def check_transformer(*, dim: int, heads: int, mlp: str) -> None:
    """A model config's transformer shape: ``dim`` splits into ``heads`` even-sized heads (rotary
    positions rotate channel pairs) and ``mlp`` is a known kind."""
    if dim % heads or (dim // heads) % 2:
        raise SingsongError(f"dim {dim} must split into {heads} even-sized heads")
    if mlp not in ("swiglu", "gelu"):
        raise SingsongError(f"mlp must be 'swiglu' or 'gelu', got {mlp!r}")


def config_from_preset(
    presets: Mapping[str, C], name: str, overrides: Mapping[str, Any], *, what: str
) -> C:
    """``presets[name]`` with ``overrides`` replaced; clear errors for unknown presets, fields."""
    if name not in presets:
        raise SingsongError(f"unknown {what} preset {name!r}; choose one of {list(presets)}")
    base = presets[name]
    if unknown := set(overrides) - {f.name for f in dataclasses.fields(base)}:  # type: ignore[arg-type]
        raise SingsongError(f"unknown {type(base).__name__} fields: {sorted(unknown)}")
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]


def save_model(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    kind: str,
    config: Any,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a stage model as a release artifact (``config.json`` + ``model.safetensors``);
    ``dtype=torch.float16`` halves the file (loading casts back to float32)."""
    return save_pretrained(
        directory, kind=kind, version=FORMAT_VERSION, config=config,
        state_dict=model.state_dict(), dtype=dtype,
    )  # fmt: skip


def load_model(
    directory: str | os.PathLike[str], *, kind: str, config_cls: type[C], build: Callable[[C], M]
) -> M:
    """Rebuild a stage model from its folder: strict config, strict weights, eval mode."""
    config, state, meta = load_pretrained(directory, kind=kind, config_cls=config_cls)
    if meta.get("version") != FORMAT_VERSION:
        raise SingsongError(
            f"{directory} holds a {kind} model of format {meta.get('version')!r}; "
            f"this singsong reads format {FORMAT_VERSION!r}"
        )
    model = build(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise SingsongError(f"the weights in {directory} do not fit its config: {e}") from None
    return model.eval()

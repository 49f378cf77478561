"""Release artifacts: a folder with ``config.json`` + ``model.safetensors``.

``config.json`` holds ``{"kind", "version", "config": asdict(cfg), ...extra}``; weights are
safetensors (no pickle). Loading rebuilds the frozen config dataclass strictly (an unknown or
missing field is an error) and callers load the weights with ``strict=True``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from singsong.audio import atomic_path, atomic_write
from singsong.errors import SingsongError

C = TypeVar("C")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_pretrained(
    directory: str | os.PathLike[str],
    *,
    kind: str,
    version: str,
    config: Any,
    state_dict: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``directory/{config.json, model.safetensors}`` atomically (each file)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
        os.chmod(tmp, 0o644)  # safetensors creates the file private (0600); weights are shareable
    meta = {"kind": kind, "version": version, "config": dataclasses.asdict(config)}
    meta |= extra or {}
    with atomic_write(directory / CONFIG_FILE) as f:
        json.dump(meta, f, indent=1)
    return directory


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object -> that dict; one-line errors when it does not."""
    try:
        out = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SingsongError(f"broken {path}: {e}") from None
    if not isinstance(out, dict):
        raise SingsongError(f"broken {path}: expected a JSON object")
    return out


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise SingsongError(f"not a model folder (no {CONFIG_FILE}): {directory}")
    return read_json_object(path)


def load_pretrained(
    directory: str | os.PathLike[str], *, kind: str, config_cls: type[C]
) -> tuple[C, dict[str, torch.Tensor], dict[str, Any]]:
    """-> (config, state_dict as float32 where floating, the whole config.json)."""
    meta = read_config(directory)
    if meta.get("kind") != kind:
        raise SingsongError(f"{directory} holds a {meta.get('kind')!r} model, not a {kind!r} one")
    try:
        config = config_cls(**meta["config"])
    except TypeError as e:
        msg = f"config of {directory} does not match {config_cls.__name__}: {e}"
        raise SingsongError(msg) from None
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise SingsongError(f"missing weights: {weights}")
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types
        raise SingsongError(f"broken weights file {weights}: {e}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return config, state, meta

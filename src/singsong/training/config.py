"""Training configuration (a frozen :class:`TrainConfig`, run presets per stage) and the builder
:func:`train_stage` that turns a run config and a token folder into a trained model.

A *run config* pairs a model config (``Stage1Config``, ``Stage2Config`` or ``RendererConfig``)
with a :class:`TrainConfig`. It comes from a preset name (``debug``, ``tiny``, ``small``) or a
JSON file::

    {"model": {"preset": "small", "dim": 384}, "train": {"steps": 50000, "lr": 3e-4}}

where ``model.preset`` (default ``small``) names the base model preset and the other keys
override its fields, and ``train`` overrides the same preset's :class:`TrainConfig`. Unknown
keys are errors, not silently ignored (see STYLE.md, "config with no schema").
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from singsong.audio import atomic_write
from singsong.errors import SingsongError
from singsong.models.release import STAGE_TOKENIZERS_FILE, read_stage_tokenizers
from singsong.models.renderer import RendererConfig
from singsong.models.stage1 import Stage1Config
from singsong.models.stage2 import Stage2Config
from singsong.tokenizers.base import TokenizerInfo
from singsong.tokenizers.token_dataset import read_token_meta

__all__ = [
    "STAGES",
    "TRAIN_PRESETS",
    "RunConfig",
    "TrainConfig",
    "load_run_config",
    "train_stage",
]

Precision = Literal["fp32", "bf16"]
STAGES = ("stage1", "stage2", "renderer")
ModelConfig = Stage1Config | Stage2Config | RendererConfig
_MODEL_CONFIGS: dict[str, type[ModelConfig]] = {
    "stage1": Stage1Config,
    "stage2": Stage2Config,
    "renderer": RendererConfig,
}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of one training run. Defaults = the ``small`` preset."""

    steps: int = 20_000
    batch_size: int = 32  # global: split evenly across DDP ranks
    window_seconds: float = 10.0  # a multiple of the tokenizers' common tick (1/25 s usually)
    lr: float = 3e-4
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at ``steps``
    weight_decay: float = 0.1  # on matrices only; norms/biases/embeddings are not decayed
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    eval_every: int = 500
    eval_batches: int = 20  # per rank
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    precision: Precision = "bf16"  # bf16 autocast where the device supports it, else fp32
    num_workers: int = 2

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every")
        for name in (*positive, "log_every"):
            if getattr(self, name) < 1:
                raise SingsongError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.window_seconds > 0 and math.isfinite(self.window_seconds)):
            raise SingsongError(f"window_seconds must be positive, got {self.window_seconds}")
        if not self.lr > 0:
            raise SingsongError(f"lr must be positive, got {self.lr}")
        if self.warmup_steps < 0 or self.num_workers < 0:
            raise SingsongError("warmup_steps and num_workers must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise SingsongError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise SingsongError("weight_decay and grad_clip must be >= 0")
        if self.precision not in ("fp32", "bf16"):
            raise SingsongError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise SingsongError(f"betas must be two numbers in [0, 1), got {self.betas}")
        object.__setattr__(self, "betas", tuple(self.betas))  # JSON gives a list

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` for optimizer step ``step`` (0-based): linear warm-up, cosine."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # seconds on a laptop CPU: short windows, no workers, fp32
    "debug": TrainConfig(
        steps=50,
        batch_size=4,
        window_seconds=0.4,
        lr=2e-3,
        warmup_steps=5,
        eval_every=25,
        eval_batches=2,
        checkpoint_every=25,
        log_every=5,
        precision="fp32",
        num_workers=0,
    ),
    # a CPU run of about an hour: 6 s windows (MIR-1K clips are 4-13 s), 8 windows a step
    "tiny": TrainConfig(
        steps=3000,
        batch_size=8,
        window_seconds=6.0,
        lr=1e-3,
        warmup_steps=200,
        eval_every=250,
        eval_batches=8,
        checkpoint_every=250,
        num_workers=0,
    ),
    "small": TrainConfig(),
}


@dataclass(frozen=True)
class RunConfig:
    """What ``singsong train`` needs besides data: the stage, its model config, the schedule."""

    stage: str
    model: ModelConfig
    train: TrainConfig


def _override(cls: type[Any], base: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - known):
        raise SingsongError(f"{where}: unknown {cls.__name__} fields {unknown}")
    try:
        return replace(base, **values)
    except TypeError as e:
        raise SingsongError(f"{where}: {e}") from None


def load_run_config(stage: str, spec: str | os.PathLike[str]) -> RunConfig:
    """``spec`` = a preset name (``debug``, ``tiny``, ``small``) or a JSON file (module doc)."""
    if stage not in STAGES:
        raise SingsongError(f"unknown stage {stage!r}; choose one of {list(STAGES)}")
    model_cls = _MODEL_CONFIGS[stage]
    if str(spec) in TRAIN_PRESETS:
        name = str(spec)
        return RunConfig(stage, model_cls.preset(name), TRAIN_PRESETS[name])
    path = Path(spec)
    if not path.is_file():
        raise SingsongError(
            f"--config {spec!r} is neither a preset ({list(TRAIN_PRESETS)}) nor a JSON file"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SingsongError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or set(data) - {"model", "train"}:
        raise SingsongError(f"{path}: expected an object with keys 'model' and/or 'train'")
    model = dict(data.get("model") or {})
    name = str(model.pop("preset", "small"))
    train_base = TRAIN_PRESETS.get(name, TRAIN_PRESETS["small"])
    model_cfg = model_cls.preset(name, **model)  # checks names and values
    train_cfg = _override(TrainConfig, train_base, dict(data.get("train") or {}), str(path))
    return RunConfig(stage, model_cfg, train_cfg)


def _token_infos(folder: Path) -> dict[str, TokenizerInfo]:
    """The tokenizers a token folder records (the run trusts the folder it is given; models
    are then sized to its vocabularies)."""
    return {role: TokenizerInfo(**i) for role, i in read_token_meta(folder)["tokenizers"].items()}


def _check_vocal_noise(config: Stage1Config, folders: Sequence[Path]) -> None:
    """A noisy-vocal stage 1 must train on noise of the SNR range its config records (the
    pipeline trusts that record), so the folders' ``vocals_noisy_*`` streams must match it."""
    if not config.vocal_noise:
        return
    want = [config.train_snr_min_db, config.train_snr_max_db]
    for folder in folders:
        spec = read_token_meta(folder)["streams"].get("vocals_noisy_semantic")
        if spec is None:
            raise SingsongError(
                f"{folder} has no noisy vocal streams; stage 1 with vocal_noise trains on them: "
                f"tokenize with --noise-snr {want[0]:g} {want[1]:g}, or set vocal_noise false"
            )
        if [float(x) for x in spec.get("noise_snr_db", [])] != want:
            raise SingsongError(
                f"{folder}: vocal noise at {spec.get('noise_snr_db')} dB SNR, but the stage-1 "
                f"config says {want}; set train_snr_min_db/train_snr_max_db to match"
            )


def _folders(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    folders = [Path(spec)] if isinstance(spec, str | os.PathLike) else [Path(f) for f in spec]
    if not folders:
        raise SingsongError("no token folder given")
    return folders


def train_stage(
    run: RunConfig,
    *,
    tokens: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    valid_tokens: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    resume: bool = False,
    init: str | os.PathLike[str] | None = None,
    semantic: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Train ``run.stage`` on token folders (see ``singsong train``); -> the release folder.

    ``tokens`` and ``valid_tokens``: one token folder or several, read as one dataset.
    ``init``: a released model of this stage to start from instead of random weights (fine-
    tuning: a fresh optimizer and schedule); its weights must fit the run's model (settings that
    change no weight, such as training aids, may differ) and it must have been trained on the
    same tokenizers. A resumed run's checkpoint takes precedence.
    ``semantic``: the semantic tokenizer release of the token folders, for a stage-1 config
    with ``semantic_features`` (its centroids become the model's feature table).
    ``stop_at``: stop after that step of the schedule (checkpointed, so ``resume`` continues
    the same run) and release the model as it is then.

    The model's codebook sizes are taken from the folder's tokenizers. Without
    ``valid_tokens`` the training folder is also validated on (the same windows each time), which
    measures fitting, not generalisation. ``device``: default CUDA if available, else CPU.
    """
    import torch

    from singsong.models.renderer import RendererModel
    from singsong.models.stage1 import Stage1Model
    from singsong.models.stage2 import Stage2Model
    from singsong.tokenizers.token_dataset import TokenDataset
    from singsong.training.trainer import (
        RELEASE_DIR,
        Trainer,
        close_distributed,
        init_distributed,
    )

    rank, world = init_distributed(device)
    train_folders = _folders(tokens)
    valid_folders = _folders(valid_tokens) if valid_tokens is not None else train_folders
    infos = _token_infos(train_folders[0])
    if "acoustic" not in infos:
        raise SingsongError(f"{tokens} has no acoustic tokens")
    acoustic = infos["acoustic"]
    torch.manual_seed(run.train.seed)  # reproducible initial weights
    model: Stage1Model | Stage2Model | RendererModel
    if isinstance(run.model, Stage1Config | RendererConfig):  # both write coarse codes of a plan
        if "semantic" not in infos:
            raise SingsongError(f"{tokens} has no semantic tokens ({run.stage} needs them)")
        expect = {"semantic": infos["semantic"], "acoustic": acoustic}
        config = replace(run.model, semantic_codebook_size=infos["semantic"].codebook_size,
                         acoustic_codebook_size=acoustic.codebook_size)  # fmt: skip
        needed = config.coarse_levels
        if isinstance(config, Stage1Config):
            _check_vocal_noise(config, train_folders + valid_folders)
            model = Stage1Model(config)
        else:
            model = RendererModel(config)
        if config.semantic_features and init is None:
            _semantic_table(model, semantic, infos["semantic"])
    else:
        assert isinstance(run.model, Stage2Config)
        expect = {"acoustic": acoustic}
        config2 = replace(run.model, acoustic_codebook_size=acoustic.codebook_size)
        needed = config2.coarse_levels + config2.fine_levels
        model = Stage2Model(config2)
    if acoustic.num_codebooks < needed:
        raise SingsongError(
            f"{tokens} has {acoustic.num_codebooks} acoustic levels; {run.stage} needs {needed}"
        )
    if init is not None:
        _init_weights(model, Path(init), expect)
    cfg = run.train
    streams = model.token_streams  # only what the model reads is opened
    train_set = TokenDataset(train_folders, expect=expect, streams=streams)
    valid_set = (
        TokenDataset(valid_folders, expect=expect, streams=streams) if valid_tokens else train_set
    )
    kw = {"seconds": cfg.window_seconds, "rank": rank, "world_size": world}
    trainer = Trainer(
        model=model,
        config=cfg,
        train_data=train_set.windows(seed=cfg.seed, shuffle=True, **kw),  # type: ignore[arg-type]
        # shuffled once, by a fixed seed (the same windows at every validation): in folder order
        # the first eval_batches batches would cover the first few songs only, and stage 1's
        # listening gap would pair each window with its neighbour of the same song and key
        valid_data=valid_set.windows(seed=cfg.seed, shuffle=True, **kw),  # type: ignore[arg-type]
        run_dir=out,
        device=device,
        progress=progress,
    )
    trainer.fit(resume=resume, stop_at=stop_at)
    release = Path(out) / RELEASE_DIR
    if rank == 0 and trainer.step < cfg.steps:  # stopped early on request: release it as is
        model.save_pretrained(release)
    if rank == 0 and (release / "model.safetensors").is_file():
        # which tokenizers' codes the model speaks: `singsong bundle` checks it
        with atomic_write(release / STAGE_TOKENIZERS_FILE) as f:
            json.dump({role: info.to_dict() for role, info in expect.items()}, f, indent=1)
    close_distributed()
    return release


def _init_weights(model: Any, release: Path, expect: dict[str, TokenizerInfo]) -> None:
    """Load a released stage model's weights into ``model`` (same tokenizers, weights of the
    same shapes). Settings that change no weight (training aids, attention modes) may differ:
    fine-tuning with them changed is the point of some runs; the differences are printed."""
    loaded = type(model).from_pretrained(release)
    diff = [
        f"{f.name} {getattr(loaded.config, f.name)!r} != {getattr(model.config, f.name)!r}"
        for f in fields(model.config)
        if getattr(loaded.config, f.name) != getattr(model.config, f.name)
    ]
    trained = read_stage_tokenizers(release)
    mine = {role: info.to_dict() for role, info in expect.items()}
    if trained != mine:
        raise SingsongError(
            f"--init {release} was trained on other tokenizers than these token folders' "
            f"({sorted(trained)}: {[t.get('version') for t in trained.values()]} vs "
            f"{[t.get('version') for t in mine.values()]})"
        )
    theirs, ours = loaded.state_dict(), model.state_dict()
    if theirs.keys() != ours.keys() or any(theirs[k].shape != ours[k].shape for k in ours):
        raise SingsongError(
            f"--init {release}: its weights do not fit the run's model ({'; '.join(diff)})"
        )
    model.load_state_dict(theirs, strict=True)
    if diff:
        print(f"--init {release}: fine-tuning with other settings ({'; '.join(diff)})",
              file=sys.stderr)  # fmt: skip


def _semantic_table(
    model: Any, semantic: str | os.PathLike[str] | None, info: TokenizerInfo
) -> None:
    """Fill a stage-1 model's semantic feature table from the tokens' semantic tokenizer."""
    from singsong.tokenizers.semantic.tokenizer import SemanticTokenizer

    if semantic is None:
        raise SingsongError(
            "this stage-1 config has semantic_features: give the token folders' semantic "
            "tokenizer (--semantic RELEASE)"
        )
    tok = SemanticTokenizer.from_pretrained(semantic)
    if tok.info.to_dict() != info.to_dict():
        raise SingsongError(
            f"--semantic {semantic} is {tok.info.name} {tok.info.version}, but the token "
            f"folders' semantic codes are {info.name} {info.version}"
        )
    model.set_semantic_features(tok.centroids)

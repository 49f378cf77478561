"""Training the stage models: one generic loop (:class:`Trainer`) and its config."""

from singsong.training.config import RunConfig, TrainConfig, load_run_config, train_stage
from singsong.training.trainer import Trainer, init_distributed

__all__ = [
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "init_distributed",
    "load_run_config",
    "train_stage",
]

"""The SingSong stage models: vocals -> instrumental semantic + coarse codes -> fine codes (or:
vocals -> semantic codes (a planner) -> coarse codes (a renderer) -> fine codes).

Layouts of the code sequences are in :mod:`singsong.models.codes`, the shared encoder-decoder in
:mod:`singsong.models.seq2seq`, vocal noise in :mod:`singsong.models.noise`.
"""

from singsong.models.codes import Codes
from singsong.models.renderer import RendererConfig, RendererModel
from singsong.models.sampling import SamplingParams
from singsong.models.seq2seq import LossOutput
from singsong.models.stage1 import Stage1Config, Stage1Model
from singsong.models.stage2 import Stage2Config, Stage2Model

__all__ = [
    "Codes",
    "LossOutput",
    "RendererConfig",
    "RendererModel",
    "SamplingParams",
    "Stage1Config",
    "Stage1Model",
    "Stage2Config",
    "Stage2Model",
]

"""Neural-network building blocks shared by the models (no model assembly here)."""

from singsong.modules.conv import ConvNeXtBlock1d, ResidualUnit1d, UpsampleBlock1d
from singsong.modules.quantize import ResidualVQ
from singsong.modules.spectral import istft_same, stft_same

__all__ = [
    "ConvNeXtBlock1d",
    "ResidualUnit1d",
    "ResidualVQ",
    "UpsampleBlock1d",
    "istft_same",
    "stft_same",
]

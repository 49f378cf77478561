"""The semantic tokenizer: 25 Hz codes, k-means clusters of frame features (see ``tokenizer``).

Backends: ``music`` (offline pitch / chroma / mel / onset features, the default) and
``transformers`` (a local HuBERT / wav2vec2 / MERT-style model; ``pip install 'singsong[hf]'``).
"""

from singsong.tokenizers.semantic.features import (
    FeatureExtractor,
    MusicFeatureConfig,
    MusicFeatures,
)
from singsong.tokenizers.semantic.hf import HFFeatureConfig, HFFeatures
from singsong.tokenizers.semantic.kmeans import assign, fit_kmeans
from singsong.tokenizers.semantic.tokenizer import (
    FitResult,
    SemanticConfig,
    SemanticTokenizer,
    fit_semantic,
)

__all__ = [
    "FeatureExtractor",
    "FitResult",
    "HFFeatureConfig",
    "HFFeatures",
    "MusicFeatureConfig",
    "MusicFeatures",
    "SemanticConfig",
    "SemanticTokenizer",
    "assign",
    "fit_kmeans",
    "fit_semantic",
]

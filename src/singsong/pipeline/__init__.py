"""The accompany pipeline: vocals -> instrumental + mix, window by window.

``Accompanist.from_pretrained(path).accompany(wav, sr, takes=2, seed=0)``; ``path`` is a model
bundle folder (:mod:`singsong.pipeline.bundle`) or ``"debug"`` (tiny, untrained, for tests).
"""

from singsong.pipeline.accompanist import (
    Accompaniment,
    Accompanist,
    Take,
    WindowCodes,
    plan_windows,
)
from singsong.pipeline.bundle import (
    MAX_SECONDS,
    BundleConfig,
    Components,
    debug_components,
    load_bundle,
    save_bundle,
)

__all__ = [
    "MAX_SECONDS",
    "Accompaniment",
    "Accompanist",
    "BundleConfig",
    "Components",
    "Take",
    "WindowCodes",
    "debug_components",
    "load_bundle",
    "plan_windows",
    "save_bundle",
]

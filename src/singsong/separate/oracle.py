"""The oracle separator: the true stems of songbook songs and MIR-1K clips.

An upper bound for comparison (and the "isolated vocals" side of the paper's experiment), never a
substitute for separation when building training pairs from real mixtures.
"""

from __future__ import annotations

import numpy as np

from singsong.errors import SingsongError
from singsong.separate.base import Separation, Separator, Track


class OracleSeparator(Separator):
    name = "oracle"
    version = "1"

    def separate(self, mixture: np.ndarray) -> Separation:
        raise SingsongError("the oracle separator needs a track with true stems, not a mixture")

    def separate_track(self, track: Track) -> Separation:
        stems = track.load_true_stems()
        if stems is None:
            raise SingsongError(
                f"the oracle separator needs true stems; {track.path} is a plain audio file "
                "(use it on songbook songs or MIR-1K clips)"
            )
        return stems

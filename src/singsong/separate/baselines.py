"""A training-free baseline: REPET-SIM (Rafii & Pardo, 2012) soft masking, via librosa.

Accompaniment repeats; a voice does not. Each spectrogram frame is compared with its most similar
frames elsewhere in the song, and their median is the repeating background; what exceeds it is
the voice. It needs no training and is the simple reference the builtin separator must beat.
"""

from __future__ import annotations

import numpy as np

from singsong.separate.base import Separation, Separator, apply_chunked, check_mixture

N_FFT, HOP = 1024, 256


class RepetSimSeparator(Separator):
    name = "repet-sim"
    version = "1"

    def __init__(
        self,
        *,
        margin_vocals: float = 4.0,
        margin_background: float = 2.0,
        segment_seconds: float = 60.0,
    ) -> None:
        self.margin_vocals = margin_vocals
        self.margin_background = margin_background
        self.segment = int(segment_seconds * self.sample_rate)

    def separate(self, mixture: np.ndarray) -> Separation:
        mixture = check_mixture(mixture)
        out = apply_chunked(self._separate, mixture, segment=self.segment, overlap=self.sample_rate)
        return Separation(out[0], out[1])

    def _separate(self, x: np.ndarray) -> np.ndarray:
        import librosa

        spec = librosa.stft(x, n_fft=N_FFT, hop_length=HOP)
        mag, phase = np.abs(spec), np.angle(spec)
        frames = mag.shape[1]
        # librosa needs 1 <= width < (frames - 1) // 2: about 2 s of context, less for short clips.
        width = min(
            int(librosa.time_to_frames(2, sr=self.sample_rate, hop_length=HOP)),
            (frames - 1) // 2 - 1,
        )
        if width < 1:  # too short to find repetitions: all background
            background = mag
        else:
            background = librosa.decompose.nn_filter(
                mag, aggregate=np.median, metric="cosine", width=width
            )
            background = np.minimum(mag, background)
        mask_v = librosa.util.softmask(mag - background, self.margin_vocals * background, power=2)
        mask_b = librosa.util.softmask(
            background, self.margin_background * (mag - background), power=2
        )
        vocals = librosa.istft(mask_v * mag * np.exp(1j * phase), hop_length=HOP, length=len(x))
        accomp = librosa.istft(mask_b * mag * np.exp(1j * phase), hop_length=HOP, length=len(x))
        return np.stack([vocals, accomp]).astype(np.float32)

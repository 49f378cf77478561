"""Vocals -> instrumental + mix: :class:`Accompanist`, the one inference entry point.

Steps of :meth:`Accompanist.accompany`:

1. mono, 16 kHz; refuse empty, silent and too long input;
2. bring the vocals to the tokenizers' loudness, add the inference noise the model was trained
   with, pad to whole 40 ms frames and tokenize the whole input once;
3. window by window (AudioLM-style continuation): stage 1 gets the window's vocal codes plus,
   as a prompt, the previous window's instrumental codes over the overlap; stage 2 likewise
   continues the fine codes; the codec decodes each window;
4. crossfade the windows over the overlaps (whose codes are identical, so the fade only hides
   the codec's edge effects), trim to the input length, apply the bundle's tone match and its
   per-clip adaptation (:mod:`singsong.pipeline.tone`), mix loudness-balanced and unclipped.

Nothing about a call is stored on the object (sampling settings travel in a frozen
:class:`~singsong.models.SamplingParams`), so one loaded model can serve concurrent requests.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from singsong import SAMPLE_RATE
from singsong.audio import (
    SILENCE_LUFS,
    FloatArray,
    loudness_lufs,
    loudness_normalize,
    mix,
    resample,
    to_mono,
)
from singsong.errors import AudioError, SingsongError
from singsong.models import Codes, SamplingParams
from singsong.models.noise import add_noise
from singsong.pipeline.bundle import (
    SEMANTIC_HOP,
    BundleConfig,
    Components,
    debug_components,
    load_bundle,
)
from singsong.pipeline.tone import adapt_tone, apply_tone

__all__ = ["Accompaniment", "Accompanist", "Take", "WindowCodes", "plan_windows"]

NOISE_SEED = 0
Progress = Callable[[int, int], None]  # (windows done, windows in all)


@dataclass(frozen=True, eq=False)
class WindowCodes:
    """The instrumental codes of one window, all takes: ``start`` and ``frames`` in semantic
    frames (25 Hz); ``semantic`` [takes, frames], ``acoustic`` [takes, 12, 2 * frames]."""

    start: int
    frames: int
    semantic: Tensor
    acoustic: Tensor


@dataclass(frozen=True, eq=False)
class Take:
    """One accompaniment: float32 [N] at 16 kHz each; ``mix`` = vocals + ``instrumental``."""

    instrumental: FloatArray
    mix: FloatArray


@dataclass(frozen=True, eq=False)
class Accompaniment:
    """The result of one call: ``takes``, the ``seed`` that reproduces them, and the codes of
    every window (for inspection: window ``k + 1`` starts with window ``k``'s last frames)."""

    takes: tuple[Take, ...]
    seed: int
    windows: tuple[WindowCodes, ...]
    sample_rate: int = SAMPLE_RATE


def plan_windows(frames: int, *, window: int, overlap: int) -> list[tuple[int, int]]:
    """(start, length) of each window over ``frames`` frames: full windows that overlap by
    ``overlap`` frames, the last one shorter. Every window after the first is longer than the
    overlap, so it always generates something new."""
    if frames < 1:
        raise SingsongError("nothing to generate (0 frames)")
    spans, start = [], 0
    while True:
        spans.append((start, min(window, frames - start)))
        if start + window >= frames:
            return spans
        start += window - overlap


def _slice(codes: Codes, start: int, length: int) -> Codes:
    """Codes of semantic frames [start, start + length) (acoustic frames at twice the rate)."""
    sem, ac = codes.semantic, codes.acoustic
    return Codes(
        semantic=None if sem is None else sem[:, start : start + length],
        acoustic=None if ac is None else ac[:, :, 2 * start : 2 * (start + length)],
    )


def _crossfade(total: int, pieces: list[tuple[int, Tensor]], overlap: int) -> Tensor:
    """Overlap-add ``pieces`` of (start sample, wav [B, n]) into [B, total] with linear fades
    over each ``overlap``-sample seam (the two fades sum to 1, so equal signals pass unchanged)."""
    out = torch.zeros(pieces[0][1].shape[0], total)
    ramp = (torch.arange(overlap) + 0.5) / max(overlap, 1)  # [overlap], rises 0 -> 1
    for k, (start, wav) in enumerate(pieces):
        w = torch.ones(wav.shape[-1])
        if k > 0 and overlap:
            w[:overlap] = ramp
        if k < len(pieces) - 1 and overlap:
            w[-overlap:] = 1 - ramp
        out[:, start : start + wav.shape[-1]] += wav * w
    return out


class Accompanist:
    """A loaded model bundle that turns vocals into accompaniments (see the module docstring)."""

    def __init__(self, components: Components) -> None:
        self.parts = components.check()

    @property
    def config(self) -> BundleConfig:
        return self.parts.config

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> Accompanist:
        """Load a bundle folder, ``"default"`` (the model that ships with singsong) or
        ``"debug"`` (the tiny untrained model, built in memory)."""
        from singsong.assets import resolve_model

        if str(path) == "debug":
            return cls(debug_components())
        return cls(load_bundle(resolve_model(path)))

    # --- input ---------------------------------------------------------------------------------

    def _prepare(self, wav: np.ndarray | Tensor, sample_rate: int) -> FloatArray:
        """Any [N] or [C, N] audio -> float32 mono [N] at 16 kHz, checked."""
        x = wav.detach().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
        if x.ndim == 2 and x.shape[0] > x.shape[1]:
            raise AudioError(f"expected audio [N] or [channels, N], got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise AudioError(f"expected float audio, got {x.dtype}")
        x = resample(to_mono(x), sample_rate, SAMPLE_RATE)
        seconds = x.shape[-1] / SAMPLE_RATE
        if x.shape[-1] == 0:
            raise AudioError("the vocals are empty (0 samples)")
        if not np.isfinite(x).all():
            raise AudioError("the vocals contain NaN or infinite samples")
        if seconds > self.config.max_seconds:
            raise AudioError(
                f"the vocals are {seconds:.1f} s long; this model accepts at most "
                f"{self.config.max_seconds:.0f} s (cut the file into parts)"
            )
        if loudness_lufs(x, SAMPLE_RATE) <= SILENCE_LUFS:
            raise AudioError("the vocals are silent (below -70 LUFS): nothing to accompany")
        return x

    def _tokenize(self, vocals: FloatArray, frames: int, *, silent: bool = False) -> Codes:
        """Noised, padded vocals -> semantic [1, T] and/or acoustic [1, 12, 2T] codes.

        The noise is the same on every call (its own fixed seed): the vocal codes are then a
        function of the input alone, and the sampling seed only picks among accompaniments.
        ``silent``: the codes of that noise alone, as if nobody sang (vocal guidance's
        negative: the training vocals were never digitally silent).
        """
        x = torch.from_numpy(vocals)[None]  # [1, N]
        snr = self.config.inference_snr_db
        if snr is not None:  # the model never heard clean vocals: noise them as in training
            noised = add_noise(x, snr, torch.Generator().manual_seed(NOISE_SEED))
            x = noised - x if silent else noised
        elif silent:
            x = torch.zeros_like(x)
        x = torch.nn.functional.pad(x, (0, frames * SEMANTIC_HOP - x.shape[1]))  # whole frames
        need = self.config.featurization
        with torch.inference_mode():
            semantic = self.parts.semantic.encode(x)[:, 0] if "S" in need else None  # [1, T]
            acoustic = self.parts.codec.encode(x) if "A" in need else None  # [1, 12, 2T]
        return Codes(semantic=semantic, acoustic=acoustic)

    # --- generation ----------------------------------------------------------------------------

    def _window(
        self,
        vocals: Codes,
        *,
        params: SamplingParams,
        prev: WindowCodes | None,
        start: int,
        negative: Codes | None = None,
    ) -> tuple[WindowCodes, Tensor]:
        """Generate one window -> (its codes, its decoded audio [takes, frames * 640])."""
        p0, p1, p2 = self.parts.planner, self.parts.stage1, self.parts.stage2
        q = p1.config.coarse_levels
        prompt1 = fine_prompt = None
        if prev is not None:  # continue from the previous window's codes over the overlap
            keep = prev.start + prev.frames - start  # overlap frames
            prompt1 = Codes(
                semantic=prev.semantic[:, -keep:], acoustic=prev.acoustic[:, :q, -2 * keep :]
            )
            fine_prompt = prev.acoustic[:, q:, -2 * keep :]
        plan = None  # a planner writes the semantic codes, stage 1 only the coarse ones for them
        if p0 is not None:
            plan_prompt = None
            if prompt1 is not None:
                assert prompt1.semantic is not None and prompt1.acoustic is not None
                plan_prompt = Codes(semantic=prompt1.semantic, acoustic=prompt1.acoustic[:, :0])
            plan = p0.generate(
                vocals, params=params, prompt=plan_prompt, negative=negative
            ).semantic  # [takes, T]
        # [takes, T], [takes, Q, 2T]
        out = p1.generate(vocals, params=params, prompt=prompt1, negative=negative, semantic=plan)
        assert out.semantic is not None and out.acoustic is not None
        s2 = replace(
            params, takes=1, seed=None if params.seed is None else params.seed + 1, guidance=1.0
        )  # stage 2 reads no vocals
        fine = p2.generate(out.acoustic, params=s2, prompt=fine_prompt)  # [takes, F, 2T]
        acoustic = torch.cat([out.acoustic, fine], dim=1)  # [takes, Q + F, 2T]
        codes = WindowCodes(start, out.semantic.shape[1], out.semantic, acoustic)
        return codes, self.parts.codec.decode(acoustic)

    def accompany(
        self,
        wav: np.ndarray | Tensor,
        sample_rate: int,
        *,
        takes: int = 1,
        seed: int | None = 0,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        guidance: float | None = None,
        tone: bool = True,
        progress: Progress | None = None,
    ) -> Accompaniment:
        """Generate ``takes`` accompaniments for ``wav`` [N] or [C, N] at ``sample_rate``.

        Args:
            takes: independent accompaniments, generated together as one batch.
            seed: the same seed and settings reproduce the same takes; ``None`` draws one (the
                result records it).
            temperature, top_k, top_p: sampling settings; ``None`` = the bundle's defaults.
            guidance: vocal guidance (``None`` = the bundle's default, 1 = none): stage 1's
                logits are pushed away from what it would write for silent vocals, by this
                factor (see ``SamplingParams.guidance``); it costs a second stage-1 pass.
            tone: apply the bundle's tone match and per-clip tone adaptation
                (:mod:`singsong.pipeline.tone`), if it has them; False returns the codec's
                output as decoded.
            progress: called with (windows done, windows in all) after each window.

        Returns:
            Per take the instrumental and the mix, float32 [N'] at 16 kHz, where ``N'`` is the
            input's length at 16 kHz.

        Raises:
            AudioError: empty, non-finite, silent or too long input.
        """
        cfg = self.config
        seed = secrets.randbits(31) if seed is None else seed
        params = SamplingParams(
            temperature=cfg.temperature if temperature is None else temperature,
            top_k=cfg.top_k if top_k is None else top_k,
            top_p=cfg.top_p if top_p is None else top_p,
            seed=seed,
            takes=takes,
            guidance=cfg.guidance if guidance is None else guidance,
        )
        vocals = self._prepare(wav, sample_rate)  # [N]
        vocals = loudness_normalize(vocals, SAMPLE_RATE, cfg.vocal_lufs)
        n = vocals.shape[0]
        frames = -(-n // SEMANTIC_HOP)  # ceil: the tokenizers' frame rule
        codes = self._tokenize(vocals, frames)
        silence = None
        if params.guidance != 1.0:  # what the model writes when nobody sings
            silence = self._tokenize(vocals, frames, silent=True)
        spans = plan_windows(frames, window=cfg.window_frames, overlap=cfg.overlap_frames)
        windows: list[WindowCodes] = []
        pieces: list[tuple[int, Tensor]] = []
        with torch.inference_mode():
            for k, (start, length) in enumerate(spans):
                window_vocals = _slice(codes, start, length)
                window_silence = None if silence is None else _slice(silence, start, length)
                # distinct, reproducible seeds per window (stage 2 uses seed + 1); windows of
                # different seeds never share one below 500 windows (MAX_SECONDS allows 100)
                window_params = replace(params, seed=seed * 1000 + 2 * k)
                prev = windows[-1] if windows else None
                got, audio = self._window(
                    window_vocals, params=window_params, prev=prev, start=start,
                    negative=window_silence,
                )  # fmt: skip
                windows.append(got)
                pieces.append((start * SEMANTIC_HOP, audio))
                if progress is not None:
                    progress(k + 1, len(spans))
        overlap = cfg.overlap_frames * SEMANTIC_HOP if len(spans) > 1 else 0
        instrumental = _crossfade(frames * SEMANTIC_HOP, pieces, overlap)[:, :n]  # [takes, N]
        if not torch.isfinite(instrumental).all():
            raise SingsongError("the model produced non-finite audio (broken weights?)")
        decoded = [x.numpy().astype(np.float32) for x in instrumental]
        out = tuple(self._mix(vocals, self._tone(x) if tone else x) for x in decoded)
        return Accompaniment(takes=out, seed=seed, windows=tuple(windows))

    def _tone(self, instrumental: FloatArray) -> FloatArray:
        """The bundle's tone match: its fixed curve, then the per-clip adaptation (if any)."""
        cfg = self.config
        toned = apply_tone(instrumental, cfg.tone_db)
        return adapt_tone(toned, cfg.tone_balance_db, cfg.tone_adapt)

    def _mix(self, vocals: FloatArray, instrumental: FloatArray) -> Take:
        """Balance the instrumental against the vocals' loudness, mix, keep the peak <= 0.99;
        the returned instrumental is scaled like its part of the mix (the stems sum to it)."""
        level = loudness_lufs(vocals, SAMPLE_RATE) + self.config.instrumental_gain_db
        inst = loudness_normalize(instrumental, SAMPLE_RATE, level)
        mixture, scale = mix([vocals, inst])
        return Take(instrumental=(inst * np.float32(scale)).astype(np.float32), mix=mixture)

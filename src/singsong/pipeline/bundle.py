"""A model bundle: the four release artifacts the pipeline needs, plus its own settings.

Layout of a bundle folder ``MODEL_DIR``::

    MODEL_DIR/singsong.json    {"kind": "singsong-bundle", "version", "config", "tokenizers"}
    MODEL_DIR/semantic/        semantic tokenizer (config.json + model.safetensors)
    MODEL_DIR/codec/           acoustic codec
    MODEL_DIR/stage1/          vocals -> instrumental semantic + coarse codes, or a *renderer*
                               (the planner's semantic codes -> coarse codes, in parallel)
    MODEL_DIR/stage2/          coarse -> fine codes
    MODEL_DIR/planner/         optional: vocals -> instrumental semantic codes; stage 1 then
                               writes only the coarse codes for them (SingSong's separate
                               semantic stage: a stage-1 model with ``coarse_levels`` 0)

``singsong.json`` records the tokenizer versions the stages were trained on: codes only mean
something to the tokenizer that wrote them, so a bundle whose folders were mixed up refuses to
load instead of generating noise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singsong import SAMPLE_RATE
from singsong.audio import FloatArray, atomic_write
from singsong.checkpoint import read_json_object
from singsong.errors import SingsongError
from singsong.models import (
    RendererConfig,
    RendererModel,
    Stage1Config,
    Stage1Model,
    Stage2Config,
    Stage2Model,
)
from singsong.models.codes import FEATURIZATIONS
from singsong.models.noise import INFERENCE_SNR_DB
from singsong.models.release import read_stage_tokenizers
from singsong.pipeline.tone import TONE_BANDS_HZ, fit_balance, match_tone
from singsong.tokenizers.codec import Codec, CodecConfig, CodecTokenizer
from singsong.tokenizers.semantic import MusicFeatures, SemanticConfig, SemanticTokenizer

__all__ = [
    "BUNDLE_FILE",
    "BundleConfig",
    "CoarseStage",
    "Components",
    "assemble_bundle",
    "debug_components",
    "load_coarse_stage",
    "save_bundle",
]

# what writes the coarse codes: a stage 1 (it may also write the semantic codes) or a renderer
# of the planner's semantic codes; both have ``config.coarse_levels`` and the same ``generate``
CoarseStage = Stage1Model | RendererModel

BUNDLE_FILE = "singsong.json"
BUNDLE_KIND = "singsong-bundle"
BUNDLE_VERSION = "1"
SEMANTIC_HOP = 640  # 25 Hz at 16 kHz: windows start and end on semantic frames
MAX_SECONDS = 600.0
"""Default limit on the input length (10 minutes): generation time grows linearly with it."""


@dataclass(frozen=True)
class BundleConfig:
    """Pipeline settings stored in ``singsong.json``.

    Attributes:
        featurization: stage 1's vocal input (``S``, ``A`` or ``SA``); must match stage 1.
        temperature, top_k, top_p: default sampling settings (a call may override them).
        guidance: default vocal guidance (1 = none; see ``Accompanist.accompany``).
        inference_snr_db: white noise added to the vocals before tokenizing, as at training
            time (SingSong adds it at inference too); ``None`` adds none.
        vocal_lufs: loudness the vocals are brought to before tokenizing (the tokenizers'
            training level) and in the mix.
        instrumental_gain_db: loudness of the instrumental in the mix relative to the vocals.
        window_seconds, overlap_seconds: long inputs are generated window by window; each window
            continues from the last ``overlap_seconds`` of the previous one (whole 40 ms frames).
        max_seconds: longest accepted input.
        release: the model's name and version (e.g. ``singsong-default 0.1``; see its card).
        tone_db: tone match, gains in dB at :data:`~singsong.pipeline.tone.TONE_BANDS_HZ`
            applied to every instrumental (``singsong bundle --tone-match``); () = flat.
        tone_balance_db: the average balance of real instrumentals at the same bands (fitted
            with the tone match), the target of the per-clip adaptation; () = none.
        tone_adapt: how far (0-1) each instrumental's own balance is then moved to
            ``tone_balance_db`` (:func:`~singsong.pipeline.tone.adapt_tone`); 0 = not at all.
    """

    featurization: str = "S"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    guidance: float = 1.0
    inference_snr_db: float | None = INFERENCE_SNR_DB
    vocal_lufs: float = -20.0
    instrumental_gain_db: float = 0.0
    window_seconds: float = 10.0
    overlap_seconds: float = 4.0
    max_seconds: float = MAX_SECONDS
    release: str = ""
    tone_db: tuple[float, ...] = ()
    tone_balance_db: tuple[float, ...] = ()
    tone_adapt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tone_db", "tone_balance_db"):
            bad = f"{name} must be empty or {len(TONE_BANDS_HZ)} finite values in dB"
            try:  # JSON gives a list
                values = tuple(float(g) for g in getattr(self, name))
            except (TypeError, ValueError):
                raise SingsongError(bad) from None
            if values and (len(values) != len(TONE_BANDS_HZ) or not np.all(np.isfinite(values))):
                raise SingsongError(bad)
            object.__setattr__(self, name, values)
        try:
            adapt = float(self.tone_adapt)
        except (TypeError, ValueError):
            adapt = float("nan")
        if not 0.0 <= adapt <= 1.0:
            raise SingsongError(f"tone_adapt must be in [0, 1], got {self.tone_adapt!r}")
        object.__setattr__(self, "tone_adapt", adapt)
        if self.tone_adapt and not self.tone_balance_db:
            raise SingsongError("tone_adapt needs tone_balance_db (singsong bundle --tone-match)")
        if self.featurization not in FEATURIZATIONS:
            raise SingsongError(f"unknown featurization {self.featurization!r}")
        window, overlap = self.window_frames, self.overlap_frames
        if not 0 <= overlap < window:
            raise SingsongError(
                f"overlap ({self.overlap_seconds} s) must be shorter than the window "
                f"({self.window_seconds} s)"
            )
        if not self.max_seconds > 0:
            raise SingsongError(f"max_seconds must be positive, got {self.max_seconds}")

    @staticmethod
    def _frames(seconds: float, name: str) -> int:
        frames = seconds * SAMPLE_RATE / SEMANTIC_HOP
        if abs(frames - round(frames)) > 1e-6:
            raise SingsongError(f"{name} {seconds} s is not a whole number of 40 ms frames")
        return round(frames)

    @property
    def window_frames(self) -> int:
        """Window length in semantic frames (25 Hz)."""
        return self._frames(self.window_seconds, "window_seconds")

    @property
    def overlap_frames(self) -> int:
        return self._frames(self.overlap_seconds, "overlap_seconds")


@dataclass(frozen=True, eq=False)
class Components:
    """Everything a pipeline runs: two tokenizers, two stage models (three with a planner) and
    the settings. ``stage1`` is a :class:`Stage1Model` or, with a planner, a renderer."""

    semantic: SemanticTokenizer
    codec: CodecTokenizer
    stage1: CoarseStage
    stage2: Stage2Model
    config: BundleConfig
    planner: Stage1Model | None = None

    @property
    def listener(self) -> Stage1Model:
        """The model that reads the vocals: the planner if any, else stage 1."""
        if self.planner is not None:
            return self.planner
        if not isinstance(self.stage1, Stage1Model):
            raise SingsongError("a bundle with a renderer needs a planner (nothing reads vocals)")
        return self.stage1

    def check(self) -> Components:
        """Raise if the parts do not fit together (vocabularies, levels, featurization)."""
        c1, c2, cfg = self.stage1.config, self.stage2.config, self.config
        problems = []
        if isinstance(self.stage1, RendererModel) and self.planner is None:
            raise SingsongError(
                "inconsistent model bundle: a renderer writes the coarse codes of a plan, but "
                "there is no planner"
            )
        cv = self.listener.config
        who = "the planner" if self.planner is not None else "stage 1"
        if cv.featurization != cfg.featurization:
            problems.append(f"{who} reads {cv.featurization}, the bundle says {cfg.featurization}")
        if cv.vocal_noise != (cfg.inference_snr_db is not None):
            heard = "noisy" if cv.vocal_noise else "clean"
            problems.append(
                f"{who} was trained on {heard} vocals but the bundle's inference_snr_db is "
                f"{cfg.inference_snr_db}"
            )
        if c1.semantic_codebook_size != self.semantic.codebook_size:
            problems.append("stage 1's semantic vocabulary differs from the semantic tokenizer's")
        if c1.coarse_levels == 0:
            problems.append("stage 1 writes no coarse codes (a semantic-only model is a planner)")
        if self.planner is not None:
            cp = self.planner.config
            if cp.coarse_levels != 0:
                problems.append("the planner must write semantic codes only (coarse_levels 0)")
            if isinstance(c1, Stage1Config) and (cp.featurization, cp.vocal_noise) != (
                c1.featurization,
                c1.vocal_noise,
            ):
                problems.append("the planner and stage 1 read the vocals differently")
            if cp.semantic_codebook_size != c1.semantic_codebook_size:
                problems.append("the planner's semantic vocabulary differs from stage 1's")
        sizes = {c1.acoustic_codebook_size, c2.acoustic_codebook_size, self.codec.codebook_size}
        if len(sizes) != 1:
            problems.append("the stages' acoustic vocabularies differ from the codec's")
        if c1.coarse_levels != c2.coarse_levels:
            problems.append("stage 1 and stage 2 disagree on the number of coarse levels")
        if c2.coarse_levels + c2.fine_levels > self.codec.num_codebooks:
            problems.append(f"the codec has only {self.codec.num_codebooks} levels")
        if (self.semantic.hop_length, self.codec.hop_length) != (SEMANTIC_HOP, SEMANTIC_HOP // 2):
            problems.append("tokenizer hops must be 640 (semantic) and 320 (codec) samples")
        if problems:
            raise SingsongError("inconsistent model bundle: " + "; ".join(problems))
        return self


def save_bundle(
    components: Components, directory: str | os.PathLike[str], *, fp16: bool = False
) -> Path:
    """Write a bundle folder (each artifact atomically; ``singsong.json`` last). ``fp16``
    stores the codec and stage weights in float16 (half the size; loaded back as float32)."""
    folder = Path(directory)
    components.check()
    dtype = torch.float16 if fp16 else None
    components.semantic.save_pretrained(folder / "semantic")
    components.codec.save_pretrained(folder / "codec", dtype=dtype)
    components.stage1.save_pretrained(folder / "stage1", dtype=dtype)
    components.stage2.save_pretrained(folder / "stage2", dtype=dtype)
    if components.planner is not None:
        components.planner.save_pretrained(folder / "planner", dtype=dtype)
    meta = {
        "kind": BUNDLE_KIND,
        "version": BUNDLE_VERSION,
        "config": asdict(components.config),
        "tokenizers": {"semantic": components.semantic.version, "codec": components.codec.version},
    }
    with atomic_write(folder / BUNDLE_FILE) as f:
        json.dump(meta, f, indent=1)
    return folder


def assemble_bundle(
    *,
    semantic: str | os.PathLike[str],
    codec: str | os.PathLike[str],
    stage1: str | os.PathLike[str],
    stage2: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: BundleConfig | None = None,
    fp16: bool = False,
    planner: str | os.PathLike[str] | None = None,
    plan_guidance: float | None = None,
    tone_clips: Iterable[tuple[FloatArray, FloatArray]] | None = None,
    tone_adapt: float = 0.0,
) -> Path:
    """Trained parts -> a bundle folder (``singsong bundle``). Featurization and inference noise
    are taken from stage 1 (``config`` gives the rest); each stage's ``tokenizers.json`` (written
    by ``singsong train``) must name exactly these tokenizers, or the codes would mean nothing.
    ``planner``: a semantic-only stage-1 release that writes the semantic codes.
    ``plan_guidance``: a renderer's guidance towards its plan (stored in its config; ``None``
    keeps the release's). ``tone_clips``: (vocals, true instrumental) pairs at 16 kHz, training
    clips (any iterable, e.g. one that shows progress); if given, the bundle's tone match is
    fitted on them (:func:`~.tone.match_tone`), and the average balance of their true
    instrumentals (:func:`~.tone.fit_balance`) is stored as the per-clip adaptation's target
    (``tone_adapt``, 0-1, sets how far it goes; it needs ``tone_clips``)."""
    if tone_adapt and tone_clips is None:
        raise SingsongError(
            "the per-clip tone adaptation needs tone clips to fit its target "
            "(singsong bundle --tone-match MANIFEST)"
        )
    coarse = load_coarse_stage(stage1)
    if plan_guidance is not None:
        if not isinstance(coarse, RendererModel):
            raise SingsongError("plan guidance is a renderer's setting; stage 1 is not one")
        coarse.set_plan_guidance(plan_guidance)
    parts = Components(
        semantic=SemanticTokenizer.from_pretrained(semantic),
        codec=CodecTokenizer.from_pretrained(codec),
        stage1=coarse,
        stage2=Stage2Model.from_pretrained(stage2),
        config=config or BundleConfig(),
        planner=None if planner is None else Stage1Model.from_pretrained(planner),
    )
    mine = {"semantic": parts.semantic.info.to_dict(), "acoustic": parts.codec.info.to_dict()}
    stages = [("stage1", Path(stage1)), ("stage2", Path(stage2))]
    stages += [] if planner is None else [("planner", Path(planner))]
    for name, folder in stages:
        for role, info in read_stage_tokenizers(folder).items():
            if mine.get(role) != info:
                raise SingsongError(
                    f"{name} was trained on {role} codes of {info.get('name')} "
                    f"{info.get('version')}, but the bundle's {role} tokenizer is "
                    f"{mine[role]['name']} {mine[role]['version']}"
                    if role in mine
                    else f"{name} was trained on an unknown tokenizer role {role!r}"
                )
    cv = parts.listener.config
    settings = replace(
        parts.config,
        featurization=cv.featurization,
        inference_snr_db=cv.inference_snr_db if cv.vocal_noise else None,
    )
    parts = replace(parts, config=settings)
    if tone_clips is not None:
        from singsong.pipeline.accompanist import Accompanist  # it imports this module

        truths: list[FloatArray] = []

        def keep_truths() -> Iterable[tuple[FloatArray, FloatArray]]:
            for vocals, truth in tone_clips:
                truths.append(truth)
                yield vocals, truth

        curve = match_tone(Accompanist(parts), keep_truths())
        balance = fit_balance(truths)
        settings = replace(settings, tone_db=curve, tone_balance_db=balance, tone_adapt=tone_adapt)
        parts = replace(parts, config=settings)
    return save_bundle(parts, out, fp16=fp16)


def load_coarse_stage(directory: str | os.PathLike[str]) -> CoarseStage:
    """A release folder of a stage 1 or a renderer (told apart by its ``config.json`` kind)."""
    path = Path(directory) / "config.json"
    kind = read_json_object(path).get("kind") if path.is_file() else None
    if kind == RendererModel.kind:
        return RendererModel.from_pretrained(directory)
    return Stage1Model.from_pretrained(directory)  # its errors name what is wrong


def load_bundle(directory: str | os.PathLike[str]) -> Components:
    """Read a bundle folder written by :func:`save_bundle` (strict: every part must fit)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SingsongError(
            f"model folder not found: {folder} (give a bundle folder, 'default' for the "
            "bundled model or 'debug' for the untrained test model)"
        )
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise SingsongError(f"{folder} is not a singsong model bundle (no {BUNDLE_FILE})")
    meta = read_json_object(path)
    if meta.get("kind") != BUNDLE_KIND or meta.get("version") != BUNDLE_VERSION:
        raise SingsongError(
            f"{path} is a {meta.get('kind')!r} file of version {meta.get('version')!r}; this "
            f"singsong reads {BUNDLE_KIND!r} version {BUNDLE_VERSION!r}"
        )
    known = {f.name for f in fields(BundleConfig)}
    raw = meta.get("config")
    if not isinstance(raw, dict) or set(raw) - known:
        raise SingsongError(f"{path}: bad config (known fields: {sorted(known)})")
    config = BundleConfig(**raw)
    parts = Components(
        semantic=SemanticTokenizer.from_pretrained(folder / "semantic"),
        codec=CodecTokenizer.from_pretrained(folder / "codec"),
        stage1=load_coarse_stage(folder / "stage1"),
        stage2=Stage2Model.from_pretrained(folder / "stage2"),
        config=config,
        planner=(
            Stage1Model.from_pretrained(folder / "planner")
            if (folder / "planner").is_dir()
            else None
        ),
    )
    recorded = meta.get("tokenizers", {})
    for name, tok in (("semantic", parts.semantic), ("codec", parts.codec)):
        if recorded.get(name) != tok.version:
            raise SingsongError(
                f"{folder}: the stages were trained on {name} tokenizer {recorded.get(name)!r} "
                f"but {folder / name} holds {tok.version!r}"
            )
    return parts.check()


def _synthetic(seconds: float, generator: torch.Generator) -> torch.Tensor:
    """A few tones and noise [1, N]: statistics for the debug tokenizers."""
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 110.0 * 2 ** (torch.floor(t * 4) / 12)  # a rising scale, 4 notes a second
    wav = 0.3 * torch.sin(2 * torch.pi * f0 * t) + 0.02 * torch.randn(t.shape, generator=generator)
    return wav[None]


def debug_components(
    *, seed: int = 0, planner: bool = False, renderer: bool = False, **config: Any
) -> Components:
    """A tiny bundle with random weights (for tests and ``--model debug``): it runs the whole
    pipeline in about a second per 10 s window on a CPU, and sounds like nothing.

    ``planner``: with a semantic-only planner; ``renderer``: with a renderer in stage 1's
    place (implies a planner). ``config`` overrides :class:`BundleConfig` fields (e.g. short
    windows for fast tests).
    """
    generator = torch.Generator().manual_seed(seed)
    wav = _synthetic(2.0, generator)
    # semantic: real music features, statistics of the synthetic signal, random centroids
    extractor = MusicFeatures()
    frames = extractor(wav)[0]  # [T, D]
    dim = extractor.dim
    semantic = SemanticTokenizer(
        config=SemanticConfig(codebook_size=1024, dim=dim),
        centroids=0.3 * torch.randn(1024, dim, generator=generator),
        mean=frames.mean(0),
        std=frames.std(0).clamp(min=1e-3),
        extractor=extractor,
    )
    featurization = config.get("featurization", "S")
    with torch.random.fork_rng(devices=[]):  # module init draws from the global RNG
        torch.manual_seed(seed)
        codec_model = Codec(CodecConfig.preset("debug")).train()
        codec_model(wav[:, : wav.shape[1] // 320 * 320])  # k-means start of the codebooks
        noisy = config.get("inference_snr_db", INFERENCE_SNR_DB) is not None
        stage1 = Stage1Model(
            Stage1Config.preset("debug", featurization=featurization, vocal_noise=noisy)
        )
        stage2 = Stage2Model(Stage2Config.preset("debug"))
        plan = Stage1Model(replace(stage1.config, coarse_levels=0)) if planner or renderer else None
        coarse: CoarseStage = RendererModel(RendererConfig.preset("debug")) if renderer else stage1
    return Components(
        semantic=semantic,
        codec=CodecTokenizer(codec_model.eval()),
        stage1=coarse.eval(),
        stage2=stage2.eval(),
        config=BundleConfig(**config),
        planner=None if plan is None else plan.eval(),
    ).check()

"""``singsong eval run``: every system under test on held-out (vocals, instrumental) pairs.

Per evaluation set (one pairs manifest, its held-out clips: MIR-1K validation singers, songbook
songs with index % 10 == 9) and per vocal condition (``isolated`` = the true vocal stem,
``separated`` = the separator's vocals), each system turns the vocals into an instrumental:

- ``ground_truth``: the clip's real instrumental (true stem);
- ``shuffled``: a real instrumental of another song (what a fit metric must score clearly lower);
- ``baseline``: the retrieval baseline over the set's training clips (:mod:`.baseline`);
- ``vocal_copy``: the input vocals themselves, a control that is "in key" by construction and
  shows what copying looks like on ``vocal_copy``;
- ``separated_inst``: the separator's instrumental of the clip, a real instrumental carrying the
  vocal residue a model trained on separated pairs can learn to echo (a leak control);
- ``model:<name>``: a model bundle through :class:`singsong.pipeline.Accompanist`.

Every instrumental is brought to the vocals' loudness and mixed with them (as ``accompany`` does);
per clip the agreement metrics are computed, per system the FAD of its mixes against real mixes of
the set's *training* clips (so the ground truth is not compared with itself). Means come with
bootstrap 95 % intervals. Results: ``OUT/metrics.json``, ``OUT/clips.jsonl``, ``OUT/report.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import (
    FloatArray,
    atomic_write,
    loudness_lufs,
    loudness_normalize,
    mix,
    save_audio,
)
from singsong.data.splits import is_valid_singer, is_valid_song
from singsong.errors import SingsongError
from singsong.evaluation.agreement import agreement, level_checks
from singsong.evaluation.analysis import Features, Key, analyze, mirex_key_score, tempo_match

__all__ = ["CONDITIONS", "EvalConfig", "evaluate", "is_heldout", "song_of"]

CONDITIONS = ("isolated", "separated")
VOCAL_FILE = {"isolated": "true_vocals", "separated": "vocals"}


@dataclass(frozen=True)
class EvalConfig:
    manifests: tuple[str, ...]
    out: str
    models: tuple[str, ...] = ()  # bundle folders or "debug"
    baseline: bool = True
    conditions: tuple[str, ...] = CONDITIONS
    max_clips: int = 50  # per set, evenly spaced over its held-out clips
    index_items: int = 400  # baseline library size (evenly spaced training clips)
    embedding: str = "musicfeat"
    embedding_path: str | None = None
    rounds: int = 1000  # bootstrap rounds for means
    fad_rounds: int = 200  # bootstrap rounds for FAD
    seed: int = 0
    examples: int = 2  # clips shown as spectrograms in the report
    save_audio: bool = False  # OUT/<set>/audio/<condition>/<system>/<clip>.{instrumental,mix}.wav

    def __post_init__(self) -> None:
        if not self.manifests:
            raise SingsongError("give at least one pairs manifest")
        bad = set(self.conditions) - set(CONDITIONS)
        if bad or not self.conditions:
            raise SingsongError(f"conditions must be among {', '.join(CONDITIONS)}, got {bad}")
        if self.max_clips < 2:
            raise SingsongError("--max-clips must be at least 2 (shuffling needs two songs)")


def _with_truth(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row with ``true_vocals``/``true_instrumental``; pairs made by the ``oracle`` separator
    have none because their stems are the true ones. None when the truth is unknown."""
    if "true_vocals" in row and "true_instrumental" in row:
        return row
    if row.get("separator") == "oracle":
        return row | {"true_vocals": row["vocals"], "true_instrumental": row["instrumental"]}
    return None


def _truth_rows(manifest: Path, heldout: bool) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    out = [_with_truth(r) for r in rows if is_heldout(r) == heldout]
    return [r for r in out if r is not None]


def is_heldout(row: dict[str, Any]) -> bool:
    """Is a pairs-manifest row in the validation split (data/splits.py)?"""
    kind, track = row.get("source_kind"), str(row.get("track", ""))
    if kind == "songbook":
        return is_valid_song(track)
    if kind == "mir1k":
        return is_valid_singer(track.split("_")[0])
    return False


def song_of(row: dict[str, Any]) -> str:
    """The song a clip belongs to (MIR-1K clips ``<singer>_<song>_<clip>`` share a song)."""
    track = str(row["track"])
    return "_".join(track.split("_")[:2]) if row.get("source_kind") == "mir1k" else track


@dataclass(eq=False)
class Clip:
    id: str
    song: str
    vocals: dict[str, FloatArray]  # condition -> [N]
    reference: FloatArray  # [N] the true instrumental
    separated_inst: FloatArray  # [N] the separator's instrumental (with vocal residue)
    truth: Key | None = None  # songbook meta.json
    truth_tempo: float | None = None
    features: dict[str, Features] = field(default_factory=dict)


def _fit_length(x: FloatArray, n: int) -> FloatArray:
    return x[:n] if x.size >= n else np.pad(x, (0, n - x.size))


def _stem(manifest: Path, row: dict[str, Any], name: str) -> FloatArray:
    """The clip's segment of one of a manifest row's stem files (``name``: its column)."""
    from singsong.evaluation.baseline import read_segment

    return read_segment(manifest.parent / row[name], row["offset"], row["duration"])


def load_clips(manifest: Path, max_clips: int) -> list[Clip]:
    """The held-out clips of a pairs manifest (evenly spaced subset of ``max_clips``)."""
    if not manifest.is_file():
        raise SingsongError(f"pairs manifest not found: {manifest}")
    rows = _truth_rows(manifest, heldout=True)
    if len({song_of(r) for r in rows}) < 2:
        raise SingsongError(
            f"{manifest} has fewer than two held-out songs with true stems; eval needs both"
        )
    if len(rows) > max_clips:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_clips).astype(int)]
    clips = []
    for r in rows:
        ref = _stem(manifest, r, "true_instrumental")
        vocals = {c: _fit_length(_stem(manifest, r, VOCAL_FILE[c]), ref.size) for c in CONDITIONS}
        sep = _fit_length(_stem(manifest, r, "instrumental"), ref.size)
        clip = Clip(str(r["id"]), song_of(r), vocals, ref, sep)
        meta = Path(str(r.get("source", ""))) / "meta.json"
        if r.get("source_kind") == "songbook" and meta.is_file():
            m = json.loads(meta.read_text())
            clip.truth, clip.truth_tempo = Key(int(m["tonic"]), str(m["mode"])), float(m["tempo"])
        clips.append(clip)
    return clips


def training_pairs(
    manifest: Path, count: int, *, seed: int = 0
) -> list[tuple[FloatArray, FloatArray]]:
    """``count`` random training clips (never held-out) of a pairs manifest with true stems:
    (isolated vocals, true instrumental), float32 at 16 kHz."""
    if not manifest.is_file():
        raise SingsongError(f"pairs manifest not found: {manifest}")
    rows = _truth_rows(manifest, heldout=False)
    if not rows:
        raise SingsongError(f"{manifest} has no training clips with true stems")
    pick = np.random.default_rng(seed).permutation(len(rows))[:count]
    out = []
    for r in (rows[i] for i in sorted(pick)):
        truth = _stem(manifest, r, "true_instrumental")
        out.append((_fit_length(_stem(manifest, r, "true_vocals"), truth.size), truth))
    return out


def shuffle_partner(clips: list[Clip]) -> list[int]:
    """For each clip, the index of a clip of another song (a fixed rotation, then the next one
    of a different song)."""
    n = len(clips)
    out = []
    for i in range(n):
        j = (i + n // 2) % n
        while clips[j].song == clips[i].song:
            j = (j + 1) % n
        out.append(j)
    return out


def _bootstrap_mean(values: list[float], rounds: int, seed: int) -> dict[str, float]:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (rounds, x.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return {"mean": float(x.mean()), "low": float(low), "high": float(high), "n": int(x.size)}


def _mixes(vocals: FloatArray, inst: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Instrumental at the vocals' loudness (0 dB, as ``accompany``), and the unclipped mix."""
    level = loudness_lufs(vocals, SAMPLE_RATE)
    inst = loudness_normalize(inst, SAMPLE_RATE, level)
    mixture, scale = mix([vocals, inst])
    return (inst * np.float32(scale)).astype(np.float32), mixture


def _systems(config: EvalConfig) -> list[str]:
    names = ["ground_truth", "shuffled"]
    names += ["baseline"] if config.baseline else []
    names += ["vocal_copy", "separated_inst"] + [f"model:{m}" for m in config.models]
    return names


def evaluate_set(manifest: Path, config: EvalConfig, out: Path) -> dict[str, Any]:
    """Evaluate every system on one manifest's held-out clips -> the set's summary."""
    from tqdm import tqdm

    from singsong.evaluation.baseline import RetrievalBaseline, build_index, load_index
    from singsong.evaluation.embeddings import load_embedding
    from singsong.evaluation.fad import bootstrap_fad

    started = time.perf_counter()
    clips = load_clips(manifest, config.max_clips)
    partner = shuffle_partner(clips)
    embedding = load_embedding(config.embedding, config.embedding_path)
    baseline = None
    if config.baseline:
        index_path = out / "retrieval_index.json"
        entries = (
            load_index(index_path)
            if index_path.is_file()
            else build_index(manifest.parent, index_path, max_items=config.index_items)
        )
        baseline = RetrievalBaseline(entries)
    models: dict[str, Any] = {}
    if config.models:
        from singsong.pipeline import Accompanist

        models = {f"model:{m}": Accompanist.from_pretrained(m) for m in config.models}
    systems = _systems(config)
    rows: list[dict[str, Any]] = []
    mix_emb: dict[tuple[str, str], list[np.ndarray]] = {}
    gen_seconds: dict[str, float] = {s: 0.0 for s in systems}
    examples: list[dict[str, Any]] = []
    model_feats: dict[tuple[str, str], dict[int, Features]] = {}  # (condition, model) -> clip
    shown = set(np.linspace(0, len(clips) - 1, config.examples).astype(int).tolist())
    for clip in tqdm(clips, desc=manifest.parent.name, unit="clip"):
        clip.features["reference"] = analyze(clip.reference)
    for k, clip in enumerate(tqdm(clips, desc="systems", unit="clip")):
        ref = clip.features["reference"]
        for cond in config.conditions:
            vocals = clip.vocals[cond]
            vf = clip.features[cond] = analyze(vocals, voice=True)
            for system in systems:
                t0 = time.perf_counter()
                feats: Features | None = None
                error = ""
                if system == "ground_truth":
                    inst, feats = clip.reference, ref
                elif system == "shuffled":
                    other = clips[partner[k]].reference
                    if other.size >= vocals.size:
                        inst, feats = other[: vocals.size], clips[partner[k]].features["reference"]
                    else:  # looped, not zero-padded: padding would read as a dropout
                        inst = np.resize(other, vocals.size)
                elif system == "vocal_copy":
                    inst, feats = vocals, vf
                elif system == "separated_inst":
                    inst = clip.separated_inst
                else:
                    # A system that refuses a clip has produced silence: counted as a failure
                    # (``silence`` = 1, ``error`` in clips.jsonl), and the run goes on.
                    try:
                        if system == "baseline":
                            assert baseline is not None
                            inst, _ = baseline.accompany(
                                vocals, features=vf, exclude_track=clip.song
                            )
                        else:
                            take = models[system].accompany(vocals, SAMPLE_RATE, seed=config.seed)
                            inst = take.takes[0].instrumental
                    except SingsongError as e:
                        inst, error = np.zeros_like(vocals), f"{type(e).__name__}: {e}"
                gen_seconds[system] += time.perf_counter() - t0
                inst, mixture = _mixes(vocals, _fit_length(inst, vocals.size))
                feats = feats if feats is not None else analyze(inst)
                if system.startswith("model:"):
                    model_feats.setdefault((cond, system), {})[k] = feats
                metrics = agreement(vf, feats, ref) | level_checks(inst)
                rows.append({"set": manifest.parent.name, "clip": clip.id, "condition": cond,
                             "system": system, "error": error} | metrics)  # fmt: skip
                mix_emb.setdefault((cond, system), []).append(embedding.embed(mixture))
                if config.save_audio:  # e.g. for a listening study
                    folder = out / "audio" / cond / system.replace(":", "_").replace("/", "_")
                    save_audio(folder / f"{clip.id}.instrumental.wav", inst, clip=True)
                    save_audio(folder / f"{clip.id}.mix.wav", mixture, clip=True)
                if k in shown and cond == config.conditions[0]:
                    examples.append({"clip": clip.id, "system": system, "vocals": vocals,
                                     "instrumental": inst})  # fmt: skip
    # FAD reference: real mixes of the set's training clips, never the clips under test.
    reference = _reference_embeddings(manifest, len(clips), embedding)
    summary: dict[str, Any] = {"clips": len(clips), "conditions": {}}
    labels = ("set", "clip", "condition", "system", "error")
    metric_names = [k for k in rows[0] if k not in labels]
    summary["failures"] = {
        s: sum(1 for r in rows if r["system"] == s and r["error"]) for s in systems
    }
    for cond in config.conditions:
        per_system: dict[str, Any] = {}
        for system in systems:
            sel = [r for r in rows if r["condition"] == cond and r["system"] == system]
            stats = {m: _bootstrap_mean([r[m] for r in sel], config.rounds, config.seed)
                     for m in metric_names}  # fmt: skip
            value, low, high = bootstrap_fad(
                mix_emb[(cond, system)], reference, rounds=config.fad_rounds, seed=config.seed
            )
            stats["fad"] = {"mean": value, "low": low, "high": high, "n": len(sel)}
            per_system[system] = stats
        summary["conditions"][cond] = per_system
    summary["separation"] = {
        cond: _separation(rows, cond, metric_names, config) for cond in config.conditions
    }
    matched = {(r["condition"], r["system"], r["clip"]): r for r in rows}
    summary["listening"] = {
        cond: {
            system: _listening(
                clips, partner, cond, system, model_feats[(cond, system)], matched, config
            )
            for system in systems
            if system.startswith("model:")
        }
        for cond in config.conditions
    }
    summary["analysis_vs_truth"] = _analysis_accuracy(clips, config)
    elapsed = time.perf_counter() - started
    summary["seconds"] = {"total": elapsed, "per_clip": elapsed / len(clips)}
    summary["generation_seconds_per_clip"] = {s: v / len(clips) for s, v in gen_seconds.items()}
    summary["embedding"] = f"{embedding.name}-v{embedding.version}"
    with atomic_write(out / "clips.jsonl") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    from singsong.evaluation.report import plot_examples

    plot_examples(examples, out / "examples.png")
    return summary


def _separation(
    rows: list[dict[str, Any]], cond: str, metrics: list[str], config: EvalConfig
) -> dict[str, Any]:
    """Per metric, ground truth minus shuffled, paired by clip (mean and bootstrap 95 % CI):
    the check that a fit metric tells a true pair from a shuffled one (DESIGN.md)."""
    by = {(r["system"], r["clip"]): r for r in rows if r["condition"] == cond}
    clips = [c for (s, c) in by if s == "ground_truth"]
    out = {}
    for m in metrics:
        diffs = [by[("ground_truth", c)][m] - by[("shuffled", c)][m] for c in clips]
        out[m] = _bootstrap_mean(diffs, config.rounds, config.seed)
    return out


LISTENING_METRICS = ("key_vs_vocals", "harmonic_fit", "beat_alignment")


def _listening(
    clips: list[Clip],
    partner: list[int],
    cond: str,
    system: str,
    feats: dict[int, Features],
    matched: dict[tuple[str, str, str], dict[str, Any]],
    config: EvalConfig,
) -> dict[str, Any]:
    """Does a model listen? Per fit metric, its accompaniment of each clip's vocals minus its
    accompaniment of the shuffle partner's vocals, both scored against this clip's vocals
    (paired by clip, bootstrap 95 % CI): the generation-side twin of ground truth minus
    shuffled. About zero: the model plays the same whatever is sung."""
    diffs: dict[str, list[float]] = {m: [] for m in LISTENING_METRICS}
    for k, clip in enumerate(clips):
        own = matched[(cond, system, clip.id)]  # scored in the main loop
        other = agreement(clip.features[cond], feats[partner[k]], clip.features["reference"])
        for m in LISTENING_METRICS:
            diffs[m].append(own[m] - other[m])
    return {m: _bootstrap_mean(d, config.rounds, config.seed) for m, d in diffs.items()}


def _reference_embeddings(manifest: Path, n: int, embedding: Any) -> list[np.ndarray]:
    rows = _truth_rows(manifest, heldout=False)
    if len(rows) < 2:
        raise SingsongError(f"{manifest} has no training clips with true stems for FAD reference")
    rows = [rows[i] for i in np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(int)]
    out = []
    for r in rows:
        v, i = _stem(manifest, r, "true_vocals"), _stem(manifest, r, "true_instrumental")
        out.append(embedding.embed(_mixes(v, _fit_length(i, v.size))[1]))
    return out


def _analysis_accuracy(clips: list[Clip], config: EvalConfig) -> dict[str, Any]:
    """How well key and tempo estimates match the songbook's meta.json (songbook sets only)."""
    known = [c for c in clips if c.truth is not None and c.truth_tempo is not None]
    if not known:
        return {}
    out: dict[str, Any] = {"clips": len(known)}
    values: dict[str, list[float]] = {}
    for c in known:
        assert c.truth is not None and c.truth_tempo is not None
        ref = c.features["reference"]
        row = {
            "instrumental_key_exact": float(mirex_key_score(ref.key, c.truth) == 1.0),
            "instrumental_key_mirex": mirex_key_score(ref.key, c.truth),
            "instrumental_tempo_ok": float(tempo_match(ref.tempo, c.truth_tempo)),
        }
        for cond in config.conditions:
            row[f"vocal_key_mirex_{cond}"] = mirex_key_score(c.features[cond].key, c.truth)
            row[f"vocal_tempo_ok_{cond}"] = float(
                tempo_match(c.features[cond].tempo, c.truth_tempo)
            )
        for name, v in row.items():
            values.setdefault(name, []).append(v)
    for name, vs in values.items():
        out[name] = _bootstrap_mean(vs, config.rounds, config.seed)
    return out


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run every set; write OUT/<set>/clips.jsonl, OUT/metrics.json and OUT/report.md."""
    from singsong.evaluation.fad import one_blas_thread
    from singsong.evaluation.report import write_report

    out = Path(config.out)
    result: dict[str, Any] = {"config": asdict(config), "sets": {}}
    for m in config.manifests:
        manifest = Path(m)
        name = manifest.parent.name
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        with one_blas_thread():  # see there: shared cores
            result["sets"][name] = evaluate_set(manifest, config, folder)
    with atomic_write(out / "metrics.json") as f:
        json.dump(result, f, indent=1)
    write_report(result, out)
    return result

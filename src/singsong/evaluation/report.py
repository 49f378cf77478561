"""The Markdown report of ``singsong eval run``: tables with 95 % intervals, bar plots and
spectrogram examples (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from singsong import SAMPLE_RATE
from singsong.audio import atomic_write
from singsong.evaluation.agreement import FIT_METRICS
from singsong.evaluation.analysis import require

__all__ = ["format_table", "plot_bars", "plot_examples", "write_report"]

METRICS = (*FIT_METRICS, "vocal_copy", "fad", "silence", "clipping")
HIGHER_IS_BETTER = {m: True for m in FIT_METRICS} | {
    "vocal_copy": False, "fad": False, "silence": False, "clipping": False,
}  # fmt: skip


def _pyplot() -> Any:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # files only: no display needed
    return require("matplotlib.pyplot")


def _cell(s: dict[str, float], digits: int = 3) -> str:
    if not np.isfinite(s["mean"]):
        return "–"
    return f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def format_table(per_system: dict[str, dict[str, dict[str, float]]]) -> str:
    """One Markdown table: a row per system, a column per metric, ``mean [low, high]``."""
    head = "| system | " + " | ".join(METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    for system, stats in per_system.items():
        lines.append(f"| {system} | " + " | ".join(_cell(stats[m]) for m in METRICS) + " |")
    return "\n".join(lines)


def plot_bars(per_condition: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """A panel per metric; bars per system, grouped by condition, with 95 % interval whiskers."""
    plt = _pyplot()
    conds = list(per_condition)
    systems = list(per_condition[conds[0]])
    fig, axes = plt.subplots(2, 5, figsize=(20, 7))
    width = 0.8 / len(conds)
    for ax, metric in zip(axes.ravel(), METRICS, strict=False):
        for j, cond in enumerate(conds):
            s = [per_condition[cond][sys][metric] for sys in systems]
            mean = np.array([v["mean"] for v in s])
            err = np.array([[v["mean"] - v["low"], v["high"] - v["mean"]] for v in s]).T
            err = np.clip(np.nan_to_num(err), 0, None)  # [2, systems]
            x = np.arange(len(systems)) + j * width
            ax.bar(x, np.nan_to_num(mean), width, yerr=err, label=cond, capsize=2)
        ax.set_xticks(np.arange(len(systems)) + width * (len(conds) - 1) / 2)
        ax.set_xticklabels(systems, rotation=35, ha="right", fontsize=8)
        arrow = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        ax.set_title(f"{metric} ({arrow} is better)", fontsize=9)
        if metric == "fad":  # copies and noise sit orders of magnitude above real music
            ax.set_yscale("log")
    for ax in axes.ravel()[len(METRICS) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


def plot_examples(examples: list[dict[str, Any]], path: Path) -> None:
    """Log-mel spectrograms: a row per example clip, the vocals then each system's instrumental."""
    if not examples:
        return
    librosa = require("librosa")

    plt = _pyplot()
    clips = list(dict.fromkeys(e["clip"] for e in examples))
    systems = list(dict.fromkeys(e["system"] for e in examples))
    fig, axes = plt.subplots(len(clips), len(systems) + 1, figsize=(3 * (len(systems) + 1),
                             2.4 * len(clips)), squeeze=False)  # fmt: skip

    def show(ax: Any, wav: np.ndarray, title: str) -> None:
        mel = librosa.feature.melspectrogram(y=wav, sr=SAMPLE_RATE, n_fft=1024, hop_length=320)
        ax.imshow(librosa.power_to_db(mel, ref=np.max, top_db=80), origin="lower", aspect="auto")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])

    for r, clip in enumerate(clips):
        sel = {e["system"]: e for e in examples if e["clip"] == clip}
        show(axes[r, 0], sel[systems[0]]["vocals"], f"{clip}: vocals")
        for c, system in enumerate(systems, start=1):
            show(axes[r, c], sel[system]["instrumental"], system)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=70)
    plt.close(fig)


def write_report(result: dict[str, Any], out: Path) -> Path:
    """OUT/report.md with a section per set (tables, bar plots, spectrogram examples)."""
    lines = ["# singsong evaluation", ""]
    cfg = result["config"]
    lines += [f"Manifests: {', '.join(cfg['manifests'])}; up to {cfg['max_clips']} held-out "
              f"clips per set; intervals: bootstrap 95 % ({cfg['rounds']} rounds, FAD "
              f"{cfg['fad_rounds']}).", ""]  # fmt: skip
    for name, s in result["sets"].items():
        lines += [f"## {name} ({s['clips']} clips)", ""]
        lines += [f"FAD embedding: {s['embedding']}, against real mixes of the set's training "
                  f"clips. Time: {s['seconds']['per_clip']:.2f} s per clip "
                  f"({s['seconds']['total']:.0f} s in all).", ""]  # fmt: skip
        failed = {k: v for k, v in s.get("failures", {}).items() if v}
        if failed:
            what = ", ".join(f"{k} {v}" for k, v in failed.items())
            lines += [f"**Failures** (clip x condition runs that produced no audio; scored as "
                      f"silence, reasons in clips.jsonl): {what}.", ""]  # fmt: skip
        for cond, per_system in s["conditions"].items():
            lines += [f"### {cond} vocals", "", format_table(per_system), ""]
            sep = s.get("separation", {}).get(cond)
            if sep:
                names = [m for m in METRICS if m in sep]
                lines += ["Ground truth minus shuffled, paired by clip:", ""]
                lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
                lines += ["| " + " | ".join(_cell(sep[m]) for m in names) + " |", ""]
            listening = s.get("listening", {}).get(cond) or {}
            if listening:
                names = list(next(iter(listening.values())))
                lines += ["Does the model listen? Its accompaniment of the clip's vocals minus "
                          "its accompaniment of another clip's vocals, both scored against "
                          "this clip's vocals, paired by clip:", ""]  # fmt: skip
                lines += ["| model | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
                for system, diffs in listening.items():
                    cells = " | ".join(_cell(diffs[m]) for m in names)
                    lines += [f"| {system} | {cells} |"]
                lines.append("")
        plot_bars(s["conditions"], out / name / "metrics.png", name)
        lines += [f"![metrics]({name}/metrics.png)", ""]
        if (out / name / "examples.png").is_file():
            lines += [f"![examples]({name}/examples.png)", ""]
        acc = s.get("analysis_vs_truth") or {}
        if acc:
            lines += ["Analysis against the songbook's meta.json (key, tempo):", ""]
            lines += ["| check | mean [95 % CI] |", "|---|---|"]
            lines += [f"| {k} | {_cell(v)} |" for k, v in acc.items() if isinstance(v, dict)]
            lines.append("")
    path = out / "report.md"
    with atomic_write(path) as f:
        f.write("\n".join(lines) + "\n")
    return path

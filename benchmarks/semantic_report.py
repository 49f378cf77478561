"""What the semantic codes carry: speed, robustness to noise, melody and harmony read from them.

    python benchmarks/semantic_report.py --tokenizer runs/semantic/default \\
        --mir1k ../shared/data/mir1k --songbook data/songbook [--songs 60]

Prints a Markdown report (labelled with the machine):

- throughput: encode speed in x real time on 10 s clips with one torch thread;
- robustness: fraction of tokens unchanged when white noise at 20 dB SNR is added to the vocals of
  the held-out MIR-1K singers (all frames, and voiced frames only);
- melody: a readout from vocal tokens to pitch. Each code is mapped to the most frequent pitch
  class (and MIDI note) of the voiced frames it labels among the TRAIN singers; accuracy is taken
  on the voiced frames of the HELD-OUT singers, beside the majority-class baseline and chance.
  MIR-1K labels come every 20 ms (40 ms windows starting at 0), so token t (centre 40 t + 20 ms)
  takes label 2 t, the nearest in time;
- the same readout on songbook vocals against the written notes of meta.json, and a harmony
  readout from instrumental tokens (drums + bass + other) to the chord root of meta.json.

MIR-1K (Hsu & Jang) is free for research use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from singsong.audio import load_audio
from singsong.data.mir1k import list_clips, load_pitch, load_stems
from singsong.data.splits import is_valid_song
from singsong.tokenizers.semantic import SemanticTokenizer

FRAME_S = 0.04


def encode(tok: SemanticTokenizer, wav: np.ndarray) -> np.ndarray:
    return tok.encode(torch.from_numpy(np.ascontiguousarray(wav))[None])[0, 0].numpy()


def readout(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], k: int, n: int
) -> tuple[float, float]:
    """Most frequent label per code on train (codes, labels in [0, n)) -> (accuracy, majority)."""
    (ct, lt), (cv, lv) = train, test
    table = np.zeros((k, n))
    np.add.at(table, (ct, lt), 1)
    majority = np.bincount(lt, minlength=n).argmax()
    predict = np.where(table.sum(1) > 0, table.argmax(1), majority)
    return float((predict[cv] == lv).mean()), float((lv == majority).mean())


def throughput(tok: SemanticTokenizer, clips: list[np.ndarray]) -> tuple[float, float]:
    """x real time of (features only, full encode) over 10 s clips, one thread."""
    encode(tok, clips[0])  # warm-up
    seconds = len(clips) * 10.0
    start = time.perf_counter()
    for wav in clips:
        tok.extractor(torch.from_numpy(wav)[None])
    feats = time.perf_counter() - start
    start = time.perf_counter()
    for wav in clips:
        encode(tok, wav)
    full = time.perf_counter() - start
    return seconds / feats, seconds / full


def mir1k_measures(tok: SemanticTokenizer, root: str, snr_db: float) -> dict:
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {"train": [], "valid": []}
    same_all: list[np.ndarray] = []
    same_voiced: list[np.ndarray] = []
    ten_second: list[np.ndarray] = []
    for split in ("train", "valid"):
        for clip in list_clips(root, split):
            vocals, accompaniment = load_stems(clip)
            if len(ten_second) < 20 and len(vocals) >= 160_000:
                ten_second.append(np.ascontiguousarray((vocals + accompaniment)[:160_000]))
            pitch = load_pitch(clip)
            codes = encode(tok, vocals)
            t = min(len(codes), (len(pitch) + 1) // 2)
            labels = pitch[2 * np.arange(t)]  # nearest 20 ms label to each 40 ms token
            voiced = labels > 0
            rows[split].append((codes[:t][voiced], np.round(labels[voiced]).astype(np.int64)))
            if split == "valid":
                power = float(np.mean(vocals.astype(np.float64) ** 2))
                noise = rng.standard_normal(len(vocals)) * np.sqrt(power / 10 ** (snr_db / 10))
                noisy = encode(tok, (vocals + noise).astype(np.float32))
                same_all.append(noisy == codes)
                same_voiced.append((noisy == codes)[:t][voiced])
    k = tok.codebook_size
    train = [np.concatenate(x) for x in zip(*rows["train"], strict=True)]
    valid = [np.concatenate(x) for x in zip(*rows["valid"], strict=True)]
    pc = readout((train[0], train[1] % 12), (valid[0], valid[1] % 12), k, 12)
    note = readout((train[0], train[1]), (valid[0], valid[1]), k, 128)
    return {
        "pitch_class": pc,
        "note": note,
        "frames": (len(train[0]), len(valid[0])),
        "same_all": float(np.concatenate(same_all).mean()),
        "same_voiced": float(np.concatenate(same_voiced).mean()),
        "codes_used": len(np.unique(np.concatenate([train[0], valid[0]]))),
        "clips": ten_second,
    }


def songbook_measures(tok: SemanticTokenizer, root: Path, max_songs: int) -> dict:
    songs = sorted(p for p in root.iterdir() if (p / "meta.json").is_file())
    songs = [s for s in songs if all((s / f"{n}.flac").is_file() for n in STEMS)]
    valid = [s for s in songs if is_valid_song(s.name)][: max(1, max_songs // 4)]
    train = [s for s in songs if not is_valid_song(s.name)][: max_songs - len(valid)]
    melody: dict[bool, list] = {True: [], False: []}
    harmony: dict[bool, list] = {True: [], False: []}
    for song in train + valid:
        meta = json.loads((song / "meta.json").read_text())
        held_out = is_valid_song(song.name)
        stems = {n: load_audio(song / f"{n}.flac") for n in STEMS}
        band = stems["drums"] + stems["bass"] + stems["other"]
        for wav, events, key, store in (
            (stems["vocals"], meta["vocal_notes"], "pitch", melody),
            (band, meta["chords"], "root", harmony),
        ):
            codes = encode(tok, wav)
            labels = _labels_at_frames(events, key, meta, len(codes))
            keep = labels >= 0
            store[held_out].append((codes[keep], labels[keep]))
    out: dict[str, tuple] = {"songs": (len(train), len(valid))}
    k = tok.codebook_size
    for name, store in (("melody", melody), ("harmony", harmony)):
        tr = [np.concatenate(x) for x in zip(*store[False], strict=True)]
        va = [np.concatenate(x) for x in zip(*store[True], strict=True)]
        out[name] = readout((tr[0], tr[1]), (va[0], va[1]), k, 12)
    return out


STEMS = ("vocals", "drums", "bass", "other")
_ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _labels_at_frames(events: list[dict], key: str, meta: dict, frames: int) -> np.ndarray:
    """Pitch class sounding at each token's centre (-1 where none): [frames]."""
    labels = np.full(frames, -1, dtype=np.int64)
    centres = (np.arange(frames) + 0.5) * FRAME_S
    for e in events:
        if key == "pitch":
            pc = round(float(e["pitch"])) % 12
        else:
            sym = e["symbol"]
            pc = _ROOTS[sym[0]] + (sym[1:2] == "#") - (sym[1:2] == "b")
        labels[(centres >= e["start"]) & (centres < e["end"])] = pc % 12
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--mir1k", required=True)
    parser.add_argument("--songbook", type=Path)
    parser.add_argument("--songs", type=int, default=60, help="songbook songs to read (default 60)")
    parser.add_argument("--snr", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tok = SemanticTokenizer.from_pretrained(args.tokenizer)
    mir = mir1k_measures(tok, args.mir1k, args.snr)
    fast, full = throughput(tok, mir["clips"])
    chance = f"chance {1 / 12:.3f}"
    n_tr, n_va = mir["frames"]
    rows = [
        (f"encode speed, 10 s clips ({len(mir['clips'])} MIR-1K mixes)", f"{full:.0f}x real time",
         f"features alone {fast:.0f}x"),
        (f"tokens unchanged, + white noise at {args.snr:g} dB SNR, held-out MIR-1K vocals, all "
         "frames", f"{mir['same_all']:.3f}", ""),
        ("... voiced frames only", f"{mir['same_voiced']:.3f}", ""),
        (f"MIR-1K melody readout: pitch class (train {n_tr} / held-out {n_va} voiced frames)",
         f"{mir['pitch_class'][0]:.3f}", f"majority {mir['pitch_class'][1]:.3f}, {chance}"),
        ("MIR-1K melody readout: MIDI note (octave counts)", f"{mir['note'][0]:.3f}",
         f"majority {mir['note'][1]:.3f}, chance {1 / 48:.3f}"),
        ("codes used on MIR-1K vocals", f"{mir['codes_used']} / {tok.codebook_size}", ""),
    ]  # fmt: skip
    if args.songbook is not None:
        sb = songbook_measures(tok, args.songbook, args.songs)
        n_tr, n_va = sb["songs"]
        rows += [
            (f"songbook melody readout: vocal tokens -> pitch class of the written note "
             f"({n_tr} train / {n_va} held-out songs)", f"{sb['melody'][0]:.3f}",
             f"majority {sb['melody'][1]:.3f}, {chance}"),
            ("songbook harmony readout: instrumental tokens -> chord root",
             f"{sb['harmony'][0]:.3f}", f"majority {sb['harmony'][1]:.3f}, {chance}"),
        ]  # fmt: skip
    size = sum(f.stat().st_size for f in args.tokenizer.iterdir() if f.is_file())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## Semantic tokenizer report: `{tok.name}` {tok.version}\n")
    print(
        f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs (shared with "
        f"other jobs), torch {torch.__version__}, 1 thread; {now}. "
        f"Artifact {args.tokenizer} ({size / 1e6:.2f} MB).\n"
    )
    print("| measure | value | baseline |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

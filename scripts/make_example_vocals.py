"""Cut the example vocals that ship with singsong from a songbook song (so their licence is ours).

    python scripts/make_example_vocals.py --songbook data/songbook --song s0-00029 \
        --start 22.6 --seconds 12 --out src/singsong/assets/examples

The default song is a held-out (``valid`` split) song of the seed-0 songbook that the default
recipe renders: pop, C major, 104 BPM, high voice; the cut is its first chorus. Writes
``vocals.flac`` (16 kHz mono, 10 ms fades) and ``vocals.json`` (where it came from).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from singsong.audio import load_audio, save_audio
from singsong.data.splits import track_split

SAMPLE_RATE = 16_000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songbook", type=Path, default=Path("data/songbook"))
    p.add_argument("--song", default="s0-00029")
    p.add_argument("--start", type=float, default=22.6, help="seconds")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--out", type=Path, default=Path("src/singsong/assets/examples"))
    args = p.parse_args()

    song = args.songbook / args.song
    meta = json.loads((song / "meta.json").read_text())
    if track_split("songbook", args.song) != "valid":
        raise SystemExit(f"{args.song} is a training song: pick a held-out one (index % 10 == 9)")
    audio = load_audio(song / "vocals.flac")  # [N] at 16 kHz
    a = round(args.start * SAMPLE_RATE)
    clip = np.asarray(audio[a : a + round(args.seconds * SAMPLE_RATE)], dtype=np.float32)
    fade = SAMPLE_RATE // 100
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    clip[:fade] *= ramp
    clip[-fade:] *= ramp[::-1]
    args.out.mkdir(parents=True, exist_ok=True)
    save_audio(args.out / "vocals.flac", clip)
    notes = [n for n in meta["vocal_notes"] if args.start <= n["start"] < args.start + args.seconds]
    info = {
        "source": f"singsong songbook, seed {meta['seed']}, song {args.song} (held-out split)",
        "start_seconds": args.start,
        "seconds": len(clip) / SAMPLE_RATE,
        "style": meta["style"],
        "key": meta["key"],
        "tempo": meta["tempo"],
        "time_signature": meta["time_signature"],
        "voice": meta["voice"],
        "lyrics": " ".join(n["syllable"] for n in notes),
        "licence": "singsong's own (rendered by singsong: flite voices + WORLD, no third-party "
        "recording); same licence as the code",
    }
    (args.out / "vocals.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {args.out / 'vocals.flac'} ({info['seconds']:.1f} s): {info['lyrics']}")


if __name__ == "__main__":
    main()

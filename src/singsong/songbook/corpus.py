"""The songbook corpus: plan songs from a seed, render them in parallel, resumably.

Layout of ``out``::

    out/<song_id>/{vocals,drums,bass,other,mixture}.flac
    out/<song_id>/meta.json      # written last: a song with meta.json is finished
    out/manifest.jsonl           # one line per finished song, rewritten at the end of each run

A song is rendered into ``out/.partial/<song_id>`` and renamed into place when complete, so an
interruption never leaves a half-written song where a reader (or the next run) would trust it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from singsong import SAMPLE_RATE, __version__
from singsong.audio import atomic_write, save_audio
from singsong.data.engine import ENGINES, run_map
from singsong.errors import SingsongError
from singsong.songbook.composer import STEMS, Song, compose
from singsong.songbook.render import Renderer, find_soundfont
from singsong.songbook.styles import STYLE_NAMES, get_style

MANIFEST = "manifest.jsonl"
FILES = (*STEMS, "mixture")


@dataclass(frozen=True)
class SongbookConfig:
    out: Path
    hours: float
    seed: int = 0
    styles: tuple[str, ...] = STYLE_NAMES
    jobs: int = 1
    short: bool = False  # short songs (about 20 s): for tests and demos
    soundfont: str | None = None
    engine: str = "local"  # or "ray": see singsong.data.engine

    def __post_init__(self) -> None:
        if not self.hours > 0:
            raise SingsongError(f"--hours must be positive, got {self.hours}")
        if self.jobs < 1:
            raise SingsongError(f"--jobs must be at least 1, got {self.jobs}")
        if self.engine not in ENGINES:
            raise SingsongError(f"--engine must be one of {', '.join(ENGINES)}")
        if not self.styles:
            raise SingsongError("--styles needs at least one style")
        try:
            for style in self.styles:
                get_style(style)
        except ValueError as e:
            raise SingsongError(str(e)) from None
        find_soundfont(self.soundfont)  # fail now, not in every worker


def song_seed(corpus_seed: int, index: int) -> int:
    """Independent, reproducible seed of the ``index``-th song of a corpus."""
    return int(np.random.SeedSequence([corpus_seed, index]).generate_state(1)[0])


def plan(config: SongbookConfig) -> list[Song]:
    """Compose songs until their total duration reaches ``config.hours``.

    Song ``i`` depends only on (seed, i, styles, short), so a larger ``--hours`` extends a corpus
    without changing the songs already in it.
    """
    songs: list[Song] = []
    total = 0.0
    while total < config.hours * 3600:
        i = len(songs)
        song = compose(
            song_seed(config.seed, i),
            song_id=f"s{config.seed}-{i:05d}",
            styles=config.styles,
            short=config.short,
        )
        songs.append(song)
        total += song.duration
    return songs


def is_finished(out: Path, song_id: str) -> bool:
    return (out / song_id / "meta.json").is_file()


def build_songbook(config: SongbookConfig, *, progress: bool = True) -> dict:
    """Render the corpus; returns a summary (songs rendered, skipped, failed, seconds, speed)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    songs = plan(config)
    todo = [s for s in songs if not is_finished(out, s.song_id)]
    skipped = len(songs) - len(todo)
    failures: list[str] = []
    rendered_seconds = 0.0
    start = time.perf_counter()
    bar = _progress(total=len(songs), initial=skipped, enabled=progress)
    items = [{"song_id": s.song_id, "seed": s.seed} for s in todo]
    for result in run_map(
        partial(SongWorker, config), items, engine=config.engine, jobs=config.jobs
    ):
        if result["error"]:
            failures.append(f"{result['id']}: {result['error']}")
            bar.write(f"failed: {result['id']}: {result['error']}")
        else:
            rendered_seconds += result["seconds"]
        bar.update(1)
    bar.close()
    wall = time.perf_counter() - start
    write_manifest(out, [s.song_id for s in songs])
    shutil.rmtree(out / ".partial", ignore_errors=True)
    summary = {
        "songs": len(songs),
        "rendered": len(todo) - len(failures),
        "skipped": skipped,
        "failed": failures,
        "audio_seconds": round(rendered_seconds, 1),
        "wall_seconds": round(wall, 1),
        "x_real_time": round(rendered_seconds / wall, 1) if wall > 0 and rendered_seconds else 0.0,
        "manifest": str(out / MANIFEST),
    }
    return summary


class SongWorker:
    """Renders one planned song into place; built once per worker process (it holds the synth).

    Items carry the song's plan (index and seed), not the song: composing is deterministic and
    cheap, so the worker writes the same song again instead of receiving it.
    """

    def __init__(self, config: SongbookConfig) -> None:
        self.config = config
        self.out = Path(config.out)
        self.renderer = Renderer(soundfont=config.soundfont)

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        song = compose(
            item["seed"],
            song_id=item["song_id"],
            styles=self.config.styles,
            short=self.config.short,
        )
        return {
            "id": song.song_id,
            "seconds": song.duration,
            "error": self._render_into_place(song),
        }

    def _render_into_place(self, song: Song) -> str:
        """Never raises: a failure is reported (and the song retried next run), not fatal."""
        partial = self.out / ".partial" / song.song_id
        try:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            audio = self.renderer.render(song)
            for stem in STEMS:
                save_audio(partial / f"{stem}.flac", audio.stems[stem], SAMPLE_RATE)
            save_audio(partial / "mixture.flac", audio.mixture, SAMPLE_RATE)
            meta = song.meta() | {
                "sample_rate": SAMPLE_RATE,
                "gains_db": audio.gains_db,
                "reverb_seconds": audio.reverb_seconds,
                "soundfont": self.renderer.soundfont.name,
                "singsong_version": __version__,
            }
            with atomic_write(partial / "meta.json") as f:
                json.dump(meta, f, indent=1)
            final = self.out / song.song_id
            if final.exists():  # a folder without meta.json, left by an older interrupted run
                shutil.rmtree(final)
            partial.rename(final)
            return ""
        except Exception as e:
            shutil.rmtree(partial, ignore_errors=True)
            return f"{type(e).__name__}: {e}"


def write_manifest(out: Path, song_ids: list[str]) -> int:
    """Rewrite ``out/manifest.jsonl`` from the finished songs among ``song_ids``."""
    rows = []
    for song_id in song_ids:
        meta_path = out / song_id / "meta.json"
        if not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        rows.append(
            {
                "song_id": song_id,
                "path": song_id,
                "stems": {name: f"{song_id}/{name}.flac" for name in FILES},
                "duration": meta["duration"],
                "sample_rate": meta["sample_rate"],
                "style": meta["style"],
                "key": meta["key"],
                "tempo": meta["tempo"],
                "time_signature": meta["time_signature"],
                "voice": meta["voice"],
                "seed": meta["seed"],
            }
        )
    with atomic_write(out / MANIFEST) as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return len(rows)


def _progress(*, total: int, initial: int, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="song", disable=not enabled, desc="songbook")

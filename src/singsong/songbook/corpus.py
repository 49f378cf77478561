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
import multiprocessing as mp
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singsong import SAMPLE_RATE, __version__
from singsong.audio import atomic_write, save_audio
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

    def __post_init__(self) -> None:
        if not self.hours > 0:
            raise SingsongError(f"--hours must be positive, got {self.hours}")
        if self.jobs < 1:
            raise SingsongError(f"--jobs must be at least 1, got {self.jobs}")
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
    for song_id, seconds, error in _run(todo, out, config):
        if error:
            failures.append(f"{song_id}: {error}")
            bar.write(f"failed: {song_id}: {error}")
        else:
            rendered_seconds += seconds
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


def _run(todo: list[Song], out: Path, config: SongbookConfig) -> Iterator[tuple[str, float, str]]:
    if config.jobs == 1 or len(todo) <= 1:
        renderer = Renderer(soundfont=config.soundfont)
        for song in todo:
            yield _render_one(renderer, song, out)
        return
    # 'spawn' keeps workers free of the parent's threads (torch) and FluidSynth state.
    ctx = mp.get_context("spawn")
    with ctx.Pool(config.jobs, initializer=_init_worker, initargs=(config.soundfont,)) as pool:
        yield from pool.imap_unordered(_worker, [(song, out) for song in todo])


_worker_renderer: list[Renderer] = []  # one Renderer per worker process, made by _init_worker


def _init_worker(soundfont: str | None) -> None:
    _worker_renderer.append(Renderer(soundfont=soundfont))


def _worker(args: tuple[Song, Path]) -> tuple[str, float, str]:
    song, out = args
    return _render_one(_worker_renderer[0], song, out)


def _render_one(renderer: Renderer, song: Song, out: Path) -> tuple[str, float, str]:
    """Render one song into place; never raises (a failure is reported, not fatal to the run)."""
    partial = out / ".partial" / song.song_id
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        audio = renderer.render(song)
        for stem in STEMS:
            save_audio(partial / f"{stem}.flac", audio.stems[stem], SAMPLE_RATE)
        save_audio(partial / "mixture.flac", audio.mixture, SAMPLE_RATE)
        meta = song.meta() | {
            "sample_rate": SAMPLE_RATE,
            "gains_db": audio.gains_db,
            "reverb_seconds": audio.reverb_seconds,
            "soundfont": renderer.soundfont.name,
            "singsong_version": __version__,
        }
        with atomic_write(partial / "meta.json") as f:
            json.dump(meta, f, indent=1)
        final = out / song.song_id
        if final.exists():  # a stale folder without meta.json from an older, interrupted layout
            shutil.rmtree(final)
        partial.rename(final)
        return song.song_id, song.duration, ""
    except Exception as e:
        shutil.rmtree(partial, ignore_errors=True)
        return song.song_id, 0.0, f"{type(e).__name__}: {e}"


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

"""The pairwise listening study: the study folder, the answers database and the win rates.

As in the paper's study, a listener hears two mixes with the same vocals, made by two systems,
and picks the one whose accompaniment fits better; a system's win rate against another, with a
Wilson 95 % interval, is the result.

``STUDY_DIR/study.json``::

    {"items": [{"id": "song-01", "vocals": "audio/song-01/vocals.wav",
                "systems": {"singsong": "audio/song-01/singsong.wav", "retrieval": "..."}}]}

Paths are relative to STUDY_DIR (absolute ones are allowed). :func:`make_study` builds such a
folder from one folder of mixes per system with matching file names.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

from singsong import SAMPLE_RATE
from singsong.audio import atomic_write, load_audio, loudness_normalize, save_audio
from singsong.errors import SingsongError

__all__ = [
    "STUDY_FILE", "Answer", "PairResult", "Study", "StudyDB", "StudyItem", "load_study",
    "make_study", "pair_results", "system_results", "wilson", "write_results",
]  # fmt: skip

STUDY_FILE = "study.json"
STUDY_LUFS = -23.0  # every clip at one loudness: listeners otherwise favour the louder one
Z95 = 1.959963984540054  # the 97.5 % normal quantile
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")  # item ids and system names
_AUDIO = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".webm", ".aiff"}


@dataclass(frozen=True)
class StudyItem:
    id: str
    systems: Mapping[str, Path]  # system name -> mix file
    vocals: Path | None = None


@dataclass(frozen=True)
class Study:
    root: Path
    items: tuple[StudyItem, ...]

    @property
    def systems(self) -> tuple[str, ...]:
        return tuple(sorted({s for item in self.items for s in item.systems}))

    def item(self, item_id: str) -> StudyItem | None:
        return next((i for i in self.items if i.id == item_id), None)


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise SingsongError(
            f"{kind} {name!r}: use letters, digits and . _ + - (at most 80, starting alphanumeric)"
        )
    return name


def load_study(study_dir: Path) -> Study:
    """Read and check ``STUDY_DIR/study.json``: unique ids, >= 2 systems per item, files exist."""
    path = study_dir / STUDY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SingsongError(f"{path} not found: build one with `singsong study make`") from None
    except (OSError, json.JSONDecodeError) as e:
        raise SingsongError(f"cannot read {path}: {e}") from None
    raw = data.get("items") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise SingsongError(f"{path}: expected {{'items': [...]}} with at least one item")

    def file(value: object, where: str) -> Path:
        if not isinstance(value, str):
            raise SingsongError(f"{path}: {where}: expected a file path, got {value!r}")
        p = (study_dir / value).resolve()
        if not p.is_file():
            raise SingsongError(f"{path}: {where}: file not found: {p}")
        return p

    items, seen = [], set()
    for k, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("systems"), dict):
            raise SingsongError(f"{path}: item {k}: expected {{'id', 'systems': {{...}}}}")
        item_id = _check_name(f"{path}: item {k} id", entry.get("id"))
        if item_id in seen:
            raise SingsongError(f"{path}: item id {item_id!r} appears twice")
        seen.add(item_id)
        systems = {
            _check_name(f"{path}: {item_id}: system", name): file(mix, f"{item_id}/{name}")
            for name, mix in entry["systems"].items()
        }
        if len(systems) < 2:
            raise SingsongError(f"{path}: item {item_id!r} needs at least two systems to compare")
        vocals = entry.get("vocals")
        items.append(
            StudyItem(item_id, systems, file(vocals, f"{item_id}/vocals") if vocals else None)
        )
    return Study(study_dir, tuple(items))


def make_study(
    out: Path,
    systems: Mapping[str, Path],
    *,
    vocals: Path | None = None,
    lufs: float | None = STUDY_LUFS,
) -> tuple[Study, list[str]]:
    """Build a study folder from one folder of mixes per system, matched by file stem.

    Each clip is decoded, brought to ``lufs`` (``None`` = as is) and written to
    ``OUT/audio/<item>/<system>.wav``; ``vocals`` (optional) is a folder of the vocals alone.
    Returns the study and the names that were skipped because some system lacked them.
    """
    if len(systems) < 2:
        raise SingsongError("a study compares at least two systems: give --system twice or more")
    listings: dict[str, dict[str, Path]] = {}
    for name, folder in systems.items():
        _check_name("system", name)
        if not folder.is_dir():
            raise SingsongError(f"system {name}: {folder} is not a folder")
        listings[name] = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in _AUDIO}
        if not listings[name]:
            raise SingsongError(f"system {name}: no audio files in {folder}")
    every = set.union(*(set(v) for v in listings.values()))
    common = sorted(set.intersection(*(set(v) for v in listings.values())))
    if not common:
        raise SingsongError("no file name is shared by every system folder: nothing to compare")
    voc = {p.stem: p for p in vocals.iterdir()} if vocals is not None and vocals.is_dir() else {}
    if vocals is not None and not voc:
        raise SingsongError(f"vocals: {vocals} is not a folder with audio files")

    def copy(src: Path, dst: Path) -> str:
        wav = load_audio(src)  # [N] at 16 kHz
        if lufs is not None:
            wav = loudness_normalize(wav, SAMPLE_RATE, lufs)
        save_audio(out / dst, wav, SAMPLE_RATE, clip=True)
        return dst.as_posix()

    entries = []
    for stem in common:
        item_id = _check_name("file name", re.sub(r"[^A-Za-z0-9_.+-]", "_", stem)[:80])
        entry: dict[str, object] = {"id": item_id}
        if stem in voc:
            entry["vocals"] = copy(voc[stem], Path("audio", item_id, "vocals.wav"))
        entry["systems"] = {
            name: copy(listings[name][stem], Path("audio", item_id, f"{name}.wav"))
            for name in systems
        }
        entries.append(entry)
    with atomic_write(out / STUDY_FILE) as f:
        json.dump({"items": entries}, f, indent=1)
    return load_study(out), sorted(every - set(common))


# --- answers ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    token TEXT PRIMARY KEY, listener TEXT NOT NULL, item TEXT NOT NULL,
    system_a TEXT NOT NULL, system_b TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, listener TEXT NOT NULL, item TEXT NOT NULL,
    system_a TEXT NOT NULL, system_b TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b')), time REAL NOT NULL,
    trial TEXT UNIQUE);
"""


@dataclass(frozen=True)
class Answer:
    """One judgement: ``system_a`` played on the left, ``system_b`` on the right."""

    listener: str
    item: str
    system_a: str
    system_b: str
    choice: str  # "a" or "b"
    time: float

    @property
    def winner(self) -> str:
        return self.system_a if self.choice == "a" else self.system_b


class StudyDB:
    """The answers in SQLite: one short-lived connection per operation, so request threads never
    share one (sqlite3 connections are not thread-safe); WAL lets readers run beside a writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0)
        try:
            with db:  # commit on success, roll back on error
                yield db
        finally:
            db.close()

    def add_trial(self, token: str, listener: str, item: str, a: str, b: str) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?)",
                (token, listener, item, a, b, time.time()),
            )

    def trial(self, token: str, listener: str) -> tuple[str, str, str] | None:
        """(item, system_a, system_b) of this listener's trial ``token``, else ``None``."""
        with self.connect() as db:
            row = db.execute(
                "SELECT item, system_a, system_b FROM trials WHERE token = ? AND listener = ?",
                (token, listener),
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def answer(self, token: str, listener: str, choice: str) -> bool | None:
        """Record the choice for a trial: True; already answered: False; unknown: None."""
        with self.connect() as db:
            row = db.execute(
                "SELECT item, system_a, system_b FROM trials WHERE token = ? AND listener = ?",
                (token, listener),
            ).fetchone()
            if row is None:
                return None
            try:
                db.execute(
                    "INSERT INTO answers (listener, item, system_a, system_b, choice, time, trial)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (listener, *row, choice, time.time(), token),
                )
            except sqlite3.IntegrityError:  # the UNIQUE trial: a double click, a replay
                return False
        return True

    def answers(self, listener: str | None = None) -> list[Answer]:
        query = "SELECT listener, item, system_a, system_b, choice, time FROM answers"
        with self.connect() as db:
            if listener is None:
                rows = db.execute(query + " ORDER BY id").fetchall()
            else:
                rows = db.execute(query + " WHERE listener = ? ORDER BY id", (listener,)).fetchall()
        return [Answer(*r) for r in rows]


# --- results ------------------------------------------------------------------------------------


def wilson(wins: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``wins / n`` (Newcombe 1998, method 3);
    unlike the normal approximation it stays inside [0, 1] and is sound for small ``n``."""
    if not 0 <= wins <= n:
        raise SingsongError(f"wins must be in [0, n], got {wins} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # exact ends at 0 and n wins (the formula gives them only up to rounding)
    low = 0.0 if wins == 0 else max(0.0, centre - half)
    return low, 1.0 if wins == n else min(1.0, centre + half)


@dataclass(frozen=True)
class PairResult:
    """``system`` against ``other``: ``wins`` of ``n`` judgements, rate with Wilson 95 % CI."""

    system: str
    other: str
    n: int
    wins: int
    rate: float
    low: float
    high: float


def _result(system: str, other: str, wins: int, n: int) -> PairResult:
    low, high = wilson(wins, n)
    return PairResult(system, other, n, wins, wins / n if n else math.nan, low, high)


def pair_results(answers: Sequence[Answer]) -> list[PairResult]:
    """One row per pair of systems that met (alphabetical: ``system`` < ``other``)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for a in answers:
        x, y = sorted((a.system_a, a.system_b))
        c = counts.setdefault((x, y), [0, 0])
        c[0] += a.winner == x
        c[1] += 1
    return [_result(x, y, w, n) for (x, y), (w, n) in sorted(counts.items())]


def system_results(answers: Sequence[Answer]) -> list[PairResult]:
    """Each system against all the others pooled (``other`` = "all")."""
    wins: dict[str, int] = {}
    n: dict[str, int] = {}
    for a in answers:
        for s in (a.system_a, a.system_b):
            n[s] = n.get(s, 0) + 1
        wins[a.winner] = wins.get(a.winner, 0) + 1
    return [_result(s, "all", wins.get(s, 0), n[s]) for s in sorted(n)]


def format_table(rows: Sequence[PairResult]) -> str:
    """A Markdown table of results."""
    lines = [
        "| system | vs | n | wins | win rate | 95 % CI (Wilson) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.system} | {r.other} | {r.n} | {r.wins} | {r.rate:.1%} | {r.low:.1%} - {r.high:.1%} |"
        for r in rows
    ]
    return "\n".join(lines)


def write_results(path: Path, answers: Sequence[Answer]) -> Path:
    """Write pair and per-system results as .json, .csv or Markdown (any other suffix)."""
    pairs, systems = pair_results(answers), system_results(answers)
    if path.suffix == ".json":
        text = json.dumps(
            {"answers": len(answers), "listeners": len({a.listener for a in answers}),
             "pairs": [asdict(r) for r in pairs], "systems": [asdict(r) for r in systems]},
            indent=1,
        )  # fmt: skip
    elif path.suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["system", "other", "n", "wins", "rate", "low", "high"])
        w.writerows([[*asdict(r).values()] for r in [*pairs, *systems]])
        text = buf.getvalue()
    else:
        text = f"## Pairs\n\n{format_table(pairs)}\n\n## Each system vs all\n\n"
        text += format_table(systems) + "\n"
    with atomic_write(path) as f:
        f.write(text)
    return path


def all_pairs(study: Study) -> list[tuple[str, str, str]]:
    """Every (item, system, system) comparison the study can present (systems sorted)."""
    return [
        (item.id, a, b) for item in study.items for a, b in combinations(sorted(item.systems), 2)
    ]

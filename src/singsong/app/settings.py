"""Frozen settings for the web apps: every limit in one place, checked once at construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from singsong.errors import SingsongError

__all__ = ["ACCEPTED_TYPES", "AppSettings", "StudySettings"]

# Upload media types accepted (checked before reading the body). Browsers record webm/opus
# (Chromium, Firefox), ogg (Firefox) or mp4/aac (Safari); "video/webm" is what some send for an
# audio-only webm; octet-stream is what curl and file pickers send when they cannot tell. The
# decoder has the last word: anything it cannot read as audio is refused with 422.
ACCEPTED_TYPES = frozenset(
    {
        "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac",
        "audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3", "audio/mp4", "audio/x-m4a",
        "audio/aac", "audio/webm", "audio/aiff", "audio/x-aiff", "video/webm", "video/mp4",
        "application/ogg", "application/octet-stream",
    }
)  # fmt: skip


@dataclass(frozen=True)
class AppSettings:
    """Settings of ``singsong serve``.

    Attributes:
        model: model bundle folder, ``"default"`` (the bundled model) or ``"debug"`` (the tiny
            untrained model, the default here so that tests and embedding code load nothing).
        data_dir: where job files live (one folder per job); ``None`` = a fresh temp folder,
            removed when the app stops.
        workers: generation threads sharing the one loaded model.
        queue_size: jobs that may wait for a worker; one more gets 503 "busy".
        max_upload_bytes: largest upload, counted while it streams in.
        max_seconds: longest recording accepted (after decoding).
        max_takes: most accompaniments per job.
        result_ttl_s: finished jobs (files and status) are deleted this long after finishing.
        sweep_interval_s: how often the cleaner looks for expired jobs.
        torch_threads: torch threads per worker: decoding is a chain of small steps that gains
            nothing from more, and on shared cores extra threads only contend.
    """

    model: str = "debug"
    data_dir: Path | None = None
    workers: int = 2
    queue_size: int = 32
    max_upload_bytes: int = 20 * 1024 * 1024
    max_seconds: float = 60.0
    max_takes: int = 4
    result_ttl_s: float = 3600.0
    sweep_interval_s: float = 60.0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("workers", "queue_size", "max_upload_bytes", "max_takes", "torch_threads"):
            if getattr(self, name) < 1:
                raise SingsongError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_seconds", "result_ttl_s", "sweep_interval_s"):
            if not getattr(self, name) > 0:
                raise SingsongError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def is_debug_model(self) -> bool:
        return self.model == "debug"


@dataclass(frozen=True)
class StudySettings:
    """Settings of ``singsong study serve``: the study folder (with ``study.json``) and the
    SQLite file the answers go to (default ``STUDY_DIR/answers.sqlite``)."""

    study_dir: Path
    db_path: Path | None = None

    @property
    def db(self) -> Path:
        return self.db_path if self.db_path is not None else self.study_dir / "answers.sqlite"

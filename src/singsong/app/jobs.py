"""Generation jobs: a bounded queue, a fixed pool of worker threads, and a TTL cleaner.

A job is addressed only by its id, ``secrets.token_urlsafe`` (128 bits): the id is the
capability, so a user sees exactly the jobs whose ids they were given and nothing lists them.
Files live in ``DATA_DIR/<id>/take-<n>/<stem>.wav``; paths are built here from the id the manager
issued and names from :data:`STEMS`, never from user text, so no request can reach another path.

One loaded model is shared by all workers: :class:`~singsong.pipeline.Accompanist` keeps no
per-call state (sampling settings travel with each call), so this needs no lock around it.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from singsong import SAMPLE_RATE
from singsong.app.settings import AppSettings
from singsong.audio import FloatArray, save_audio
from singsong.errors import SingsongError

__all__ = [
    "STEMS", "AccompanistLike", "BusyError", "JobManager", "JobRequest", "JobState", "JobView",
]  # fmt: skip

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "error"]
STEMS = ("mix", "instrumental", "vocals")  # the only file names a job has, per take
_POLL_S = 0.25  # how often idle workers check for shutdown


class TakeLike(Protocol):
    @property
    def instrumental(self) -> FloatArray: ...
    @property
    def mix(self) -> FloatArray: ...


class AccompanimentLike(Protocol):
    @property
    def takes(self) -> Sequence[TakeLike]: ...


class AccompanistLike(Protocol):
    """What the workers need of a model: :class:`~singsong.pipeline.Accompanist` or a stand-in."""

    def accompany(
        self,
        wav: FloatArray,
        sample_rate: int,
        *,
        takes: int = 1,
        seed: int | None = 0,
        temperature: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> AccompanimentLike: ...


class BusyError(SingsongError):
    """The queue is full: the client should try again later (HTTP 503)."""


@dataclass(frozen=True, eq=False)
class JobRequest:
    """What to generate: ``vocals`` float32 [N] at 16 kHz, already checked by the server."""

    vocals: FloatArray
    takes: int = 1
    temperature: float | None = None
    seed: int | None = None


@dataclass(eq=False)
class _Job:
    """Mutable job record; every field is read and written under ``JobManager._lock``."""

    id: str
    seq: int
    folder: Path
    seconds: float
    takes: int
    request: JobRequest | None  # dropped once running, so finished jobs hold no audio
    state: JobState = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    created: float = 0.0
    finished: float | None = None


@dataclass(frozen=True)
class JobView:
    """A consistent snapshot of one job, safe to hand to a request handler."""

    id: str
    state: JobState
    windows_done: int
    windows_total: int
    queue_position: int | None  # 0 = next to run; None unless queued
    seconds: float
    takes: int  # takes requested; files exist once state == "done"
    error: str | None
    created: float
    finished: float | None
    expires_at: float | None  # wall-clock time the files are deleted


@dataclass
class _Threads:
    workers: list[threading.Thread] = field(default_factory=list)
    sweeper: threading.Thread | None = None


class JobManager:
    """Owns the queue, the workers, the job table and the job folders of one app."""

    def __init__(
        self,
        settings: AppSettings,
        accompanist: AccompanistLike,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.accompanist = accompanist
        self.clock = clock
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=settings.queue_size)
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = _Threads()
        self._seq = 0
        self._owns_dir = settings.data_dir is None
        self._dir: Path | None = settings.data_dir

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            raise SingsongError("the job manager is not started")
        return self._dir

    def start(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="singsong-app-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._work, name=f"singsong-worker-{i}", daemon=True)
            t.start()
            self._threads.workers.append(t)
        sweeper = threading.Thread(target=self._sweep_loop, name="singsong-sweeper", daemon=True)
        sweeper.start()
        self._threads.sweeper = sweeper

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work, wait for running jobs (up to ``timeout``), remove a temp data dir."""
        self._stop.set()
        threads = [*self._threads.workers, self._threads.sweeper]
        for t in threads:
            if t is not None:
                t.join(timeout)
        self._threads = _Threads()
        if self._owns_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # --- the API the server uses ---------------------------------------------------------------

    def is_full(self) -> bool:
        return self._queue.full()

    def busy_error(self) -> BusyError:
        return BusyError(
            "the server is busy: every worker is taken and the queue is full "
            f"({self.settings.queue_size} jobs waiting); try again in a minute"
        )

    def submit(self, request: JobRequest) -> str:
        """Queue a job and return its id; :class:`BusyError` when the queue is full."""
        job_id = secrets.token_urlsafe(16)
        with self._lock:
            self._seq += 1
            job = _Job(
                id=job_id,
                seq=self._seq,
                folder=self.data_dir / job_id,
                seconds=request.vocals.shape[0] / SAMPLE_RATE,
                takes=request.takes,
                request=request,
                created=self.clock(),
            )
            try:  # under the lock, so a worker cannot see the job before the table does
                self._queue.put_nowait(job)
            except queue.Full:
                raise self.busy_error() from None
            self._jobs[job_id] = job
        return job_id

    def get(self, job_id: str) -> JobView | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            position = None
            if job.state == "queued":
                position = sum(
                    1 for j in self._jobs.values() if j.state == "queued" and j.seq < job.seq
                )
            ttl = self.settings.result_ttl_s
            return JobView(
                id=job.id,
                state=job.state,
                windows_done=job.done,
                windows_total=job.total,
                queue_position=position,
                seconds=job.seconds,
                takes=job.takes,
                error=job.error,
                created=job.created,
                finished=job.finished,
                expires_at=None if job.finished is None else job.finished + ttl,
            )

    def file(self, job_id: str, take: int, stem: str) -> Path | None:
        """The path of a finished take's file, or ``None`` for anything unknown or unfinished."""
        if stem not in STEMS:
            return None
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "done" or not 1 <= take <= job.takes:
                return None
            path = job.folder / f"take-{take}" / f"{stem}.wav"
        return path if path.is_file() else None

    def sweep(self, now: float | None = None) -> int:
        """Delete finished jobs older than the TTL (status and files); returns how many."""
        now = self.clock() if now is None else now
        with self._lock:
            expired = [
                j
                for j in self._jobs.values()
                if j.finished is not None and now - j.finished >= self.settings.result_ttl_s
            ]
            for j in expired:
                del self._jobs[j.id]
        for j in expired:  # outside the lock: deleting files can be slow
            shutil.rmtree(j.folder, ignore_errors=True)
        return len(expired)

    def count(self) -> int:
        with self._lock:
            return len(self._jobs)

    # --- threads -------------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                self.sweep()
            except Exception:  # the cleaner must outlive any one bad folder
                log.exception("sweeping expired jobs failed")

    def _work(self) -> None:
        import torch

        # torch's OpenMP thread count is a per-thread setting and a new thread starts at the
        # default (all cores), so each worker sets its own; see AppSettings.torch_threads.
        torch.set_num_threads(self.settings.torch_threads)
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            try:
                self._run(job)
            finally:
                self._queue.task_done()

    def _run(self, job: _Job) -> None:
        with self._lock:
            request, job.request = job.request, None
            job.state = "running"
        assert request is not None

        def progress(done: int, total: int) -> None:
            with self._lock:
                job.done, job.total = done, total

        try:
            result = self.accompanist.accompany(
                request.vocals,
                SAMPLE_RATE,
                takes=request.takes,
                seed=request.seed,
                temperature=request.temperature,
                progress=progress,
            )
            for i, take in enumerate(result.takes, start=1):
                folder = job.folder / f"take-{i}"
                vocals = (take.mix - take.instrumental).astype(np.float32)  # the stems sum to mix
                for stem, wav in zip(STEMS, (take.mix, take.instrumental, vocals), strict=True):
                    save_audio(folder / f"{stem}.wav", wav, SAMPLE_RATE, clip=True)
        except SingsongError as e:
            self._finish(job, f"{e}")
        except Exception:
            log.exception("job %s failed", job.id[:6])
            self._finish(job, "internal error while generating (see the server log)")
        else:
            self._finish(job, None)

    def _finish(self, job: _Job, error: str | None) -> None:
        with self._lock:
            job.state = "done" if error is None else "error"
            job.error = error
            job.finished = self.clock()
        if error is not None:
            shutil.rmtree(job.folder, ignore_errors=True)  # no half-written takes left behind

"""``create_app(settings)``: the accompaniment web app (one page + a small JSON API).

API (its OpenAPI schema is served at ``/openapi.json``):

- ``GET /api/info``: the limits and whether the model is the untrained debug one;
- ``POST /api/jobs?takes=&temperature=&seed=`` with the audio file as the raw request body
  (any common format; ``Content-Type`` an audio type): 202 and the job id, or 4xx/503;
- ``GET /api/jobs/{id}``: state, queue position, windows done/total, file URLs when done;
- ``GET /api/jobs/{id}/takes/{n}/{stem}.wav``: a result file (stem: mix, instrumental, vocals).

The upload is the raw body rather than a multipart form so that its size can be counted while
it streams in and refused at the limit, before it is all on disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import anyio
import soundfile as sf
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from singsong import SAMPLE_RATE
from singsong.app.jobs import AccompanistLike, BusyError, JobManager, JobRequest, JobView
from singsong.app.settings import ACCEPTED_TYPES, AppSettings
from singsong.audio import SILENCE_LUFS, FloatArray, load_audio, loudness_lufs
from singsong.errors import AudioError

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
_CHUNK = 64 * 1024


class Info(BaseModel):
    model: str
    debug_model: bool
    max_upload_bytes: int
    max_seconds: float
    max_takes: int
    result_ttl_s: float
    workers: int
    queue_size: int
    sample_rate: int
    temperature: float | None  # the model's default (where the page's slider starts); None: unknown


class JobCreated(BaseModel):
    id: str
    status_url: str


class TakeFiles(BaseModel):
    mix: str
    instrumental: str
    vocals: str


class JobStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "error"]
    queue_position: int | None
    windows_done: int
    windows_total: int
    seconds: float
    error: str | None
    takes: list[TakeFiles]
    expires_in_s: float | None


class Problem(BaseModel):
    detail: str


class Stem(str, Enum):
    mix = "mix.wav"
    instrumental = "instrumental.wav"
    vocals = "vocals.wav"


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


def _status(view: JobView, clock_now: float) -> JobStatus:
    base = f"/api/jobs/{view.id}/takes"
    takes = [
        TakeFiles(**{s.name: f"{base}/{n}/{s.value}" for s in Stem})
        for n in range(1, view.takes + 1)
    ]
    return JobStatus(
        id=view.id,
        state=view.state,
        queue_position=view.queue_position,
        windows_done=view.windows_done,
        windows_total=view.windows_total,
        seconds=round(view.seconds, 3),
        error=view.error,
        takes=takes if view.state == "done" else [],
        expires_in_s=None if view.expires_at is None else max(0.0, view.expires_at - clock_now),
    )


def _decode(path: Path, max_seconds: float) -> FloatArray:
    """The upload at ``path`` -> float32 [N] at 16 kHz, or AudioError with a message for users."""
    with contextlib.suppress(RuntimeError, sf.SoundFileError):  # unknown to libsndfile: decode
        info = sf.info(str(path))  # the header's length: refuse long files before decoding them
        if info.samplerate > 0 and info.frames / info.samplerate > max_seconds + 1:
            raise AudioError(
                f"the recording is {info.frames / info.samplerate:.1f} s long; this server "
                f"accepts at most {max_seconds:g} s (trim it and try again)"
            )
    try:
        wav = load_audio(path)
    except AudioError as e:  # the message names the server's temp file: say "the upload"
        raise AudioError(str(e).replace(str(path), "the upload")) from None
    seconds = wav.shape[0] / SAMPLE_RATE
    if seconds > max_seconds:
        raise AudioError(
            f"the recording is {seconds:.1f} s long; this server accepts at most "
            f"{max_seconds:g} s (trim it and try again)"
        )
    if loudness_lufs(wav, SAMPLE_RATE) <= SILENCE_LUFS:
        raise AudioError("the recording is silent: nothing to accompany (check the microphone)")
    return wav


def create_app(settings: AppSettings, *, accompanist: AccompanistLike | None = None) -> FastAPI:
    """Build the app. ``accompanist``: a loaded model or stand-in; default: load
    ``settings.model`` now (so a bad model path fails before the server starts)."""
    if accompanist is None:
        from singsong.pipeline import Accompanist

        loaded = Accompanist.from_pretrained(settings.model)
        max_seconds = min(settings.max_seconds, loaded.config.max_seconds)
        model_temperature: float | None = loaded.config.temperature
        accompanist = loaded
    else:
        max_seconds, model_temperature = settings.max_seconds, None
    jobs = JobManager(settings, accompanist)
    # decoding runs in threads; a few at a time keeps the memory of big uploads bounded
    decoders: list[anyio.CapacityLimiter] = []  # made in the lifespan: it needs the event loop

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        decoders[:] = [anyio.CapacityLimiter(max(2, settings.workers))]
        jobs.start()
        try:
            yield
        finally:
            await run_in_threadpool(jobs.stop)

    app = FastAPI(
        title="singsong",
        summary="Sing, and get the band behind you: instrumental accompaniments for vocals.",
        version="1",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: nothing here may use
        # the network, so only the schema itself is served, at /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    app.state.jobs = jobs
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/info", response_model=Info)
    def info() -> Info:
        return Info(
            model=settings.model
            if settings.model in ("debug", "default")
            else Path(settings.model).name,
            debug_model=settings.is_debug_model,
            max_upload_bytes=settings.max_upload_bytes,
            max_seconds=max_seconds,
            max_takes=settings.max_takes,
            result_ttl_s=settings.result_ttl_s,
            workers=settings.workers,
            queue_size=settings.queue_size,
            sample_rate=SAMPLE_RATE,
            temperature=model_temperature,
        )

    @app.post(
        "/api/jobs",
        response_model=JobCreated,
        status_code=202,
        responses=_errors(400, 413, 415, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "the vocal recording, as the raw body (not a form)",
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}}
                    for t in ("audio/wav", "audio/webm", "application/octet-stream")
                },
            }
        },
    )
    async def submit(
        request: Request,
        takes: int = Query(1, ge=1, le=settings.max_takes, description="accompaniments"),
        temperature: float | None = Query(None, ge=0.0, le=2.0, description="default: model's"),
        seed: int | None = Query(None, ge=0, lt=2**31, description="default: random"),
    ) -> JobCreated:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ACCEPTED_TYPES:
            raise HTTPException(
                415, f"unsupported upload type {kind or '(none)'!r}: send an audio file "
                "(WAV, FLAC, MP3, OGG, WebM, M4A) with an audio/* Content-Type",
            )  # fmt: skip
        if jobs.is_full():  # refuse before reading a body that would be thrown away
            raise HTTPException(503, str(jobs.busy_error()), headers={"Retry-After": "30"})
        limit = settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, _too_big(limit))
        fd, name = tempfile.mkstemp(prefix="upload-", dir=jobs.data_dir)
        path = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():  # count as it arrives: never trust headers
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, _too_big(limit))
                    f.write(chunk)
            if size == 0:
                raise HTTPException(400, "the upload is empty (0 bytes): send an audio file")
            try:
                vocals = await anyio.to_thread.run_sync(
                    _decode, path, max_seconds, limiter=decoders[0]
                )
            except AudioError as e:
                raise HTTPException(422, str(e)) from None
        finally:
            path.unlink(missing_ok=True)
        try:
            job_id = jobs.submit(JobRequest(vocals, takes, temperature, seed))
        except BusyError as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "30"}) from None
        return JobCreated(id=job_id, status_url=f"/api/jobs/{job_id}")

    @app.get("/api/jobs/{job_id}", response_model=JobStatus, responses=_errors(404))
    def status(job_id: str) -> JobStatus:
        view = jobs.get(job_id)
        if view is None:
            raise HTTPException(404, _unknown())
        return _status(view, jobs.clock())

    @app.get(
        "/api/jobs/{job_id}/takes/{take}/{stem}",
        response_class=FileResponse,
        responses={**_errors(404), 200: {"content": {"audio/wav": {}}}},
    )
    def take_file(job_id: str, take: int, stem: Stem) -> FileResponse:
        path = jobs.file(job_id, take, stem.name)
        if path is None:
            raise HTTPException(404, _unknown())
        return FileResponse(
            path,
            media_type="audio/wav",
            filename=f"singsong-take{take}-{stem.value}",
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=600"},
        )

    return app


def _too_big(limit: int) -> str:
    return f"the upload is larger than {limit / 2**20:.1f} MB: send a shorter or compressed file"


def _unknown() -> str:
    return "no such job or file (unknown id, not finished yet, or expired and deleted)"

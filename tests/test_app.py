"""The web app's API: uploads and their limits, path safety, the schema; shared test helpers."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from singsong.app import AppSettings, create_app
from singsong.app.server import STATIC_DIR
from singsong.errors import SingsongError

SR = 16_000


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


def wav_bytes(x: np.ndarray, sr: int = SR, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt)
    return buf.getvalue()


class FakeAccompanist:
    """Instant stand-in for the model; with a ``gate`` it blocks until the test opens it, so the
    queue can be filled deterministically. Counts how many calls run at once."""

    def __init__(self, gate: threading.Event | None = None, fail: Exception | None = None):
        self.gate, self.fail = gate, fail
        self.lock = threading.Lock()
        self.running = self.peak = self.calls = 0

    def accompany(self, wav: Any, sample_rate: int, *, takes: int = 1, **kw: Any) -> Any:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                assert self.gate.wait(20), "test gate never opened"
            if self.fail is not None:
                raise self.fail
            kw["progress"](1, 1)
            inst = (0.5 * np.roll(wav, 100)).astype(np.float32)
            take = SimpleNamespace(instrumental=inst, mix=(0.5 * wav + inst).astype(np.float32))
            return SimpleNamespace(takes=[take] * takes)
        finally:
            with self.lock:
                self.running -= 1


def settings(tmp_path: Path, **kw: Any) -> AppSettings:
    return AppSettings(data_dir=tmp_path / "jobs", **{"workers": 1, "queue_size": 4, **kw})


def submit(c: TestClient | httpx.Client, data: bytes, query: str = "", **headers: str) -> Any:
    return c.post(
        f"/api/jobs{query}", content=data, headers={"content-type": "audio/wav", **headers}
    )


def wait_state(c: TestClient | httpx.Client, job: str, timeout: float = 30.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s: dict[str, Any] = c.get(f"/api/jobs/{job}").json()
        if s["state"] in ("done", "error"):
            return s
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish in {timeout} s")


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # the OS picks a free port; uvicorn serves on this very socket
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


# --- the real (debug) model end to end ----------------------------------------------------------


def test_debug_model_round_trip(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))
    x = tone(1.5)
    with TestClient(app) as c:
        assert c.get("/api/info").json()["temperature"] == 1.0  # the debug bundle's default
        r = submit(c, wav_bytes(tone(1.5, sr=44_100), 44_100), "?takes=2&temperature=0.8&seed=3")
        assert r.status_code == 202, r.text
        s = wait_state(c, r.json()["id"])
        assert s["state"] == "done" and s["error"] is None
        assert s["windows_done"] == s["windows_total"] >= 1
        assert len(s["takes"]) == 2 and 0 < s["expires_in_s"] <= 3600
        stems = {}
        for stem in ("mix", "instrumental", "vocals"):
            f = c.get(s["takes"][1][stem])
            assert f.status_code == 200 and f.headers["content-type"] == "audio/wav"
            stems[stem], sr = sf.read(io.BytesIO(f.content), dtype="float32")
            assert sr == SR
        # the input was at 44.1 kHz: 1.5 s of it comes back as 1.5 s at 16 kHz
        assert stems["mix"].shape == (int(1.5 * SR),)
        np.testing.assert_allclose(stems["vocals"] + stems["instrumental"], stems["mix"], atol=1e-3)
        assert np.abs(stems["instrumental"]).max() > 1e-3  # not silence
        assert np.corrcoef(stems["vocals"], x[: len(stems["vocals"])])[0, 1] > 0.9


# --- bad uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ctype", "code", "words"),
    [
        (b"this is not audio at all", "audio/wav", 422, "cannot decode the upload"),
        (b"%PDF-1.4 fake", "application/octet-stream", 422, "PDF"),
        (b"", "audio/wav", 400, "empty"),
        (b"RIFF", "text/plain", 415, "unsupported upload type"),
        (b"RIFF", "", 415, "unsupported upload type"),
        ("silent", "audio/wav", 422, "silent"),
        ("long", "audio/wav", 422, "at most 2 s"),
    ],
)
def test_bad_uploads_get_clear_4xx(
    tmp_path: Path, body: bytes | str, ctype: str, code: int, words: str
) -> None:
    fake = FakeAccompanist()
    app = create_app(settings(tmp_path, max_seconds=2.0), accompanist=fake)
    data = {"silent": wav_bytes(np.zeros(SR, np.float32)), "long": wav_bytes(tone(2.5))}.get(
        str(body), body
    )
    with TestClient(app) as c:
        r = c.post("/api/jobs", content=data, headers={"content-type": ctype})
        assert r.status_code == code, r.text
        assert words in r.json()["detail"]
        assert str(tmp_path) not in r.json()["detail"]  # no server paths in messages
        assert list((tmp_path / "jobs").iterdir()) == []  # the upload's temp file is gone
    assert fake.calls == 0


def test_long_files_are_refused_from_their_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour of compressed audio fits the byte limit: its length is read before decoding."""
    import singsong.app.server

    def no_decoding(*a: object, **k: object) -> None:
        raise AssertionError("decoded a file whose header already says it is too long")

    monkeypatch.setattr(singsong.app.server, "load_audio", no_decoding)
    app = create_app(settings(tmp_path, max_seconds=2.0), accompanist=FakeAccompanist())
    with TestClient(app) as c:
        r = submit(c, wav_bytes(tone(10.0), fmt="FLAC"))
        assert r.status_code == 422 and "10.0 s long" in r.json()["detail"]


def test_too_big_is_refused_by_header_and_while_streaming(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, max_upload_bytes=50_000), accompanist=FakeAccompanist())
    big = wav_bytes(tone(2.0))  # 64 kB
    assert len(big) > 50_000

    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting the stream can tell
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    with TestClient(app) as c:
        for r in (submit(c, big), submit(c, chunks())):  # type: ignore[arg-type]
            assert r.status_code == 413 and "larger than" in r.json()["detail"]
        assert list((tmp_path / "jobs").iterdir()) == []
        assert submit(c, wav_bytes(tone(1.0))).status_code == 202  # 32 kB is fine


def test_query_limits(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, max_takes=3), accompanist=FakeAccompanist())
    with TestClient(app) as c:
        data = wav_bytes(tone(0.5))
        assert submit(c, data, "?takes=4").status_code == 422
        assert submit(c, data, "?takes=0").status_code == 422
        assert submit(c, data, "?temperature=-1").status_code == 422
        assert submit(c, data, "?takes=3").status_code == 202


def test_webm_from_a_browser_is_decoded(tmp_path: Path) -> None:
    """What MediaRecorder sends (Opus in WebM) goes through the ffmpeg fallback."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    src = tmp_path / "v.wav"
    sf.write(src, tone(1.0), SR)
    webm = tmp_path / "v.webm"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(src), "-c:a", "libopus", str(webm)], check=True
    )
    app = create_app(settings(tmp_path), accompanist=FakeAccompanist())
    with TestClient(app) as c:
        r = submit(c, webm.read_bytes(), **{"content-type": "audio/webm;codecs=opus"})
        assert r.status_code == 202, r.text
        s = wait_state(c, r.json()["id"])
        assert s["state"] == "done" and abs(s["seconds"] - 1.0) < 0.05


# --- the rest ----------------------------------------------------------------------------------


def test_openapi_documents_the_api(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path), accompanist=FakeAccompanist())
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/info", "/api/jobs", "/api/jobs/{job_id}"} <= set(paths)
    post = paths["/api/jobs"]["post"]
    assert "audio/wav" in post["requestBody"]["content"]
    assert {"202", "413", "415", "422", "503"} <= set(post["responses"])
    status = spec["components"]["schemas"]["JobStatus"]["properties"]
    assert {"state", "queue_position", "windows_done", "windows_total", "takes"} <= set(status)


def test_page_and_static_files_use_nothing_from_the_network(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path), accompanist=FakeAccompanist())
    with TestClient(app) as c:
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert c.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN
        assert c.get("/openapi.json").status_code == 200
        info = c.get("/api/info").json()
        assert info["debug_model"] is True and info["max_takes"] == 4
        assert info["temperature"] is None  # a stand-in model: the page keeps its own
    for f in STATIC_DIR.rglob("*"):
        if f.is_file():
            text = f.read_text()
            assert "http://" not in text and "https://" not in text, f


def test_settings_are_checked() -> None:
    with pytest.raises(SingsongError, match="workers"):
        AppSettings(workers=0)
    with pytest.raises(SingsongError, match="result_ttl_s"):
        AppSettings(result_ttl_s=0)
    with pytest.raises(AttributeError):
        AppSettings().workers = 3  # type: ignore[misc]


def test_serve_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from singsong.cli.serve import add_serve

    def parse(argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_serve(parser.add_subparsers(dest="command"))
        return parser.parse_args(argv)

    monkeypatch.delenv("SINGSONG_MODEL", raising=False)
    args = parse(["serve"])
    assert (args.model, args.host, args.port) == ("default", "127.0.0.1", 8000)
    monkeypatch.setenv("SINGSONG_MODEL", "/models/singsong")
    assert parse(["serve", "--port", "9000"]).model == "/models/singsong"
    with pytest.raises(SystemExit):
        parse(["serve", "--workers", "0"])

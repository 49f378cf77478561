"""The web app's jobs: ids, the busy queue, workers sharing one model, errors, TTL cleanup."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf
from fastapi.testclient import TestClient

from singsong.app import AppSettings, create_app
from singsong.app.jobs import JobManager, JobRequest
from singsong.errors import AudioError
from tests.test_app import (
    SR,
    FakeAccompanist,
    live_server,
    settings,
    submit,
    tone,
    wait_for,
    wait_state,
    wav_bytes,
)

# --- jobs: ids, queue, workers ------------------------------------------------------------------


def test_unknown_jobs_and_files_are_404(tmp_path: Path) -> None:
    gate = threading.Event()
    app = create_app(settings(tmp_path), accompanist=FakeAccompanist(gate))
    with TestClient(app) as c:
        job = submit(c, wav_bytes(tone(0.5)), "?takes=2").json()["id"]
        assert len(job) >= 22  # 128 random bits
        assert c.get(f"/api/jobs/{job}/takes/1/mix.wav").status_code == 404  # not finished
        gate.set()
        assert wait_state(c, job)["state"] == "done"
        assert c.get(f"/api/jobs/{job}/takes/2/mix.wav").status_code == 200
        for url in (
            "/api/jobs/nope",
            f"/api/jobs/{job[:-1]}",
            f"/api/jobs/{job[:-1]}x/takes/1/mix.wav",
            f"/api/jobs/{job}/takes/0/mix.wav",
            f"/api/jobs/{job}/takes/3/mix.wav",
        ):
            r = c.get(url)
            assert r.status_code == 404 and "no such job" in r.json()["detail"], url
        assert c.get(f"/api/jobs/{job}/takes/1/input.wav").status_code == 422  # not a stem


def test_path_traversal_reaches_nothing(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path), accompanist=FakeAccompanist())
    secret = b"root:x:0:0:TOP-SECRET"
    with TestClient(app) as c:
        (tmp_path / "jobs" / "secret.wav").write_bytes(secret)
        (tmp_path / "secret.wav").write_bytes(secret)
        job = submit(c, wav_bytes(tone(0.5))).json()["id"]
        wait_state(c, job)
        attempts = [
            "/api/jobs/..%2Fsecret.wav",
            "/api/jobs/..%2F..%2Fsecret.wav/takes/1/mix.wav",
            f"/api/jobs/{job}/takes/1/..%2F..%2Fsecret.wav",
            f"/api/jobs/{job}/takes/1/..%2F..%2F..%2Fsecret.wav",
            f"/api/jobs/{job}/takes/1/mix.wav%00.txt",
            f"/api/jobs/{job}%2F..%2Fsecret.wav/takes/1/mix.wav",
            "/api/jobs/%2E%2E/takes/1/mix.wav",
            "/static/..%2Fsecret.wav",
            "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
            "/static/%2E%2E/server.py",
        ]
        for url in attempts:
            r = c.get(url)
            assert r.status_code in (404, 422), (url, r.status_code)
            assert b"TOP-SECRET" not in r.content and b"root:" not in r.content, url
            assert b"create_app" not in r.content, url


def test_busy_queue_answers_503_then_recovers(tmp_path: Path) -> None:
    gate = threading.Event()
    fake = FakeAccompanist(gate)
    app = create_app(settings(tmp_path, workers=1, queue_size=1), accompanist=fake)
    data = wav_bytes(tone(0.5))
    with TestClient(app) as c:
        first = submit(c, data).json()["id"]
        wait_for(lambda: fake.running == 1)  # the worker holds the first job
        second = submit(c, data).json()["id"]  # waits in the queue (size 1)
        assert c.get(f"/api/jobs/{second}").json()["queue_position"] == 0
        assert c.get(f"/api/jobs/{first}").json()["state"] == "running"
        r = submit(c, data)
        assert r.status_code == 503
        assert "busy" in r.json()["detail"] and "try again" in r.json()["detail"]
        assert r.headers["retry-after"] == "30"
        gate.set()
        assert wait_state(c, first)["state"] == wait_state(c, second)["state"] == "done"
        assert submit(c, data).status_code == 202
    assert fake.calls == 3


def test_workers_run_jobs_in_parallel_up_to_their_number(tmp_path: Path) -> None:
    gate = threading.Event()
    fake = FakeAccompanist(gate)
    app = create_app(settings(tmp_path, workers=2, queue_size=8), accompanist=fake)
    with TestClient(app) as c:
        ids = [submit(c, wav_bytes(tone(0.5))).json()["id"] for _ in range(5)]
        wait_for(lambda: fake.running == 2)
        time.sleep(0.3)  # a third worker, if there were one, would have started by now
        assert fake.running == 2
        assert [c.get(f"/api/jobs/{i}").json()["queue_position"] for i in ids[2:]] == [0, 1, 2]
        gate.set()
        assert {wait_state(c, i)["state"] for i in ids} == {"done"}
    assert fake.peak == 2 and fake.calls == 5


def test_concurrent_clients_get_their_own_results(tmp_path: Path) -> None:
    """Real server, real debug model, clients in threads: each job's files have the length of
    its own input, so no result is swapped between users."""
    app = create_app(settings(tmp_path, workers=2, queue_size=8))
    lengths = [0.6 + 0.1 * k for k in range(6)]
    got: dict[float, Any] = {}

    def client(seconds: float) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            r = submit(c, wav_bytes(tone(seconds, freq=200 + 50 * seconds)))
            assert r.status_code == 202, r.text
            s = wait_state(c, r.json()["id"], 60)
            mix, _ = sf.read(io.BytesIO(c.get(s["takes"][0]["mix"]).content))
            got[seconds] = (s["id"], mix.shape[0])

    with live_server(app) as base:
        threads = [threading.Thread(target=client, args=(s,)) for s in lengths]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
    assert sorted(got) == lengths
    assert len({job for job, _ in got.values()}) == len(lengths)
    for seconds, (_, n) in got.items():
        assert n == round(seconds * SR)


def test_shared_model_gives_the_same_takes_alone_or_concurrently(tmp_path: Path) -> None:
    """One Accompanist serves both workers: a seeded job's files must not depend on what runs
    beside it (no per-call state on the model)."""
    app = create_app(settings(tmp_path, workers=2, queue_size=8))
    data = wav_bytes(tone(1.2))
    with TestClient(app) as c:

        def mix_of(job: str) -> bytes:
            s = wait_state(c, job)
            return bytes(c.get(s["takes"][1]["mix"]).content)

        alone = mix_of(submit(c, data, "?seed=7&takes=2").json()["id"])
        jobs = [submit(c, data, "?seed=7&takes=2").json()["id"] for _ in range(4)]
        other = submit(c, data, "?seed=8&takes=2").json()["id"]
        assert all(mix_of(j) == alone for j in jobs)
        assert mix_of(other) != alone  # the seed does matter


def test_worker_errors_are_reported_and_leave_no_files(tmp_path: Path) -> None:
    for fail, words in [
        (AudioError("the vocals are silent"), "the vocals are silent"),
        (RuntimeError("boom"), "internal error"),
    ]:
        app = create_app(settings(tmp_path), accompanist=FakeAccompanist(fail=fail))
        with TestClient(app) as c:
            job = submit(c, wav_bytes(tone(0.5))).json()["id"]
            s = wait_state(c, job)
            assert s["state"] == "error" and words in s["error"] and s["takes"] == []
            assert not (tmp_path / "jobs" / job).exists()
            assert "boom" not in s["error"]  # internals stay in the server log


# --- cleanup ------------------------------------------------------------------------------------


def test_finished_jobs_are_deleted_after_the_ttl(tmp_path: Path) -> None:
    app = create_app(
        settings(tmp_path, result_ttl_s=0.5, sweep_interval_s=0.05), accompanist=FakeAccompanist()
    )
    with TestClient(app) as c:
        job = submit(c, wav_bytes(tone(0.5))).json()["id"]
        s = wait_state(c, job)
        url = s["takes"][0]["mix"]
        assert c.get(url).status_code == 200 and (tmp_path / "jobs" / job).is_dir()
        wait_for(lambda: c.get(f"/api/jobs/{job}").status_code == 404, 5)
        assert c.get(url).status_code == 404
        wait_for(lambda: not (tmp_path / "jobs" / job).exists(), 5)  # files go right after


def test_sweep_keeps_unfinished_and_fresh_jobs() -> None:
    now = [1000.0]
    gate = threading.Event()
    fake = FakeAccompanist(gate)
    jobs = JobManager(AppSettings(workers=1, result_ttl_s=60), fake, clock=lambda: now[0])
    jobs.start()
    try:
        req = JobRequest(tone(0.3))
        running, queued = jobs.submit(req), jobs.submit(req)
        wait_for(lambda: fake.running == 1)
        now[0] += 10_000
        assert jobs.sweep() == 0  # running and queued jobs never expire
        gate.set()
        wait_for(lambda: jobs.get(queued) is not None and jobs.get(queued).state == "done")  # type: ignore[union-attr]
        folder = jobs.data_dir / running
        assert folder.is_dir()
        assert jobs.sweep(now[0] + 59) == 0
        assert jobs.sweep(now[0] + 60) == 2
        assert jobs.get(running) is None and not folder.exists()
        data_dir = jobs.data_dir
    finally:
        jobs.stop()
    assert not data_dir.exists()  # a temp data dir goes with the app

"""Load test of ``singsong serve``: concurrent clients, errors, wait times, server memory.

    python -u benchmarks/app_load.py [--clients 20 --seconds 10 --workers 2 --queue 32]
        [--screenshots docs/images [--voice vocals.flac]]

Starts the server (debug model unless --model) in a subprocess on a free port, then starts
``--clients`` threads at once; each submits its own clip (a different synthetic sung tone of
``--seconds``), polls the job until it is done and downloads the mix. Reports errors, the wait
from submit to done (median, p90, max), the throughput, and the server's resident memory:
idle after start, and the peak (VmHWM) over the run, read from /proc.

With --screenshots, Playwright and Debian's Chromium then open the page at desktop (1280x800)
and phone (390x844) widths, upload a clip (``--voice``, else the synthetic tone), wait for two
takes, play the first for a second and save app-desktop.png and app-phone.png.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

SR = 16_000


def serve(args: argparse.Namespace) -> None:
    """The server process: the app as ``singsong serve`` builds it."""
    import torch
    import uvicorn

    from singsong.app import AppSettings, create_app

    torch.set_num_threads(1)
    settings = AppSettings(model=args.model, workers=args.workers, queue_size=args.queue)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")


def clip(seconds: float, k: int) -> bytes:
    """A sung-like tone: a slow melody with vibrato and harmonics, different per client."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = (196 + 12 * k) * 2 ** (np.floor(t * 2) % 5 / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(0.25 / h * np.sin(h * phase) for h in (1, 2, 3, 4))
    buf = io.BytesIO()
    sf.write(buf, np.asarray(x, np.float32), SR, format="WAV")
    return buf.getvalue()


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def client(base: str, data: bytes, out: dict[str, Any]) -> None:
    start = time.monotonic()
    try:
        with httpx.Client(base_url=base, timeout=300) as c:
            r = c.post("/api/jobs?takes=1", content=data, headers={"content-type": "audio/wav"})
            r.raise_for_status()
            url = r.json()["status_url"]
            while True:
                s = c.get(url).json()
                if s["state"] in ("done", "error"):
                    break
                time.sleep(0.25)
            out["wait"] = time.monotonic() - start
            if s["state"] == "error":
                raise RuntimeError(s["error"])
            mix = c.get(s["takes"][0]["mix"])
            mix.raise_for_status()
            out["samples"] = sf.info(io.BytesIO(mix.content)).frames
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"


def screenshots(base: str, folder: Path, voice: Path | None, seconds: float) -> None:
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(tmp) / "my-singing.wav"
        if voice is not None:
            from singsong.audio import load_audio

            wav = load_audio(voice)[: int(seconds * SR)]
            sf.write(upload, wav, SR)
        else:
            upload.write_bytes(clip(seconds, 0))
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--autoplay-policy=no-user-gesture-required"],
            )  # fmt: skip
            for name, size, scale in (("desktop", (1280, 800), 1), ("phone", (390, 844), 2)):
                page = browser.new_page(
                    viewport={"width": size[0], "height": size[1]}, device_scale_factor=scale
                )
                page.goto(base)
                page.set_input_files("#file", str(upload))
                page.select_option("#takes", "2")
                page.click("#go")
                page.wait_for_function(
                    "document.querySelectorAll('.take').length === 2", timeout=120_000
                )
                page.locator(".take .play").first.click()
                page.wait_for_timeout(1500)
                page.locator(".take .play").first.click()  # paused: the playhead stays drawn
                path = folder / f"app-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot: {path}")
                page.close()
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=32)
    parser.add_argument("--model", default="debug")
    parser.add_argument("--screenshots", type=Path, help="folder for app-{desktop,phone}.png")
    parser.add_argument("--voice", type=Path, help="vocals to upload for the screenshots")
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-u", __file__, "--serve", "--port", str(port), "--model", args.model]
    cmd += ["--workers", str(args.workers), "--queue", str(args.queue)]
    server = subprocess.Popen(cmd)
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/api/info", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        idle = rss_kib(server.pid, "VmRSS")
        clips = [clip(args.seconds, k) for k in range(args.clients)]
        results: list[dict[str, Any]] = [{} for _ in clips]
        threads = [
            threading.Thread(target=client, args=(base, data, out))
            for data, out in zip(clips, results, strict=True)
        ]
        print(
            f"{args.clients} clients x {args.seconds:g} s clips, {args.workers} workers, "
            f"queue {args.queue}, model {args.model}; server idle RSS {idle / 1024:.0f} MiB"
        )
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        peak = rss_kib(server.pid, "VmHWM")
        errors = [r["error"] for r in results if "error" in r]
        waits = sorted(r["wait"] for r in results if "wait" in r and "error" not in r)
        wrong = sum(r.get("samples") != int(args.seconds * SR) for r in results if "wait" in r)
        print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:5]))
        print(f"wrong-length results: {wrong}")
        if waits:
            p90 = waits[min(len(waits) - 1, int(0.9 * len(waits)))]
            print(f"wait submit->done: median {statistics.median(waits):.1f} s, p90 {p90:.1f} s, "
                  f"min {waits[0]:.1f} s, max {waits[-1]:.1f} s")  # fmt: skip
        print(f"all {args.clients} done in {wall:.1f} s: "
              f"{args.clients * args.seconds / wall:.1f} s of audio per second")  # fmt: skip
        print(f"server RSS: idle {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        if args.screenshots is not None:
            screenshots(base, args.screenshots, args.voice, args.seconds)
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()

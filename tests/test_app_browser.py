"""The page end to end in headless Chromium (Playwright) against a real uvicorn server: upload,
record from Chromium's fake microphone, wait for the takes, play them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from singsong.app import AppSettings, create_app
from tests.test_app import live_server, tone

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser tests need Debian's Chromium at /usr/bin/chromium "
    "(apt-get install chromium); `playwright install` is not used here",
)
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
TIMEOUT_MS = 60_000


@contextlib.contextmanager
def chromium(extra: Sequence[str] = ()) -> Iterator[object]:
    """A headless Debian Chromium driven by Playwright (yields a Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*FLAGS, *extra])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch

    torch.set_num_threads(1)
    data = tmp_path_factory.mktemp("jobs")
    app = create_app(AppSettings(data_dir=data, workers=1, queue_size=4, max_seconds=20))
    with live_server(app) as url:
        yield url


def voice_file(path: Path, seconds: float) -> Path:
    """A sung-like tone with harmonics and vibrato, 16-bit PCM (what the fake mic reads)."""
    t = np.arange(int(seconds * 48_000)) / 48_000
    f0 = 220 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / 48_000
    x = sum(0.3 / k * np.sin(k * phase) for k in (1, 2, 3))
    sf.write(path, x.astype(np.float32), 48_000, subtype="PCM_16")
    return path


def wait_for_takes(page: object, n: int) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        f"document.querySelectorAll('.take').length === {n}", timeout=TIMEOUT_MS
    )


def test_upload_wait_play_and_mix_controls(server: str, tmp_path: Path) -> None:
    wav = tmp_path / "voice.wav"
    sf.write(wav, tone(2.0), 16_000)
    with chromium() as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.wait_for_function("document.querySelector('#limits').textContent.length > 0")
        assert page.is_visible("#debug-banner")  # the debug model is announced
        assert page.is_disabled("#go")
        page.set_input_files("#file", str(wav))
        assert page.is_enabled("#go")
        page.select_option("#takes", "2")
        page.click("#go")
        wait_for_takes(page, 2)
        assert "Done" in page.inner_text("#progress-text")
        take = page.locator(".take").first

        # downloads point at this job's files, which are WAVs of the input's length
        href = take.locator(".dl-mix").get_attribute("href")
        job = page.evaluate("document.body.dataset.job")
        assert href == f"/api/jobs/{job}/takes/1/mix.wav"
        r = page.request.get(server + href)
        assert r.status == 200 and r.headers["content-type"] == "audio/wav"
        assert take.locator(".dl-mix").get_attribute("download") == "singsong-take1-mix.wav"

        # the waveform was drawn (some non-background pixels)
        inked = page.evaluate(
            """() => { const c = document.querySelector('.take canvas');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        )
        assert inked > 500

        take.locator(".play").click()
        page.wait_for_function(
            "Number(document.querySelector('.take').dataset.position) > 0.3", timeout=TIMEOUT_MS
        )
        assert take.get_attribute("data-playing") == "true"
        assert page.evaluate("document.body.dataset.audio") == "running"
        take.locator(".play").click()  # pause: the position stops advancing
        assert take.get_attribute("data-playing") == "false"
        held = float(take.get_attribute("data-position") or 0)
        page.wait_for_timeout(300)
        assert float(take.get_attribute("data-position") or 0) == held > 0.3

        # solo toggles and the balance slider drive the two gain nodes
        take.locator("[data-solo=vocals]").click()
        assert take.get_attribute("data-gains") == "1.00,0.00"
        take.locator("[data-solo=instrumental]").click()
        assert take.get_attribute("data-gains") == "0.00,1.00"
        take.locator("[data-solo=mix]").click()
        assert take.get_attribute("data-gains") == "1.00,1.00"
        take.locator(".balance-slider").fill("0.25")
        assert take.get_attribute("data-gains") == "1.00,0.50"

        # playing the second take pauses the first
        take.locator(".play").click()
        page.locator(".take").nth(1).locator(".play").click()
        page.wait_for_function("document.querySelectorAll('.take')[1].dataset.playing === 'true'")
        assert take.get_attribute("data-playing") == "false"
        assert errors == []


def test_bad_upload_shows_the_servers_message(server: str, tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("these are lyrics, not audio")
    with chromium() as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(server)
        page.set_input_files("#file", str(bad))
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])", timeout=TIMEOUT_MS)
        assert "cannot decode the upload" in page.inner_text("#error")
        assert page.locator(".take").count() == 0
        assert page.is_enabled("#go")  # ready for another try


def test_record_with_the_microphone(server: str, tmp_path: Path) -> None:
    voice = voice_file(tmp_path / "mic.wav", 4.0)
    with chromium([f"--use-file-for-fake-audio-capture={voice}"]) as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(server)
        page.click("#record")
        page.wait_for_function("document.querySelector('#record').textContent.includes('Stop')")
        page.wait_for_timeout(2000)
        page.click("#record")
        page.wait_for_function(
            "document.querySelector('#rec-status').textContent.includes('Recorded')"
        )
        assert page.is_visible("#preview")
        page.select_option("#takes", "1")
        page.click("#go")
        wait_for_takes(page, 1)
        job = page.evaluate("document.body.dataset.job")
        status = page.request.get(f"{server}/api/jobs/{job}").json()
        # the browser's WebM/Opus recording was decoded and was not silence (else 422)
        assert status["state"] == "done" and 1.5 < status["seconds"] < 4.0


def test_the_temperature_slider_starts_at_the_models_default(tmp_path: Path) -> None:
    from singsong.pipeline.bundle import debug_components, save_bundle

    model = save_bundle(debug_components(temperature=0.7), tmp_path / "model")
    app = create_app(AppSettings(model=str(model), data_dir=tmp_path / "jobs", workers=1))
    with live_server(app) as url, chromium() as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(url)
        page.wait_for_function("document.querySelector('#temp-out').textContent === '0.7'")
        assert page.input_value("#temperature") == "0.7"

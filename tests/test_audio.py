"""Tests for singsong.audio: loading, saving, levels and mixing."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from singsong import SAMPLE_RATE, audio
from singsong.audio import (
    atomic_write,
    load_audio,
    loudness_lufs,
    loudness_normalize,
    mix,
    peak,
    peak_normalize,
    resample,
    save_audio,
    sliding_windows,
    to_mono,
)
from singsong.errors import AudioError, SingsongError

HAVE_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not on PATH")


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    """A float32 sine: [T]."""
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(wav: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a [T] signal."""
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1 / sr)[np.argmax(spec)])


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if ".tmp" in p.name]


def test_errors_hierarchy() -> None:
    assert issubclass(AudioError, SingsongError)
    assert issubclass(AudioError, ValueError)


@pytest.mark.parametrize(
    ("ext", "subtype"), [(".wav", "PCM_16"), (".flac", "PCM_24"), (".ogg", None)]
)
def test_load_other_rate_stereo_to_16k_mono(tmp_path: Path, ext: str, subtype: str | None) -> None:
    sr, seconds = 44_100, 1.0
    left, right = sine(440, seconds, sr), sine(440, seconds, sr, amp=0.3)
    path = tmp_path / f"in{ext}"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype=subtype)  # [T, C]
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - seconds * SAMPLE_RATE) <= 1
    assert abs(dominant_freq(wav, SAMPLE_RATE) - 440) < 2
    assert 0.35 < peak(wav) < 0.45  # mean of the two channels' amplitudes

    stereo = load_audio(path, mono=False, sample_rate=22_050)
    assert stereo.shape[0] == 2 and abs(stereo.shape[1] - seconds * 22_050) <= 1


def test_save_load_round_trip_and_formats(tmp_path: Path) -> None:
    x = sine(1000, 0.5, SAMPLE_RATE)
    for ext in (".wav", ".flac", ".ogg"):
        out = save_audio(tmp_path / "sub" / f"out{ext}", x)
        assert out.exists()
        y = load_audio(out)
        assert abs(len(y) - len(x)) <= 1
        assert abs(dominant_freq(y, SAMPLE_RATE) - 1000) < 2
    assert sf.info(str(tmp_path / "sub" / "out.wav")).subtype == "PCM_16"
    assert sf.info(str(tmp_path / "sub" / "out.flac")).subtype == "PCM_24"
    stereo = np.stack([x, -x])  # [C, T]
    save_audio(tmp_path / "st.wav", stereo, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav", mono=False), stereo, atol=1e-7)
    assert no_temp_files(tmp_path) and no_temp_files(tmp_path / "sub")
    with pytest.raises(AudioError, match=r"\.wav, \.flac or \.ogg"):
        save_audio(tmp_path / "out.mp3", x)


def _ffmpeg_make(tmp_path: Path, name: str) -> Path:
    src = tmp_path / "src.wav"
    sf.write(src, sine(440, 1.0, 44_100), 44_100)
    out = tmp_path / name
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-ac", "2", str(out)]
    subprocess.run(cmd, check=True)
    return out


@needs_ffmpeg
@pytest.mark.parametrize("name", ["clip.mp3", "clip.m4a"])
def test_load_compressed_made_with_ffmpeg(tmp_path: Path, name: str) -> None:
    wav = load_audio(_ffmpeg_make(tmp_path, name))
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # codec delay/padding
    assert abs(dominant_freq(wav, SAMPLE_RATE) - 440) < 3


@needs_ffmpeg
def test_m4a_without_ffmpeg_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _ffmpeg_make(tmp_path, "clip.m4a")
    monkeypatch.setattr(audio.shutil, "which", lambda _name: None)
    with pytest.raises(AudioError, match="install ffmpeg") as info:
        load_audio(path)
    assert "MP4/M4A" in str(info.value)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)
    text = tmp_path / "notes.wav"
    text.write_text("these are not the samples you are looking for\n")
    with pytest.raises(AudioError, match="text file") as info:
        load_audio(text)
    assert "Accepted formats" in str(info.value) and "FLAC" in str(info.value)
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    no_samples = tmp_path / "zero.wav"
    sf.write(no_samples, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(no_samples)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1] * 100, dtype=np.float32), SAMPLE_RATE, "FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_audio(nan)


def test_atomic_save_failure_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.wav"
    bad = sine(440, 0.1, SAMPLE_RATE)
    bad[10] = np.nan
    with pytest.raises(AudioError, match="non-finite"):
        save_audio(target, bad)
    assert not target.exists() and no_temp_files(tmp_path)

    with pytest.raises(AudioError, match="clip"):
        save_audio(target, sine(440, 0.1, SAMPLE_RATE, amp=1.5))
    assert not target.exists()
    save_audio(target, sine(440, 0.1, SAMPLE_RATE, amp=1.5), clip=True)
    assert peak(load_audio(target)) <= 1.0
    before = target.read_bytes()

    def failing_write(file: str, *args: object, **kwargs: object) -> None:
        Path(file).write_bytes(b"RIFF partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio.sf, "write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        save_audio(target, sine(220, 0.1, SAMPLE_RATE))
    assert target.read_bytes() == before and no_temp_files(tmp_path)


def test_atomic_write(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "rows.jsonl"
    with atomic_write(target) as f:
        f.write('{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    with pytest.raises(KeyError), atomic_write(target) as f:
        f.write("half")
        raise KeyError("boom")
    assert target.read_text() == '{"a": 1}\n' and no_temp_files(target.parent)
    with atomic_write(tmp_path / "blob.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"


def test_resample_and_to_mono_shapes() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4410)).astype(np.float32) * 0.1
    assert resample(x, 44_100, 16_000).shape == (2, 1600)
    assert resample(x[0], 44_100, 16_000).shape == (1600,)
    assert resample(x, 16_000, 16_000) is not None
    np.testing.assert_allclose(to_mono(x), x.mean(axis=0), atol=1e-7)
    assert to_mono(x[0]).shape == (4410,)
    with pytest.raises(AudioError):
        to_mono(np.zeros((1, 2, 3), dtype=np.float32))


def test_mix_never_clips_and_scale_is_right() -> None:
    a, b = sine(440, 1.0, SAMPLE_RATE, amp=0.8), sine(440, 1.0, SAMPLE_RATE, amp=0.7)
    mixture, scale = mix([a, b], max_peak=0.99)
    assert peak(mixture) <= 0.99 + 1e-6
    assert scale == pytest.approx(0.99 / peak(a.astype(np.float64) + b), rel=1e-6)
    np.testing.assert_allclose(a * scale + b * scale, mixture, atol=1e-6)

    quiet, scale = mix([a * 0.1, b * 0.1], gains_db=[0.0, -6.0])
    assert scale == 1.0
    np.testing.assert_allclose(quiet, a * 0.1 + b * 0.1 * 10 ** (-6 / 20), atol=1e-6)

    with pytest.raises(AudioError, match="equal length"):
        mix([a, b[:-1]])
    with pytest.raises(AudioError, match="gains"):
        mix([a, b], gains_db=[0.0])


def test_loudness_normalize_reaches_target_and_respects_peak() -> None:
    noise = np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.01
    out = loudness_normalize(noise, SAMPLE_RATE, target_lufs=-20.0)
    assert abs(loudness_lufs(out, SAMPLE_RATE) - -20.0) < 0.5
    assert peak(out) <= 0.99

    loud = loudness_normalize(noise, SAMPLE_RATE, target_lufs=-3.0, max_peak=0.5)
    assert peak(loud) <= 0.5 + 1e-6
    assert loudness_lufs(loud, SAMPLE_RATE) < -3.0


def test_short_clip_loudness_matches_long() -> None:
    long = loudness_lufs(sine(1000, 2.0, SAMPLE_RATE), SAMPLE_RATE)
    short = loudness_lufs(sine(1000, 0.1, SAMPLE_RATE), SAMPLE_RATE)
    assert abs(long - short) < 0.5


def test_silence_handling() -> None:
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loudness_lufs(silence, SAMPLE_RATE) == -70.0
        assert loudness_lufs(silence[:10], SAMPLE_RATE) == -70.0
        assert loudness_lufs(silence[:0], SAMPLE_RATE) == -70.0
        assert not np.any(loudness_normalize(silence, SAMPLE_RATE))
        assert not np.any(peak_normalize(silence))
        mixture, scale = mix([silence, silence])
        assert scale == 1.0 and not np.any(mixture)
    assert peak(peak_normalize(sine(440, 0.1, SAMPLE_RATE, amp=0.1), target=0.95)) == pytest.approx(
        0.95, rel=1e-5
    )


def test_sliding_windows() -> None:
    x = np.arange(10.0)
    w = sliding_windows(x, 4, 3)  # starts 0, 3, 6: the tail that fits no window is dropped
    assert w.shape == (3, 4) and w[1].tolist() == [3, 4, 5, 6] and w[-1].tolist() == [6, 7, 8, 9]
    stacked = sliding_windows(np.stack([x, -x]), 4, 3)  # leading axes kept
    assert stacked.shape == (2, 3, 4) and np.array_equal(stacked[1], -w)
    short = sliding_windows(np.ones(2), 4, 1)  # shorter than a window: one, zero-padded
    assert short.tolist() == [[1.0, 1.0, 0.0, 0.0]]

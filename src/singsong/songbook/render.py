"""Render a composed song to stems: FluidSynth for the band, the Singer for the lead vocal.

Each stem is rendered on its own (so stems are exact), then a per-song room (a synthetic reverb
impulse response) is applied, stems get gains varied around a loudness balance, and the mixture
is their sum, scaled down together if it would clip: stems always sum to the mixture.

Soundfont: FluidR3_GM (Debian's ``fluid-soundfont-gm``, 141 MB) is the default. It is multi-sampled
with velocity layers on most programs, where the 6 MB TimGM6mb that ships inside pretty_midi has
one short, heavily looped sample per instrument; drums and pianos especially sound more real.
TimGM6mb is the fallback when the Debian soundfont is not installed.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal

from singsong import SAMPLE_RATE
from singsong.audio import loudness_lufs
from singsong.errors import SingsongError
from singsong.songbook.composer import STEMS, Part, Song
from singsong.songbook.voice import Singer

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DRUM_CHANNEL = 9
DRUM_BANK = 128
MAX_PEAK = 0.99
FLUID_BLOCK = 64  # FluidSynth's internal block size (frames)

# Loudness balance of the stems (LUFS) before the per-song random variation.
STEM_LOUDNESS = {"vocals": -20.0, "drums": -22.0, "bass": -23.0, "other": -23.0}
GAIN_SPREAD_DB = 3.0  # each stem's gain varies uniformly within +-this per song
REVERB_SEND = {"vocals": 0.18, "drums": 0.10, "bass": 0.03, "other": 0.22}


def find_soundfont(path: str | os.PathLike[str] | None = None) -> Path:
    """The soundfont to use: ``path``, else Debian's FluidR3_GM, else pretty_midi's TimGM6mb."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SingsongError(f"soundfont not found: {p}")
        return p
    if DEBIAN_SOUNDFONT.is_file():
        return DEBIAN_SOUNDFONT
    try:
        import pretty_midi
    except ImportError:  # pragma: no cover - pretty_midi is in the data extra
        pretty_midi = None
    if pretty_midi is not None:
        bundled = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
        if bundled.is_file():
            return bundled
    raise SingsongError(
        "no General MIDI soundfont found: install the Debian package fluid-soundfont-gm "
        "(or pass --soundfont PATH)"
    )


@dataclass(frozen=True)
class RenderedSong:
    stems: dict[str, np.ndarray]  # stem -> float32 [T], after gains; they sum to mixture
    mixture: np.ndarray  # float32 [T]
    gains_db: dict[str, float]
    reverb_seconds: float


class Renderer:
    """Turns songs into audio. One per worker process: it holds the loaded soundfont and singers."""

    def __init__(
        self, *, soundfont: str | os.PathLike[str] | None = None, sample_rate: int = SAMPLE_RATE
    ) -> None:
        try:
            import fluidsynth
        except (ImportError, OSError) as e:
            raise SingsongError(
                "FluidSynth is missing: install the Debian package 'fluidsynth' and the "
                "'data' extra (pip install 'singsong[data]')"
            ) from e
        self.sample_rate = sample_rate
        self.soundfont = find_soundfont(soundfont)
        # FluidSynth's own reverb and chorus are off: they would carry one stem's tail into the
        # next render, and the song's room is applied to every stem below instead.
        self._fluidsynth = fluidsynth
        self._new_synth()
        # pyfluidsynth only exposes 16-bit output (with dither); the float writer is exact.
        self._write_float = fluidsynth.cfunc(
            "fluid_synth_write_float",
            ctypes.c_int,
            ("synth", ctypes.c_void_p, 1),
            ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1),
            ("loff", ctypes.c_int, 1),
            ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1),
            ("roff", ctypes.c_int, 1),
            ("rincr", ctypes.c_int, 1),
        )
        self._singers: dict[str, Singer] = {}

    def _new_synth(self) -> None:
        self._synth = self._fluidsynth.Synth(
            gain=0.5,
            samplerate=float(self.sample_rate),
            **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 256},
        )
        self._sfid = self._synth.sfload(str(self.soundfont))
        if self._sfid < 0:
            raise SingsongError(f"FluidSynth could not load the soundfont {self.soundfont}")

    def render(self, song: Song) -> RenderedSong:
        n = round(song.duration * self.sample_rate)
        # A fresh synth per song: FluidSynth keeps voice state that no reset clears, and a song
        # must sound the same whichever worker renders it, after whatever it rendered before.
        self._synth.delete()
        self._new_synth()
        rng = np.random.default_rng(
            [song.seed, 1]
        )  # the mix has its own stream: same song, same mix
        dry = {
            stem: self.render_parts([p for p in song.parts if p.stem == stem], n)
            for stem in STEMS
            if stem != "vocals"
        }
        singer = self._singers.get(song.voice) or self._singers.setdefault(
            song.voice, Singer(song.voice, sample_rate=self.sample_rate)
        )
        dry["vocals"] = singer.sing(song.vocal, duration=n / self.sample_rate, seed=song.seed)
        rt60 = float(rng.uniform(0.3, 1.4))
        ir = _room_impulse(rt60, self.sample_rate, rng)
        gains_db: dict[str, float] = {}
        wet: dict[str, np.ndarray] = {}
        for stem in STEMS:
            x = dry[stem].astype(np.float64)
            x = x + REVERB_SEND[stem] * scipy.signal.fftconvolve(x, ir)[:n]
            level = loudness_lufs(x.astype(np.float32), self.sample_rate)
            target = STEM_LOUDNESS[stem] + rng.uniform(-GAIN_SPREAD_DB, GAIN_SPREAD_DB)
            gains_db[stem] = round(target - level, 3) if level > -70.0 else 0.0
            wet[stem] = x
        gained = {s: wet[s] * 10 ** (gains_db[s] / 20) for s in STEMS}
        mixture = np.sum([gained[s] for s in STEMS], axis=0)
        # One scale for everything, so stems still sum to the mixture and none of them clips.
        loudest = max(np.abs(x).max() for x in (mixture, *gained.values()))
        scale = min(1.0, MAX_PEAK / loudest) if loudest > 0 else 1.0
        stems = {s: (gained[s] * scale).astype(np.float32) for s in STEMS}
        scale_db = 20 * np.log10(scale)
        return RenderedSong(
            stems=stems,
            mixture=(mixture * scale).astype(np.float32),
            gains_db={s: round(g + scale_db, 3) for s, g in gains_db.items()},
            reverb_seconds=round(rt60, 3),
        )

    def render_parts(self, parts: list[Part], n_samples: int) -> np.ndarray:
        """The parts played together on fresh channels -> float32 mono [n_samples]."""
        synth = self._synth
        synth.system_reset()
        events: list[tuple[int, int, int, int, int]] = []  # (sample, on?, channel, key, velocity)
        melodic = [c for c in range(16) if c != DRUM_CHANNEL]
        for i, part in enumerate(parts):
            channel = DRUM_CHANNEL if part.is_drum else melodic[i % len(melodic)]
            bank = DRUM_BANK if part.is_drum else 0
            if synth.program_select(channel, self._sfid, bank, part.program) != 0:
                synth.program_select(channel, self._sfid, bank, 0)  # kit/program absent: default
            for note in part.notes:
                on = int(note.start * self.sample_rate)
                off = max(on + 1, int(note.end * self.sample_rate))
                events.append((on, 1, channel, note.pitch, note.velocity))
                events.append((off, 0, channel, note.pitch, 0))
        events.sort()  # note-offs sort before note-ons at the same sample: repeated notes restrike
        # FluidSynth works in blocks of 64 frames and applies events at block boundaries. Every
        # render starts on a boundary (the length is rounded up to whole blocks), so a song sounds
        # the same whatever this synth rendered before: the same seed gives the same audio.
        padded = -(-n_samples // FLUID_BLOCK) * FLUID_BLOCK
        out = np.zeros((2, padded), dtype=np.float32)
        cursor = 0
        for sample, is_on, channel, key, velocity in events:
            sample = min(sample, n_samples)
            cursor = self._synthesize(out, cursor, sample)
            if is_on:
                synth.noteon(channel, key, velocity)
            else:
                synth.noteoff(channel, key)
        self._synthesize(out, cursor, padded)
        for channel in range(16):
            synth.all_sounds_off(channel)
        return out[:, :n_samples].mean(axis=0)

    def _synthesize(self, out: np.ndarray, start: int, stop: int) -> int:
        while start < stop:
            frames = min(stop - start, 1 << 16)
            left = out[0, start : start + frames]
            right = out[1, start : start + frames]
            self._write_float(
                self._synth.synth, frames, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1
            )
            start += frames
        return start


def _room_impulse(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: decaying noise, darker as it decays, with a short pre-delay."""
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    noise = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    b, a = scipy.signal.butter(1, 3000 / (sample_rate / 2))
    ir = scipy.signal.lfilter(b, a, noise)
    ir = np.concatenate([np.zeros(int(0.012 * sample_rate)), ir])
    return ir / np.sqrt(np.sum(ir**2))

"""Train/validation splits shared by every stage, so no stage trains on another's held-out audio.

- MIR-1K: split by singer, never by clip (clips of one song share its accompaniment).
- Songbook: every tenth song (index 9, 19, 29, ...) of a corpus is held out.
- Any other source: a stable hash of the track id holds out one track in ten.
"""

from __future__ import annotations

import zlib

# Two of the eleven MIR-1K singers in ../shared/data (735 s of singing) are never trained on.
MIR1K_VALID_SINGERS = ("Ani", "Kenshin")


def is_valid_singer(singer: str) -> bool:
    return singer in MIR1K_VALID_SINGERS


def is_valid_song(song_id: str) -> bool:
    """Songbook ids end in a zero-padded index (``s0-00019``); every tenth song is held out."""
    try:
        index = int(song_id.rsplit("-", 1)[-1])
    except ValueError:
        raise ValueError(f"not a songbook song id: {song_id!r}") from None
    return index % 10 == 9


def track_split(source_kind: str, track: str) -> str:
    """``"train"`` or ``"valid"`` for a track of a pairs manifest (its ``source_kind`` and
    ``track`` fields, see :mod:`singsong.data.pairs`).

    MIR-1K tracks are ``<singer>_<n>_<m>``; songbook tracks are song ids; any other source (a
    folder of songs) holds out every track whose CRC-32 of its id is 9 modulo 10, which is
    stable across runs and machines, unlike Python's ``hash``.
    """
    if source_kind == "mir1k":
        return "valid" if is_valid_singer(track.split("_", 1)[0]) else "train"
    if source_kind == "songbook":
        return "valid" if is_valid_song(track) else "train"
    return "valid" if zlib.crc32(track.encode()) % 10 == 9 else "train"

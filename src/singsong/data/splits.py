"""Train/validation splits shared by every stage, so no stage trains on another's held-out audio.

- MIR-1K: split by singer, never by clip (clips of one song share its accompaniment).
- Songbook: every tenth song (index 9, 19, 29, ...) of a corpus is held out.
"""

from __future__ import annotations

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

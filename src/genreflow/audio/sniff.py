"""Why a file failed to open: the first bytes tell text, other formats and damaged audio apart.

libsndfile reports only "Format not recognised" or "malformed"; the user needs to know
whether they sent something that is not audio at all, audio in a format genreflow does
not read, or a supported file that is cut short.
"""

from __future__ import annotations

import re

from genreflow.audio.refusal import refused

SUPPORTED = "wav, flac, ogg (vorbis/opus), mp3, au, aiff"

# magic bytes of formats libsndfile reads -> name
_SUPPORTED_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "WAV"), (0, b"RIFX", "WAV"), (0, b"RF64", "WAV"), (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg"), (0, b".snd", "AU"), (0, b"FORM", "AIFF"), (0, b"ID3", "MP3"),
)
# magic bytes of audio/video formats it does not read -> name
_UNSUPPORTED_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/M4A/AAC"), (0, b"0&\xb2\x75\x8e\x66\xcf\x11", "WMA/ASF"),
    (0, b"MThd", "MIDI"), (0, b"\x1aE\xdf\xa3", "WebM/Matroska"), (0, b"#!AMR", "AMR"),
    (0, b"MAC ", "Monkey's Audio"), (0, b"wvpk", "WavPack"), (0, b"\xff\xf1", "AAC (ADTS)"),
    (0, b"\xff\xf9", "AAC (ADTS)"), (0, b"ADIF", "AAC (ADIF)"),
)


def _match(head: bytes, table: tuple[tuple[int, bytes, str], ...]) -> str | None:
    for offset, magic, label in table:
        if head[offset:offset + len(magic)] == magic:
            return label
    return None


def sniff(head: bytes) -> str | None:
    """The name of a supported format whose magic ``head`` starts with (MPEG sync included)."""
    label = _match(head, _SUPPORTED_MAGIC)
    if label is None and len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE6) in (0xE2, 0xE4,
                                                                                     0xE6):
        label = "MP3"  # MPEG audio layer III/II frame sync
    return label


def looks_like_text(head: bytes) -> bool:
    """Mostly printable UTF-8 (a text or HTML file, JSON, a path...)."""
    if not head:
        return False
    try:
        text = head.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        text = head[:-3].decode("utf-8", errors="ignore")  # a multi-byte char cut at the end
        if not text:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


#: Bytes of a file's start read before opening it: enough for the format chunks that come
#: first (a WAV's ``fmt``, an AIFF's ``COMM``) behind a few small ones (``JUNK``, ``LIST``).
HEAD_BYTES = 4096


def header_truncated(head: bytes, size: int) -> str | None:
    """The format's name when ``head``'s header declares more bytes than the file's ``size``
    holds (WAV, AIFF/AIFC, AU), else None. An unknown length (streamed AU, RF64) is not."""
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        order = "little" if head[:4] == b"RIFF" else "big"
        declared = int.from_bytes(head[4:8], order)
        return "WAV" if 0 < declared < 0xFFFFFFF0 and declared + 8 > size + 1 else None
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        declared = int.from_bytes(head[4:8], "big")
        return "AIFF" if 0 < declared < 0xFFFFFFF0 and declared + 8 > size + 1 else None
    if head[:4] == b".snd" and len(head) >= 12:
        offset, length = int.from_bytes(head[4:8], "big"), int.from_bytes(head[8:12], "big")
        return "AU" if length != 0xFFFFFFFF and offset + length > size else None
    return None


def declared_rate(head: bytes) -> float | None:
    """The sample rate a WAV, AIFF or AU header declares (read without the decoder, which
    refuses some absurd rates as an internal error and accepts others), else None."""
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        order = "little" if head[:4] == b"RIFF" else "big"
        body = _chunk(head, b"fmt ", order)
        return None if body is None or len(body) < 8 else int.from_bytes(body[4:8], order)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        body = _chunk(head, b"COMM", "big")
        return None if body is None or len(body) < 18 else _extended(body[8:18])
    if head[:4] == b".snd" and len(head) >= 20:
        return int.from_bytes(head[16:20], "big")
    return None


def _chunk(head: bytes, name: bytes, order: str) -> bytes | None:
    """The start of the first chunk ``name`` of a RIFF/IFF file whose header is ``head``."""
    pos = 12
    while pos + 8 <= len(head):
        length = int.from_bytes(head[pos + 4:pos + 8], order)
        if head[pos:pos + 4] == name:
            return head[pos + 8:pos + 8 + length]
        pos += 8 + length + (length & 1)
    return None


def _extended(raw: bytes) -> float:
    """An IEEE 754 80-bit extended float (AIFF's sample rate); inf for inf and NaN."""
    exponent = int.from_bytes(raw[:2], "big") & 0x7FFF
    mantissa = int.from_bytes(raw[2:10], "big")
    if exponent == 0x7FFF:
        return float("inf")
    try:
        return float(mantissa) * 2.0 ** (exponent - 16383 - 63)
    except OverflowError:
        return float("inf")


def open_failure(name: str, head: bytes, exc: Exception):
    """The :class:`~genreflow.audio.refusal.AudioError` for a file libsndfile could not open."""
    msg = re.sub(r"Error opening <[^>]*>: ", "", str(exc)).strip()
    other = _match(head, _UNSUPPORTED_MAGIC)
    if other is not None:
        return refused(name, "unsupported_format", f"{other} is not supported; send {SUPPORTED}")
    label = sniff(head)
    if "unimplemented format" in msg:
        return refused(name, "unsupported_format", f"{label or 'the file'} uses an encoding "
                       f"that is not supported ({msg}); send {SUPPORTED}")
    if "malformed" in msg and label is not None:
        return refused(name, "truncated", f"a damaged or cut-short {label} file ({msg})")
    if label is not None:
        return refused(name, "not_audio", f"starts like {label} but holds no readable audio "
                       f"({msg})")
    if looks_like_text(head):
        return refused(name, "not_audio", f"text, not an audio file; send {SUPPORTED}")
    return refused(name, "not_audio", f"not an audio file in a known format ({msg}); "
                   f"send {SUPPORTED}")

"""The input contract: which audio genreflow accepts, defined once.

``validate`` (training data: :func:`check_signal`), ``genreflow predict`` and the served
model (:func:`audio_blocks`, block by block) apply the same checks with the same
:class:`~genreflow.core.config.AudioConfig` (params.yaml ``audio:``; the served model carries it in
its ``model_config``). A refused input raises
:class:`~genreflow.audio.refusal.AudioError` whose ``reason`` is one of :data:`REASONS` and whose
message is one line naming the file or row.

Silence and clips shorter than ``min_seconds`` are refused, not answered: a genre for
30 s of digital silence is a confident answer to no question, and a clip shorter than one
analysis window would be mostly padding.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from genreflow.audio.decode import AudioStream, join_blocks, rms
from genreflow.audio.refusal import AudioError, refused
from genreflow.core.config import AudioConfig, ConfigError
from genreflow.core.quiet import quiet_c_stderr

# reason class -> what it means (stable names: clients may branch on them)
REASONS: dict[str, str] = {
    "empty": "0 bytes, or a file without samples",
    "not_audio": "not an audio file (text, random bytes, an unreadable header)",
    "unsupported_format": "audio in a format genreflow does not read (m4a/aac, wma, ...)",
    "truncated": "a supported file that is cut short or damaged",
    "bad_sample_rate": "a sample rate outside audio.min_sample_rate .. audio.max_sample_rate",
    "non_finite": "NaN or infinite samples",
    "too_short": "shorter than audio.min_seconds",
    "too_long": "longer than audio.max_seconds",
    "silent": "RMS of the mono mix below audio.silence_rms",
}
# refusals of a whole request (served model) or of a path (predict)
REQUEST_REASONS: dict[str, str] = {
    "bad_request": "not a table with a base64 'audio' column",
    "too_many_rows": "more rows than audio.max_rows",
    "request_too_large": "body larger than audio.max_request_mb",
    "request_too_long": "more audio than audio.max_request_seconds in one request",
}
PATH_REASONS: dict[str, str] = {
    "missing": "no such file",
    "not_a_file": "a directory, a device or another non-regular file",
}
ALL_REASONS: tuple[str, ...] = (*REASONS, *REQUEST_REASONS, *PATH_REASONS)


def check_level(seconds: float, level: float, audio: AudioConfig, where: str) -> None:
    """Refuse a decoded signal of ``seconds`` and RMS ``level`` that is too short or silent."""
    if seconds < audio.min_seconds:
        raise refused(where, "too_short", f"{seconds:.2f} s of audio, shorter than the minimum "
                      f"of {audio.min_seconds:g} s")
    if level < audio.silence_rms:
        raise refused(where, "silent", f"RMS {level:.1e} is below the silence threshold "
                      f"{audio.silence_rms:g} (digital silence or near it)")


def check_signal(y: np.ndarray, sr: int, audio: AudioConfig, where: str) -> None:
    """Refuse a decoded mono signal that is too short or silent."""
    check_level(len(y) / sr, rms(y), audio, where)


def open_stream(source: str | Path | bytes, audio: AudioConfig,
                where: str | None = None) -> AudioStream:
    """``source`` opened under the contract's limits (header checks only, nothing decoded)."""
    return AudioStream(source, max_seconds=audio.max_seconds, name=where,
                       sample_rates=sample_rates(audio))


def sample_rates(audio: AudioConfig) -> tuple[float, float]:
    """The sample rates the contract accepts, ``(lowest, highest)``."""
    return audio.min_sample_rate, audio.max_sample_rate


def audio_blocks(source: str | Path | bytes | AudioStream, audio: AudioConfig,
                 sample_rate: int | None = None, where: str | None = None) -> Iterator[np.ndarray]:
    """The contract block by block: decoding refusals as they happen, the mono mix's blocks
    (resampled to ``sample_rate``), then, after the last block, the length and silence checks
    on the signal as decoded. For a front-end that works while the file is being decoded
    (see :func:`genreflow.audio.decode.read_ahead`); :func:`load_audio` joins the blocks."""
    stream = source if isinstance(source, AudioStream) else open_stream(source, audio, where)
    yield from stream.blocks(sample_rate)
    check_level(stream.frames / stream.sample_rate, stream.rms(), audio, stream.name)


def load_audio(source: str | Path | bytes, audio: AudioConfig, sample_rate: int | None = None,
               where: str | None = None) -> tuple[np.ndarray, int]:
    """:func:`audio_blocks` as one signal: ``(mono float32, rate)``."""
    stream = open_stream(source, audio, where)
    return (join_blocks(audio_blocks(stream, audio, sample_rate)),
            int(sample_rate or stream.sample_rate))


def check_path(path: Path) -> AudioError | None:
    """Why ``path`` cannot be read as a file (missing, a directory, a device), or None."""
    if path.is_file():
        return None
    if not path.exists() and not path.is_symlink():
        return refused(str(path), "missing", "no such file")
    if path.is_dir():
        return refused(str(path), "not_a_file", "is a directory, not an audio file")
    if not path.exists():
        return refused(str(path), "missing", "a broken symbolic link")
    kind = ("a character device" if path.is_char_device() else "a block device"
            if path.is_block_device() else "a pipe" if path.is_fifo() else "a socket"
            if path.is_socket() else "not a regular file")
    return refused(str(path), "not_a_file", f"is {kind}, not an audio file")


def header_seconds(raw: bytes, audio: AudioConfig | None = None) -> float | None:
    """Duration from the file header without decoding; None when the header gives none, or
    gives a sample rate the contract refuses (decoding refuses it then: a 1 Hz header's
    length would otherwise count against the request's seconds)."""
    low, high = sample_rates(audio or AudioConfig())
    try:
        with quiet_c_stderr():
            info = sf.info(io.BytesIO(raw))
    except Exception:  # noqa: BLE001  (not audio: decoding reports it properly)
        return None
    if not low <= info.samplerate <= high or not 0 < info.frames < 2**62:
        return None
    return info.frames / info.samplerate


def to_model_config(audio: AudioConfig) -> dict[str, Any]:
    """The contract as the served model's ``model_config`` (plain JSON types)."""
    return {k: (float(v) if isinstance(v, float) else v)
            for k, v in dataclasses.asdict(audio).items()}


def from_model_config(config: dict[str, Any] | None) -> AudioConfig:
    """The contract from a served model's ``model_config`` (defaults for absent keys;
    models logged before the contract existed carry only min/max_seconds)."""
    names = {f.name for f in dataclasses.fields(AudioConfig)}
    known = {k: v for k, v in (config or {}).items() if k in names}
    try:
        return AudioConfig(**known)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"model_config: not a valid audio contract ({exc})") from None

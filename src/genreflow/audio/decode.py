"""Audio I/O shared by every stage, the served model and ``genreflow predict``.

One decoder (soundfile/libsndfile: wav, au, flac, ogg, mp3, aiff), block by block
(:class:`AudioStream`), so that training and serving see identical inputs and a served
request's front-end can run while its file is still being decoded (:func:`read_ahead`).
The log-mel transform is in :mod:`genreflow.audio.spectrum`.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf
import soxr

from genreflow.audio.refusal import AudioError, refused
from genreflow.audio.sniff import (
    HEAD_BYTES,
    declared_rate,
    header_truncated,
    open_failure,
)
from genreflow.core.config import AudioConfig
from genreflow.core.quiet import quiet_c_stderr
from genreflow.core.safe_text import printable

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SOURCE_FILE = "SOURCE.json"
#: Sample rates a file may declare unless the contract says otherwise (AudioConfig's defaults).
SAMPLE_RATES: tuple[float, float] = (AudioConfig.min_sample_rate, AudioConfig.max_sample_rate)
T = TypeVar("T")


@dataclass(frozen=True)
class Clip:
    """One labelled audio file: ``<genre>/<genre>.000NN.<ext>`` (GTZAN) or any audio file below
    a label folder (see :mod:`genreflow.data.collection`). ``group`` (artist, album...) and
    ``split`` (a predefined ``train``/``val``/``test``) come from a ``clips.csv`` index."""

    clip_id: str
    genre: str
    path: Path
    group: str | None = None
    split: str | None = None


def read_source(data_dir: str | Path) -> dict:
    """The provenance record written next to the raw audio (``SOURCE.json``)."""
    path = Path(data_dir) / SOURCE_FILE
    if not path.exists():
        return {"source": "unknown", "origin": str(data_dir)}
    return json.loads(path.read_text())


class AudioStream:
    """One audio file (path or bytes) decoded block by block into mono float32.

    Opening reads the header: a file that is empty, shorter than its WAV, AIFF or AU header
    says, not audio, at a sample rate outside ``sample_rates`` (before any sample is decoded)
    or longer than ``max_seconds`` by its header is refused at once. :meth:`blocks` then
    yields the mono mix (the mean of the channels), optionally resampled, and refuses, as
    soon as it is seen, a block with NaN or infinite samples, a file longer than
    ``max_seconds`` (decoding stops there: bounded memory) and a damaged one. After the
    last block, :attr:`frames` and :meth:`rms` describe the signal at its own rate.
    Errors are :class:`AudioError` with a reason class (``empty``, ``not_audio``,
    ``unsupported_format``, ``truncated``, ``bad_sample_rate``, ``non_finite``, ``too_long``).
    """

    BLOCK = 1 << 16  # frames per read: 3 s at 22.05 kHz, small enough to overlap the front-end

    def __init__(self, source: str | Path | bytes, *, max_seconds: float | None = None,
                 name: str | None = None, sample_rates: tuple[float, float] = SAMPLE_RATES):
        is_bytes = isinstance(source, bytes | bytearray)
        self.name = printable(name or ("<bytes>" if is_bytes else str(source)))
        if is_bytes:
            size, head, handle = len(source), bytes(source[:HEAD_BYTES]), io.BytesIO(source)
        else:
            size = Path(source).stat().st_size
            with open(source, "rb") as fh:
                head = fh.read(HEAD_BYTES)
            handle = source
        if size == 0:
            raise refused(self.name, "empty", "the file is empty (0 bytes)")
        cut = header_truncated(head, size)
        if cut is not None:
            raise refused(self.name, "truncated",
                          f"the {cut} file ends before the length its header gives")
        self._check_rate(declared_rate(head), sample_rates)  # before the decoder sees it
        with quiet_c_stderr():
            try:
                self._file = sf.SoundFile(handle)
            except Exception as exc:  # libsndfile raises several types for bad data
                raise open_failure(self.name, head, exc) from None
        try:
            self._check_rate(self._file.samplerate, sample_rates)
        except AudioError:
            self._file.close()
            raise
        self.sample_rate = int(self._file.samplerate)
        self.max_seconds = max_seconds
        header = self._file.frames
        if max_seconds is not None and 0 < header < 2**62 and header > max_seconds * self.sample_rate:
            self._file.close()
            raise refused(self.name, "too_long", f"{header / self.sample_rate:.1f} s of audio "
                          f"(header), longer than the maximum of {max_seconds:g} s")
        self.frames = 0       # mono frames decoded so far, at :attr:`sample_rate`
        self.energy = 0.0     # their sum of squares

    def _check_rate(self, rate: float | None, sample_rates: tuple[float, float]) -> None:
        """Refuse a sample rate outside ``sample_rates``: a 1 kB file at 1 Hz would count as
        500 s of audio, one at 2 GHz would cost seconds of resampling."""
        low, high = sample_rates
        if rate is not None and not low <= rate <= high:
            raise refused(self.name, "bad_sample_rate", f"a sample rate of {rate:g} Hz, outside "
                          f"{low:g} .. {high:g} Hz (audio.min_sample_rate .. max_sample_rate)")

    def rms(self) -> float:
        """Root mean square of the mono mix decoded so far."""
        return float(np.sqrt(self.energy / self.frames)) if self.frames else 0.0

    def blocks(self, sample_rate: int | None = None) -> Iterator[np.ndarray]:
        """The mono mix block by block, resampled to ``sample_rate`` when given (soxr HQ,
        streamed: the same samples as resampling the whole signal at once)."""
        limit = None if self.max_seconds is None else int(self.max_seconds * self.sample_rate)
        resampler = None
        if sample_rate is not None and sample_rate != self.sample_rate:
            resampler = soxr.ResampleStream(self.sample_rate, sample_rate, 1, dtype="float32",
                                            quality="HQ")
        try:
            while True:
                block = self._read()
                if block is None:
                    break
                if limit is not None and self.frames > limit:
                    raise refused(self.name, "too_long", f"more than {self.max_seconds:g} s "
                                  "of audio, the maximum")
                if not np.all(np.isfinite(block)):
                    raise refused(self.name, "non_finite",
                                  "the audio contains NaN or infinite samples")
                self.energy += float(np.einsum("i,i->", block, block))
                yield block if resampler is None else resampler.resample_chunk(block)
            if self.frames == 0:
                raise refused(self.name, "empty", "the file holds no audio samples")
            if resampler is not None:
                tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if len(tail):
                    yield tail
        finally:
            self._file.close()

    def _read(self) -> np.ndarray | None:
        """The next block's mono mix, or None at the end of the data (not the header's count)."""
        try:
            with quiet_c_stderr():
                block = self._file.read(self.BLOCK, dtype="float32", always_2d=True)
        except Exception as exc:
            raise refused(self.name, "truncated", f"decoding stopped after {self.frames} "
                          f"frames: {_clean(str(exc))} (the file is cut short or damaged)") from None
        if not len(block):
            return None
        self.frames += len(block)
        return _mono(block)


def decode(source: str | Path | bytes, sample_rate: int | None = None, *,
           max_seconds: float | None = None, name: str | None = None,
           sample_rates: tuple[float, float] = SAMPLE_RATES) -> tuple[np.ndarray, int]:
    """Decode a file path or raw bytes to mono float32 (the mean of the channels),
    optionally resampled: ``(signal, rate)``. One decoder (libsndfile) for every stage and
    the server; refusals as in :class:`AudioStream`."""
    stream = AudioStream(source, max_seconds=max_seconds, name=name, sample_rates=sample_rates)
    return join_blocks(stream.blocks(sample_rate)), int(sample_rate or stream.sample_rate)


def join_blocks(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """The blocks of a stream as one contiguous float32 signal (empty for no blocks)."""
    parts = list(blocks)
    y = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0)
    return np.ascontiguousarray(y, dtype=np.float32)


def read_ahead(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """``items``, produced in a background thread while the caller works on earlier ones.

    For decoding beside the front-end (libsndfile, soxr and numpy release the GIL): a 30 s
    Ogg Vorbis clip's spectrogram is done when its decoding is. An exception in the producer
    is raised in the caller; a caller that stops early stops the producer (and closes it).
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((item, None))
            box.put((done, None))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller)
            box.put((done, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="genreflow-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # a producer blocked on a full queue gets room to see `stop`
            with contextlib.suppress(queue.Empty):
                box.get(timeout=0.01)
        thread.join()


def _mono(block: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``(frames, channels)``, bit for bit ``block.mean(axis=1)``
    (the same sums in the same order) in a fraction of its time: numpy's reduction over a short,
    strided axis is slow (see docs/benchmarks.md, Mono mix and RMS). Mono blocks pass as they are."""
    channels = block.shape[1]
    if channels == 1:
        return block[:, 0]
    mono = block[:, 0].copy()
    for c in range(1, channels):
        mono += block[:, c]
    mono /= np.float32(channels)
    return mono


def _clean(msg: str) -> str:
    return re.sub(r"Error opening <[^>]*>: |^Error : ", "", msg).strip()


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality; what librosa's ``soxr_hq`` calls)."""
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad ``y`` to exactly ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


def rms(y: np.ndarray) -> float:
    """Root mean square of a signal (0.0 for an empty one).

    ``np.einsum`` sums the products without a temporary array (a float64 copy of the clip costs
    page faults on every request; relative difference to float64 ~1e-7). Not ``np.dot``: that
    wakes BLAS threads, which keep spinning on the cores TensorFlow needs next and slow the
    model's forward pass after it (see docs/benchmarks.md, Mono mix and RMS)."""
    if not y.size:
        return 0.0
    flat = y.ravel()
    return float(np.sqrt(float(np.einsum("i,i->", flat, flat)) / y.size))


LOUDNESS_DBFS = -20.0  # every signal is scaled to this RMS before any front-end


def normalise_loudness(y: np.ndarray, target_dbfs: float = LOUDNESS_DBFS) -> np.ndarray:
    """``y`` scaled to an RMS of ``target_dbfs``: the same input whatever the recording gain.

    Digital silence is returned unchanged (the input contract refuses it).
    """
    level = rms(y)
    if level < 1e-8:
        return y
    return (y * np.float32(10 ** (target_dbfs / 20) / level)).astype(np.float32, copy=False)

"""Stage ``figures``: the paper's per-clip figures 1-5.

Per clip: (1) raw waveform, (2) linear-frequency dB spectrogram (0-10 kHz),
(3) log-frequency dB spectrogram, (4) spectral roll-off over the waveform,
(5) chroma. One STFT per clip feeds figures 2-5.

The charts of runs and data (confusion matrix, learning curves, clips per genre) are in
:mod:`genreflow.stages.plots`.

Everything draws on :class:`matplotlib.figure.Figure` objects (no pyplot, no
global state, no GUI backend); matplotlib and librosa are imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genreflow.audio.decode import Clip, decode, read_source
from genreflow.audio.refusal import AudioError
from genreflow.audio.spectrum import power_spectrogram
from genreflow.core.config import ConfigError, FeaturesConfig, FiguresConfig
from genreflow.core.errors import DataError
from genreflow.core.parallel import parallel_map
from genreflow.core.safe_text import file_stem, printable
from genreflow.data.collection import find_clips
from genreflow.stages.plots import colorbar, save_png

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_KINDS: tuple[str, ...] = ("waveform", "spectrogram", "log_spectrogram", "rolloff", "chroma")
PITCH_CLASSES: tuple[str, ...] = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")
LINEAR_MAX_HZ = 10_000.0
LOG_MIN_HZ = 20.0
DB_RANGE = 80.0
ROLL_PERCENT = 0.85
_ENVELOPE_POINTS = 2000


# --------------------------------------------------------------------------- clip selection


def choose_clips(
    data_dir: Path, selection: str | list[str], valid_ids: set[str] | None = None
) -> list[Clip]:
    """Clips to draw.

    ``"auto"``: the first clip (by id) of each genre, among ``valid_ids`` when given.
    A list of clip ids (or one comma-separated string) selects those clips, in the
    given order; explicit ids are honoured even if validation excluded them.
    Raises :class:`~genreflow.core.config.ConfigError` naming any id not found under ``data_dir``.
    """
    clips = find_clips(data_dir)
    if isinstance(selection, str) and selection.strip().lower() == "auto":
        chosen: dict[str, Clip] = {}
        for clip in clips:
            if (valid_ids is None or clip.clip_id in valid_ids) and clip.genre not in chosen:
                chosen[clip.genre] = clip
        if not chosen:
            what = "valid clips" if valid_ids is not None else "audio clips"
            raise DataError(f"{data_dir}: no {what} to draw figures for")
        return [chosen[g] for g in sorted(chosen)]

    ids = [s.strip() for s in selection.split(",")] if isinstance(selection, str) else selection
    ids = [i for i in ids if i]
    if not ids:
        raise ConfigError("figures.clips: expected 'auto' or a non-empty list of clip ids")
    by_id = {c.clip_id: c for c in clips}
    missing = [i for i in ids if i not in by_id]
    if missing:
        sample = ", ".join(sorted(by_id)[:5]) or "none"
        raise ConfigError(
            f"figures.clips: clip id(s) not found in {data_dir}: {', '.join(missing)} "
            f"(available e.g.: {sample}{', ...' if len(by_id) > 5 else ''})"
        )
    return [by_id[i] for i in dict.fromkeys(ids)]


# --------------------------------------------------------------------------- per-clip figures


def _title(clip_id: str, what: str, source_label: str) -> str:
    return f"{printable(clip_id)} — {what}" + (f" [{source_label}]" if source_label else "")


def _clip_figure(
    width: float, height: float, colorbar: bool = False, right_axis: bool = False
) -> tuple[Figure, Axes, Axes | None]:
    """A one-panel figure with fixed margins in inches (a layout engine costs ~40 % of the
    drawing time); returns the figure, the main axes and the colourbar axes if asked for."""
    # deferred: matplotlib import (see docs/benchmarks.md, Import cost)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    left, bottom, top = 0.85, 0.55, 0.4
    right = 1.05 if colorbar else 0.9 if right_axis else 0.25
    ax = fig.add_axes((left / width, bottom / height, 1 - (left + right) / width,
                       1 - (bottom + top) / height))
    cax = None
    if colorbar:
        cax = fig.add_axes(((width - right + 0.12) / width, bottom / height, 0.16 / width,
                            1 - (bottom + top) / height))
    return fig, ax, cax


def _envelope(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max envelope of ``y`` on ~2000 time points (fast to draw, looks like the raw trace)."""
    n = len(y)
    if n <= 2 * _ENVELOPE_POINTS:
        t = np.arange(n) / sr
        return t, y, y
    step = int(np.ceil(n / _ENVELOPE_POINTS))
    padded = np.pad(y, (0, (-n) % step), mode="edge").reshape(-1, step)
    t = (np.arange(padded.shape[0]) * step + step / 2) / sr
    return t, padded.min(axis=1), padded.max(axis=1)


def _draw_waveform(ax: Axes, y: np.ndarray, sr: int, color: str = "tab:blue",
                   alpha: float = 1.0) -> None:
    t, lo, hi = _envelope(y, sr)
    if lo is hi:
        ax.plot(t, y, color=color, linewidth=0.6, alpha=alpha)
    else:
        ax.fill_between(t, lo, hi, color=color, linewidth=0, alpha=alpha)
    ax.set_xlim(0, len(y) / sr)
    peak = float(np.max(np.abs(y))) or 1.0
    ax.set_ylim(-1.05 * peak, 1.05 * peak)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude (full scale)")


def _stft_db(y: np.ndarray, feat: FeaturesConfig) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrogram and its dB version (re the clip's maximum, floor -80 dB)."""
    # deferred: librosa import (see docs/benchmarks.md, Import cost)
    import librosa

    power = power_spectrogram(y, feat.n_fft, feat.hop_length).astype(np.float64)
    db = librosa.power_to_db(power, ref=np.max, top_db=DB_RANGE)
    return power, db


def _frame_times(n_frames: int, feat: FeaturesConfig) -> np.ndarray:
    return np.arange(n_frames) * feat.hop_length / feat.sample_rate


def draw_clip_figures(
    clip: Clip,
    out_dir: Path,
    feat: FeaturesConfig,
    dpi: int = 100,
    source_label: str = "",
) -> list[Path]:
    """Decode ``clip`` at ``feat.sample_rate`` and write ``<clip_id>_<kind>.png`` for each kind
    (the id made safe as a file name by :func:`~genreflow.core.safe_text.file_stem`).

    The whole clip is drawn (``feat.clip_seconds`` is not applied). Raises
    :class:`AudioError` when the clip cannot be decoded.
    """
    y, sr = decode(clip.path, feat.sample_rate)
    return _draw_decoded(clip.clip_id, y, sr, Path(out_dir), feat, dpi, source_label)


def _draw_decoded(
    clip_id: str,
    y: np.ndarray,
    sr: int,
    out_dir: Path,
    feat: FeaturesConfig,
    dpi: int,
    source_label: str,
) -> list[Path]:
    # deferred: librosa import (see docs/benchmarks.md, Import cost)
    import librosa

    power, db = _stft_db(y, feat)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=feat.n_fft)
    times = _frame_times(db.shape[1], feat)
    duration = len(y) / sr
    t_edges = np.append(times, times[-1] + feat.hop_length / sr) if len(times) else times
    db_label = "power (dB re max)"
    paths: list[Path] = []

    def out(kind: str) -> Path:
        return out_dir / f"{file_stem(clip_id)}_{kind}.png"

    # (1) raw waveform
    fig, ax, _ = _clip_figure(10, 3.2)
    _draw_waveform(ax, y, sr)
    ax.axhline(0, color="0.4", linewidth=0.5)
    ax.set_title(_title(clip_id, f"raw waveform ({sr} Hz, {duration:.1f} s)", source_label))
    paths.append(save_png(fig, out("waveform"), dpi))

    # (2) linear-frequency spectrogram, 0-10 kHz
    fmax = min(LINEAR_MAX_HZ, sr / 2)
    keep = freqs <= fmax + 1e-9
    fig, ax, cax = _clip_figure(10, 4.2, colorbar=True)
    df = freqs[1] - freqs[0]
    im = ax.imshow(
        db[keep], origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
        extent=(0, t_edges[-1], -df / 2, freqs[keep][-1] + df / 2), vmin=-DB_RANGE, vmax=0,
    )
    ax.set_ylim(0, fmax)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(_title(clip_id, "spectrogram (STFT, linear frequency)", source_label))
    colorbar(fig, im, ax, db_label, cax)
    paths.append(save_png(fig, out("spectrogram"), dpi))

    # (3) log-frequency spectrogram
    fig, ax, cax = _clip_figure(10, 4.2, colorbar=True)
    lo_hz = max(LOG_MIN_HZ, freqs[1] / 2)
    rows = freqs >= lo_hz
    f_rows = freqs[rows]
    f_edges = np.concatenate(([lo_hz], (f_rows[:-1] + f_rows[1:]) / 2, [sr / 2]))
    mesh = ax.pcolormesh(t_edges, f_edges, db[rows], cmap="magma", vmin=-DB_RANGE, vmax=0,
                         shading="flat", rasterized=True)
    ax.set_yscale("log")
    ax.set_ylim(lo_hz, sr / 2)
    ax.set_xlim(0, duration)
    # deferred: matplotlib import (see docs/benchmarks.md, Import cost)
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, log scale)")
    ax.set_title(_title(clip_id, "log-frequency spectrogram", source_label))
    colorbar(fig, mesh, ax, db_label, cax)
    paths.append(save_png(fig, out("log_spectrogram"), dpi))

    # (4) spectral roll-off over the waveform
    rolloff = librosa.feature.spectral_rolloff(
        S=np.sqrt(power), sr=sr, n_fft=feat.n_fft, hop_length=feat.hop_length,
        roll_percent=ROLL_PERCENT,
    )[0]
    fig, ax, _ = _clip_figure(10, 3.6, right_axis=True)
    _draw_waveform(ax, y, sr, color="0.55", alpha=0.6)
    ax2 = ax.twinx()
    ax2.plot(times, rolloff, color="tab:red", linewidth=1.2,
             label=f"roll-off frequency ({ROLL_PERCENT:.0%} of spectral energy)")
    ax2.set_ylim(0, max(float(rolloff.max()) * 1.3, 1.0) if rolloff.size else sr / 2)
    ax2.set_ylabel("roll-off frequency (Hz)", color="tab:red")
    ax2.tick_params(axis="y", colors="tab:red")
    ax2.legend(loc="upper right", fontsize="small", framealpha=0.85)
    ax.set_ylabel("amplitude (full scale)", color="0.35")
    ax.set_title(_title(clip_id, "spectral roll-off over the waveform", source_label))
    paths.append(save_png(fig, out("rolloff"), dpi))

    # (5) chroma
    # on the A440 grid (tuning=0): no tuning estimate, whose numba code librosa caches on
    # disk; parallel workers writing that cache at once left it corrupt here once (a segfault)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=feat.n_fft, tuning=0.0,
                                         hop_length=feat.hop_length, n_chroma=12)
    fig, ax, cax = _clip_figure(10, 3.6, colorbar=True)
    im = ax.imshow(chroma, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(0, t_edges[-1], -0.5, 11.5), vmin=0, vmax=1)
    ax.set_yticks(range(12), PITCH_CLASSES)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch class")
    ax.set_title(_title(clip_id, "chromagram (STFT chroma, 12 pitch classes)", source_label))
    colorbar(fig, im, ax, "relative energy (max per frame = 1)", cax)
    paths.append(save_png(fig, out("chroma"), dpi))
    return paths


def make_figures(
    data_dir: Path,
    out_dir: Path,
    feat: FeaturesConfig,
    figs: FiguresConfig,
    valid_ids: set[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Draw figures 1-5 for the clips chosen by ``figs.clips`` into ``out_dir``.

    Old PNGs in ``out_dir`` are removed first. A clip that cannot be decoded is
    reported through ``log`` and skipped; with ``"auto"`` the next clip of the same
    genre is tried instead. Clips are drawn in ``feat.workers`` processes. Returns
    the paths of all PNGs written, in clip order.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.png"):
        old.unlink()
    label = str(read_source(data_dir).get("source", "unknown"))
    chosen = choose_clips(data_dir, figs.clips, valid_ids)
    auto = isinstance(figs.clips, str) and figs.clips.strip().lower() == "auto"
    pool: dict[str, list[Clip]] = {}
    if auto:
        for c in find_clips(data_dir):
            if valid_ids is None or c.clip_id in valid_ids:
                pool.setdefault(c.genre, []).append(c)

    jobs = [
        (pool[c.genre][pool[c.genre].index(c):] if auto else [c], out_dir, feat, figs.dpi, label)
        for c in chosen
    ]
    results = parallel_map(_draw_first, jobs, feat.workers, chunksize=1)

    paths: list[Path] = []
    for clip, (drawn, messages) in zip(chosen, results, strict=True):
        for msg in messages:
            log(msg)
        if not drawn and auto:
            log(f"figures: no decodable clip for genre {clip.genre}; no figures for it")
        paths += drawn
    return paths


def _draw_first(
    job: tuple[list[Clip], Path, FeaturesConfig, int, str],
) -> tuple[list[Path], list[str]]:
    """Draw the first candidate that decodes; return its PNGs and the skip messages."""
    candidates, out_dir, feat, dpi, label = job
    messages: list[str] = []
    for cand in candidates:
        try:
            y, sr = decode(cand.path, feat.sample_rate)
        except AudioError as exc:
            messages.append(printable(f"figures: skipped {cand.clip_id}: {exc}"))
            continue
        return _draw_decoded(cand.clip_id, y, sr, out_dir, feat, dpi, label), messages
    return [], messages

"""Narrow-band routing for kinds on genreflow's log-mels: a second top for clips with
nothing above 6 kHz (``train.<kind>.narrow_band``).

An 8 or 11 kHz recording reaches the 22.05 kHz front-end with every mel band above 4 or
5.5 kHz at the log-mel floor, and a top trained on full-band clips reads it poorly. Routed,
the kind trains two independent tops in one model: the full-band top on the clips as they
are, the narrow-band top on the same clips with every band above 6 kHz set to the floor (a
recording at 12 kHz), and each band-limited copy of ``band_limit`` goes to the top its flag
picks. A clip whose log-mel over the bands wholly above 6 kHz lies on average less than
``LEVEL_DB`` above the floor is read by the narrow-band top, in training as in serving (the
flag is a layer of the saved model). The same idea as ``musicnn.band``, on normalised log-mels.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from genreflow.kinds.logmel import band_floor

#: the narrow-band view: nothing above this frequency (a recording at twice this rate)
NARROW_HZ = 6000.0
#: a clip whose bands wholly above NARROW_HZ are on average less than this many dB above the
#: log-mel floor counts as narrow-band
LEVEL_DB = 1.0


@keras.saving.register_keras_serializable(package="genreflow")
class FloorFlag(layers.Layer):
    """``(batch, mels, frames, 1)`` normalised log-mels to ``(batch, 1)``: 1 where the bands
    from ``first_band`` on are on average less than ``level_db`` above their floor."""

    def __init__(self, first_band: int, floor: list[float], std: list[float],
                 level_db: float = LEVEL_DB, **kwargs):
        super().__init__(**kwargs)
        self.first_band, self.level_db = int(first_band), float(level_db)
        self.floor, self.std = [float(v) for v in floor], [float(v) for v in std]

    def call(self, x):
        ops = keras.ops
        floor = ops.convert_to_tensor(np.asarray(self.floor, np.float32)[:, None])
        std = ops.convert_to_tensor(np.asarray(self.std, np.float32)[:, None])
        above = (ops.cast(x[:, self.first_band:, :, 0], "float32") - floor) * std
        return ops.cast(ops.mean(above, axis=(1, 2)) < self.level_db, x.dtype)[:, None]

    def get_config(self) -> dict:
        return {**super().get_config(), "first_band": self.first_band, "floor": self.floor,
                "std": self.std, "level_db": self.level_db}


@dataclass
class BandRouter:
    """The narrow-band view and flag of one feature set (its bands and train statistics)."""

    band_hz: np.ndarray   # centre frequency of each mel band
    floor: np.ndarray     # the normalised floor of each band
    std: np.ndarray       # each band's train-split standard deviation (dB)

    @classmethod
    def of(cls, fs) -> BandRouter:
        return cls(*band_floor(fs))

    @property
    def first_band(self) -> int:
        """The first band whose centre lies above :data:`NARROW_HZ`."""
        return int(np.argmax(self.band_hz > NARROW_HZ))

    def narrow_view(self, x: np.ndarray) -> np.ndarray:
        """``(n, mels, frames)`` clips with every band above :data:`NARROW_HZ` at the floor."""
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.models.layers import BandLimit

        out = np.array(x, np.float32)
        BandLimit(self.band_hz, self.floor, 1.0).apply(out, np.full(len(out), NARROW_HZ))
        return out

    def flags(self, x: np.ndarray) -> np.ndarray:
        """``(n, 1)`` float32 flags of ``(n, mels, frames)`` clips (numpy twin of the layer)."""
        k = self.first_band
        above = (np.asarray(x, np.float32)[:, k:, :] - self.floor[k:, None]) * self.std[k:, None]
        return (above.mean(axis=(1, 2)) < LEVEL_DB).astype(np.float32)[:, None]

    def layer(self, name: str = "narrow_band") -> FloorFlag:
        k = self.first_band
        return FloorFlag(k, self.floor[k:].tolist(), self.std[k:].tolist(), name=name)

"""Kind ``inception``'s settings (``train.inception``)."""

from __future__ import annotations

from dataclasses import dataclass

from genreflow.kinds.base import KindConfig, check_share

INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 + INCEPTION_NOTOP_FILE)


@dataclass
class InceptionConfig(KindConfig):
    optimizer: str = "sgd"
    learning_rate: float = 1e-4
    weights: str = "none"     # none | imagenet | path of INCEPTION_NOTOP_FILE
    image_size: int = 139     # InceptionV3 needs >= 75
    dense: int = 256
    dropout: float = 0.3
    band_limit: float = 0.6   # share of training clips with an extra copy low-passed as 8, 11 or 16 kHz audio
    narrow_band: bool = True  # a second top for clips with nothing above 6 kHz (logmel_band)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_share("band_limit", self.band_limit)

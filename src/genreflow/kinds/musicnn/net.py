"""A Keras 3 port of musicnn (Pons & Serra, 2019) with the weights its PyPI wheel ships.

The network, its 16 kHz log-mel front-end and the tag names follow the ``musicnn`` package
0.1.0 (ISC licence, by Jordi Pons and Xavier Serra): front-end of timbral (7x38, 7x67) and
temporal (128/64/32 x 1) convolutions max-pooled over frequency, a mid-end of three
dense-connected 1-D convolutions, a back-end of global max+mean pooling, a 200-unit dense layer
("penultimate") and one sigmoid unit per tag. Only the checkpoint files of that package are read
(``pip install --no-deps musicnn==0.1.0``); its TensorFlow 1 code is never imported.
``scripts/musicnn_golden.py`` checks this port against the original graph.

Importing this module loads neither TensorFlow nor the weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from genreflow.audio.spectrum import mel_basis, power_spectrogram
from genreflow.core.errors import GenreflowError

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
VARIANTS = ("MSD_musicnn", "MTT_musicnn")
INSTALL_COMMAND = "pip install --no-deps musicnn==0.1.0"
#: Layer-name prefixes in network order; ``set_trainable_from`` unfreezes from one of them on.
BLOCKS = ("input", "frontend", "midend1", "midend2", "midend3", "backend", "output")
#: Per-patch outputs of :func:`build_musicnn` and their widths.
OUTPUTS = {"taggram": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753}

MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird",
    "country", "metal", "female voice", "choral",
)

# Keras layer name -> variable scope in the checkpoint (order of creation in musicnn/models.py).
_CHECKPOINT_NAMES = {
    "input_bn": "batch_normalization",
    "frontend_timbral74_conv": "conv2d", "frontend_timbral74_bn": "batch_normalization_1",
    "frontend_timbral77_conv": "conv2d_1", "frontend_timbral77_bn": "batch_normalization_2",
    "frontend_temporal128_conv": "conv2d_2", "frontend_temporal128_bn": "batch_normalization_3",
    "frontend_temporal64_conv": "conv2d_3", "frontend_temporal64_bn": "batch_normalization_4",
    "frontend_temporal32_conv": "conv2d_4", "frontend_temporal32_bn": "batch_normalization_5",
    "midend1_conv": "conv2d_5", "midend1_bn": "batch_normalization_6",
    "midend2_conv": "conv2d_6", "midend2_bn": "batch_normalization_7",
    "midend3_conv": "conv2d_7", "midend3_bn": "batch_normalization_8",
    "backend_pool_bn": "batch_normalization_9", "backend_dense": "dense",
    "backend_penultimate_bn": "batch_normalization_10",
    "output_logits": "dense_1",
}


def tag_names(variant: str) -> tuple[str, ...]:
    """The 50 tags of ``variant``, in the order of the taggram's columns."""
    _check_variant(variant)
    return MSD_TAGS if variant.startswith("MSD") else MTT_TAGS


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise GenreflowError(f"musicnn variant: expected one of {VARIANTS}, got {variant!r}")


def _package_dir() -> Path | None:
    """The installed ``musicnn`` package folder, found without importing it."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def weights_dir(variant: str, root: str | Path | None = None) -> Path:
    """The checkpoint folder ``musicnn/<variant>/`` (``root``: the package folder, default found).

    Raises :class:`GenreflowError` naming the install command when the files are missing.
    """
    _check_variant(variant)
    base = Path(root) if root is not None else _package_dir()
    folder = None if base is None else base / variant
    needed = (".index", ".data-00000-of-00001")
    if folder is None or not all((folder / name).is_file() for name in needed):
        where = "the musicnn package is not installed" if folder is None else (
            f"{folder} lacks the checkpoint files {needed}")
        raise GenreflowError(f"musicnn weights for {variant} not found ({where}); install them "
                             f"with: {INSTALL_COMMAND}")
    return folder


def musicnn_front_end(y: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-compressed mel spectrogram ``log10(10000 * mel + 1)``: ``(frames, 96)`` float32.

    ``y`` is mono audio at 16 kHz. The transform is musicnn's ``librosa.feature.melspectrogram``
    (FFT 512, hop 256, 96 Slaney mel bands, power 2, centred frames with librosa's default
    zero padding) followed by the log compression above. The reference extractor casts the mel
    power to float16 *before* multiplying by 10000, which overflows to ``inf`` on loud frames
    (power > 6.55); here everything is computed in float32, so loud frames stay finite.
    """
    if sample_rate != SAMPLE_RATE:
        raise GenreflowError(f"musicnn front-end: audio must be at {SAMPLE_RATE} Hz, "
                             f"got {sample_rate} Hz (resample first)")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise GenreflowError(f"musicnn front-end: expected mono samples (1-D, non-empty), "
                             f"got shape {y.shape}")
    power = power_spectrogram(y, N_FFT, HOP_LENGTH)
    mel = np.asarray(mel_basis(SAMPLE_RATE, N_FFT, N_MELS) @ power)
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0)).T.astype(np.float32)


def patches(spec: np.ndarray, hop_frames: int = PATCH_FRAMES, n_frames: int = PATCH_FRAMES,
            pad_short: bool = False) -> np.ndarray:
    """Windows of ``n_frames`` over real frames only: ``(n, n_frames, 96)`` float32.

    Windows start every ``hop_frames`` frames and a trailing part shorter than a window is
    dropped, as in musicnn's extractor. A spectrogram shorter than one window raises
    :class:`GenreflowError`, unless ``pad_short``: then it is repeated up to one window (musicnn's
    training used this "repeat-pad" for short songs).
    """
    spec = np.asarray(spec, dtype=np.float32)
    if spec.ndim != 2 or spec.shape[0] == 0:
        raise GenreflowError(f"musicnn patches: expected a (frames, mels) spectrogram, "
                             f"got shape {spec.shape}")
    if hop_frames < 1:
        raise GenreflowError(f"musicnn patches: hop_frames must be >= 1, got {hop_frames}")
    if spec.shape[0] < n_frames:
        if not pad_short:
            seconds = (spec.shape[0] - 1) * HOP_LENGTH / SAMPLE_RATE
            raise GenreflowError(
                f"musicnn patches: {spec.shape[0]} frames (about {seconds:.2f} s) is shorter than "
                f"one {n_frames}-frame patch (3 s at 16 kHz); pass pad_short=True to repeat-pad")
        reps = -(-n_frames // spec.shape[0])
        spec = np.tile(spec, (reps, 1))[:n_frames]
    windows = np.lib.stride_tricks.sliding_window_view(spec, n_frames, axis=0)[::hop_frames]
    return np.ascontiguousarray(np.moveaxis(windows, -1, 1))


def build_musicnn(variant: str = "MSD_musicnn", n_tags: int = 50, n_frames: int = PATCH_FRAMES,
                  load_weights: bool = True):
    """The musicnn network on ``(batch, n_frames, 96)`` patches, weights from the checkpoint.

    Outputs a dict of per-patch arrays: ``taggram`` (sigmoid tag probabilities), ``penultimate``
    (200, the back-end dense layer after its batch norm), ``mean_pool`` and ``max_pool`` (753,
    the temporal mean and max of the concatenated front- and mid-end features). Batch norms run
    in inference mode unless their block is made trainable and the model is called in training.
    """
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras
    from keras import layers

    _check_variant(variant)
    folder = weights_dir(variant) if load_weights else None
    patch = keras.Input((n_frames, N_MELS), name="patch")
    x = layers.Reshape((n_frames, N_MELS, 1), name="input_expand")(patch)
    x = layers.BatchNormalization(name="input_bn")(x)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="frontend_pad")(x)
    front = []
    for name, source, filters, kernel, padding in (
            ("timbral74", padded, 204, (7, int(0.4 * N_MELS)), "valid"),
            ("timbral77", padded, 204, (7, int(0.7 * N_MELS)), "valid"),
            ("temporal128", x, 51, (128, 1), "same"),
            ("temporal64", x, 51, (64, 1), "same"),
            ("temporal32", x, 51, (32, 1), "same")):
        h = layers.Conv2D(filters, kernel, padding=padding, activation="relu",
                          name=f"frontend_{name}_conv")(source)
        h = layers.BatchNormalization(name=f"frontend_{name}_bn")(h)
        h = layers.MaxPooling2D((1, h.shape[2]), name=f"frontend_{name}_pool")(h)
        front.append(layers.Reshape((n_frames, filters), name=f"frontend_{name}_squeeze")(h))
    front = layers.Concatenate(name="frontend_concat")(front)  # (T, 561)

    mid, h = [front], front
    for i in (1, 2, 3):
        c = layers.ZeroPadding1D(3, name=f"midend{i}_pad")(h)
        c = layers.Conv1D(64, 7, activation="relu", name=f"midend{i}_conv")(c)
        c = layers.BatchNormalization(name=f"midend{i}_bn")(c)
        h = c if i == 1 else layers.Add(name=f"midend{i}_residual")([c, h])
        mid.append(h)
    mid = layers.Concatenate(name="midend3_concat")(mid)  # (T, 753)

    width = mid.shape[-1]
    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(mid)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(mid)
    # musicnn flattens concat([max, mean], axis=2) of (753, 1) maps: features interleave.
    pooled = layers.Concatenate(name="backend_pool_stack")(
        [layers.Reshape((width, 1), name="backend_max_expand")(max_pool),
         layers.Reshape((width, 1), name="backend_mean_expand")(mean_pool)])
    h = layers.Flatten(name="backend_pool_flat")(pooled)
    h = layers.BatchNormalization(name="backend_pool_bn")(h)
    h = layers.Dropout(0.5, name="backend_pool_dropout")(h)
    h = layers.Dense(200, activation="relu", name="backend_dense")(h)
    penultimate = layers.BatchNormalization(name="backend_penultimate_bn")(h)
    h = layers.Dropout(0.5, name="output_dropout")(penultimate)
    logits = layers.Dense(n_tags, name="output_logits")(h)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    model = keras.Model(patch, {"taggram": taggram, "penultimate": penultimate,
                                "mean_pool": mean_pool, "max_pool": max_pool},
                        name=variant.lower())
    if folder is not None:
        load_checkpoint(model, folder)
    return model


def load_checkpoint(model, folder: str | Path) -> None:
    """Copy musicnn's checkpoint variables (Adam slots skipped) into ``model``'s layers."""
    # deferred: TensorFlow import (see docs/benchmarks.md, Import cost)
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(Path(folder)) + "/")
    shapes = reader.get_variable_to_shape_map()
    for layer_name, scope in _CHECKPOINT_NAMES.items():
        layer = model.get_layer(layer_name)
        is_bn = layer_name.endswith("_bn")
        names = ("gamma", "beta", "moving_mean", "moving_variance") if is_bn else ("kernel", "bias")
        values = []
        for name, current in zip(names, layer.get_weights(), strict=True):
            key = f"{scope}/{name}"
            if key not in shapes:
                raise GenreflowError(f"{folder}: checkpoint has no variable {key!r}")
            if int(np.prod(shapes[key])) != current.size:
                raise GenreflowError(f"{folder}: {key} has shape {shapes[key]}, layer "
                                     f"{layer_name} expects {current.shape}")
            values.append(reader.get_tensor(key).reshape(current.shape))
        layer.set_weights(values)


def block_of(layer_name: str) -> str | None:
    """The block (one of :data:`BLOCKS`) a layer belongs to, from its name prefix."""
    prefix = layer_name.split("_", 1)[0]
    return prefix if prefix in BLOCKS else None


def set_trainable_from(model, block: str | None) -> None:
    """Freeze every layer before ``block`` and unfreeze ``block`` and the ones after it.

    ``None`` freezes the whole network (the default use: a frozen feature extractor).
    """
    if block is not None and block not in BLOCKS:
        raise GenreflowError(f"musicnn trainable_from: expected one of {BLOCKS} or null, "
                             f"got {block!r}")
    first = len(BLOCKS) if block is None else BLOCKS.index(block)
    for layer in model.layers:
        owner = block_of(layer.name)
        if layer.weights and owner is None:
            raise GenreflowError(f"musicnn layer {layer.name!r} belongs to no block of {BLOCKS}")
        layer.trainable = owner is not None and BLOCKS.index(owner) >= first

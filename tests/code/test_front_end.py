"""The shared spectrogram and the frozen forward pass equal their slower references."""

import numpy as np
import pytest

from genreflow.audio.decode import rms
from genreflow.audio.spectrum import log_mel, power_spectrogram
from genreflow.core.config import FeaturesConfig


@pytest.mark.parametrize(("n_fft", "hop", "seconds"), [(2048, 512, 3.0), (512, 256, 1.3),
                                                        (2048, 512, 0.05)])
@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")  # librosa, on the 0.05 s signal
def test_power_spectrogram_is_librosas(n_fft, hop, seconds):
    import librosa

    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal(int(seconds * 22050))).astype(np.float32)
    ref = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True)) ** 2
    got = power_spectrogram(y, n_fft, hop)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.max())


def test_log_mel_is_librosas_in_db():
    import librosa

    cfg = FeaturesConfig()
    t = np.arange(2 * cfg.sample_rate) / cfg.sample_rate
    y = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                         hop_length=cfg.hop_length, n_mels=cfg.n_mels)
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    got = log_mel(y, cfg)
    loud = ref > -70  # below the log-mel kinds' floor, values are floored anyway
    assert got.shape == ref.shape
    # float32 rounding; the cached features are float16 (steps of 0.03 dB at -40 dB)
    assert np.abs(got - ref)[loud].max() < 1e-2


def test_rms():
    assert rms(np.zeros(0, np.float32)) == 0.0
    assert rms(np.full(1000, -0.5, np.float32)) == pytest.approx(0.5)


def test_frozen_forward_equals_the_keras_model():
    import keras

    from genreflow.kinds.segcnn.kind import SegCnnConfig, build_segcnn
    from genreflow.models.forward import forward

    keras.utils.set_random_seed(0)
    model = build_segcnn((16, 20), 3, SegCnnConfig(filters=[4, 8]))
    for layer in model.layers:  # non-trivial batch-norm statistics, so folding them matters
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.2, mean + 0.1, var * 2.0])
    x = np.random.default_rng(1).standard_normal((5, 16, 20, 1)).astype(np.float32)
    ref = model(x, training=False).numpy()
    np.testing.assert_allclose(forward(model, x, frozen=True), ref, atol=1e-5)
    np.testing.assert_allclose(forward(model, x[:2], frozen=True), ref[:2], atol=1e-5)
    np.testing.assert_allclose(forward(model, x, 2), ref, atol=1e-5)  # batches of 2


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_decoded_mono_is_the_mean_of_the_channels(tmp_path, channels):
    """The block-wise mono mix equals numpy's mean over the channels, bit for bit."""
    import soundfile as sf

    from genreflow.audio.decode import decode

    rng = np.random.default_rng(channels)
    y = (0.3 * rng.standard_normal((3 * 44100, channels))).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(path, y, 44100, subtype="FLOAT")
    got, sr = decode(path)
    assert sr == 44100
    np.testing.assert_array_equal(got, y.mean(axis=1))

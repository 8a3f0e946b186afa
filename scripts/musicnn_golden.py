"""Golden outputs of the ORIGINAL musicnn TF1 graph, for tests/model/test_musicnn_port.py.

Dev-only; genreflow never runs this code. It builds the graph with musicnn 0.1.0's own
``musicnn/models.py`` (``tf.compat.v1`` layers, which TF 2.21 only provides through tf-keras),
restores the checkpoint shipped in the wheel, and runs it on 3 s log-mel patches of two clips
of genreflow's own synthetic set (its "rock" and "classical" styles; no GTZAN audio or anything
derived from it goes into the repository). The patches are computed here in float32 with librosa (musicnn's formula without its
float16 cast), stored as float16, and both graphs are fed the same float16-rounded values, so the
test compares the networks, not the front-ends. Run from the repository root:

    pip install --no-deps musicnn==0.1.0                       # the weights (make install does it)
    pip install --no-deps --target /tmp/tfk tf-keras==2.21.0   # kept OUT of the venv: installed
                                                               # there it pulls `tensorflow` over
                                                               # `tensorflow-cpu`
    PYTHONPATH=/tmp/tfk python scripts/musicnn_golden.py

It writes tests/golden/musicnn.npz (~85 KB): ``clip_ids``, ``offsets`` (s), ``patches``
(n, 187, 96) float16, and for each variant ``msd_``/``mtt_`` + ``taggram``, ``penultimate``,
``mean_pool``, ``max_pool`` (float32).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.compat.v1.layers come from tf-keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# (synthetic style, start of the 3 s patch in seconds)
CLIPS = (("rock", 10.0), ("classical", 10.0))
SR, N_FFT, HOP, N_MELS, N_FRAMES = 16000, 512, 256, 96, 187


def log_mel_patch(path: Path, offset: float) -> np.ndarray:
    """musicnn's input, float32 throughout: (187, 96)."""
    import librosa
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=SR, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    spec = np.log10(np.float32(10000) * mel.astype(np.float32) + np.float32(1))
    start = int(round(offset * SR / HOP))
    patch = spec[start:start + N_FRAMES]
    if patch.shape != (N_FRAMES, N_MELS):
        raise SystemExit(f"{path}: too short for a patch at {offset} s")
    return patch


def run_tf1(variant: str, patches: np.ndarray) -> dict[str, np.ndarray]:
    """The original graph of ``variant`` on ``patches``, in inference mode."""
    import importlib.util

    import tensorflow as tf
    try:
        tf.compat.v1.layers.conv2d  # noqa: B018
    except AttributeError:
        raise SystemExit("tf.compat.v1.layers needs tf-keras: see this script's docstring") from None
    from musicnn import models  # the package's TF1 code; dev-only

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        logits, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(
            x, is_training, variant, 50)
        taggram = tf.nn.sigmoid(logits)
    folder = Path(next(iter(importlib.util.find_spec("musicnn").submodule_search_locations)))
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, str(folder / variant) + "/")
        out = sess.run([taggram, penultimate, mean_pool, max_pool],
                       feed_dict={x: patches, is_training: False})
    return dict(zip(("taggram", "penultimate", "mean_pool", "max_pool"),
                    (np.asarray(o, dtype=np.float32) for o in out), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/golden/musicnn.npz"))
    args = parser.parse_args()

    import tempfile

    from genreflow.data import synth

    with tempfile.TemporaryDirectory() as tmp:
        synth(Path(tmp) / "data", clips_per_genre=1, seconds=14.0,
              genres=[g for g, _ in CLIPS], seed=0, log=lambda m: None)
        stored = np.stack([log_mel_patch(next((Path(tmp) / "data" / g).iterdir()), off)
                           for g, off in CLIPS]).astype(np.float16)
    result = {"clip_ids": np.array([f"synthetic-{g}" for g, _ in CLIPS]),
              "offsets": np.array([o for _, o in CLIPS], dtype=np.float32), "patches": stored}
    for variant in ("MSD_musicnn", "MTT_musicnn"):
        for name, value in run_tf1(variant, stored.astype(np.float32)).items():
            result[f"{variant[:3].lower()}_{name}"] = value
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **result)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)", file=sys.stderr)


if __name__ == "__main__":
    main()

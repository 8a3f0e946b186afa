"""Benchmark (not a test): where one served request's time goes, stage by stage, in process.

    python scripts/serve_profile.py --model /path/to/mlflow/model/folder \
        --clip ../shared/gtzan/blues/blues.00000.ogg --repeat 20

Times, per request of one clip (median over ``--repeat``): the JSON body built and parsed
the way MLflow's scoring server parses it, base64 decoding, audio decoding, resampling
(the clip is also re-encoded as a 44.1 kHz stereo WAV to time that), the log-mel
spectrogram, the model's forward pass, decoding and the front-end streamed block by block in
one thread and with the decoding in a second thread (what a lone served request does), and the
whole pyfunc ``predict`` call.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import time
from pathlib import Path

from genreflow.core.tfenv import set_tf_environment

set_tf_environment()


def timed(fn, repeat: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True, help="local MLflow model folder or model URI")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    import mlflow.pyfunc
    import numpy as np
    import soundfile as sf
    from mlflow.pyfunc import scoring_server

    from genreflow.audio.decode import decode, resample
    from genreflow.core.quiet import import_tensorflow

    import_tensorflow()
    model = mlflow.pyfunc.load_model(args.model)
    py = model.unwrap_python_model()
    pred = py.predictor
    raw = Path(args.clip).read_bytes()
    body = json.dumps({"dataframe_split": {"columns": ["audio"],
                                           "data": [[base64.b64encode(raw).decode()]]}})
    schema = model.metadata.get_input_schema()
    n = args.repeat
    rows: dict[str, float] = {}
    rows["json body -> DataFrame (MLflow's parser)"], df = timed(
        lambda: scoring_server._parse_json_data(body, model.metadata, schema).data, n)
    rows["base64 decode"], _ = timed(lambda: base64.b64decode(df["audio"][0], validate=True), n)
    rows["decode (libsndfile)"], (y, sr) = timed(lambda: decode(raw), n)
    stereo = io.BytesIO()
    y44 = resample(y, sr, 44100)
    sf.write(stereo, np.stack([y44, y44], 1), 44100, format="WAV", subtype="PCM_16")
    wav44 = stereo.getvalue()
    rows["decode 44.1 kHz stereo WAV"], (y2, sr2) = timed(lambda: decode(wav44), n)
    rows["resample 44.1 -> 22.05 kHz (soxr HQ)"], _ = timed(
        lambda: resample(y2, sr2, pred.sample_rate), n)
    y = resample(y, sr, pred.sample_rate) if sr != pred.sample_rate else y
    rows["probs_from_audio (spectrogram + model)"], _ = timed(lambda: pred.probs_from_audio(y), n)
    fe = pred.front_end
    rows["  front-end: the kind's windows (log-mel...)"], x = timed(
        lambda: pred.kind.audio_windows(y, fe), n)
    from genreflow.models.forward import forward

    rows[f"  model forward ({len(x)} windows)"], _ = timed(lambda: forward(pred.model, x, frozen=True), n)
    from genreflow.audio.contract import audio_blocks

    rows["decode + front-end + model, one thread"], _ = timed(
        lambda: pred.probs_from_blocks(audio_blocks(raw, py.audio, pred.sample_rate)), n)
    rows["the same, decode in a second thread (served)"], _ = timed(
        lambda: pred.probs_from_source(raw, py.audio), n)
    rows["pyfunc predict (all of the above after JSON)"], _ = timed(lambda: model.predict(df), n)
    width = max(map(len, rows))
    print(f"{args.clip}: {len(raw) / 1024:.0f} KiB, {len(y) / pred.sample_rate:.1f} s; "
          f"median of {n} runs")
    for name, ms in rows.items():
        print(f"{name:<{width}}  {ms:8.1f} ms")


if __name__ == "__main__":
    main()

"""Per-patch embeddings of a frozen pretrained network, for every clip of the split manifest.

The ``embed`` stage writes them to ``artifacts/embeddings/<kind>/`` (``embeddings.npz`` +
``meta.json``). Each clip's embeddings are also kept in a per-clip cache keyed on the
clip's bytes and the kind's cache key, which covers the code that computes the embeddings
and the weights (``GENREFLOW_CACHE``, default
``~/.cache/genreflow``), so another split or seed of the same audio costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from genreflow.audio.decode import decode
from genreflow.audio.refusal import AudioError
from genreflow.core.cachekey import files_digest
from genreflow.core.errors import GenreflowError
from genreflow.core.parallel import parallel_map
from genreflow.core.safe_text import printable
from genreflow.models.forward import mean_by_track
from genreflow.models.splits import SPLITS, split_digest

EMBEDDINGS_FILE = "embeddings.npz"
META_FILE = "meta.json"


def cache_root() -> Path:
    return Path(os.environ.get("GENREFLOW_CACHE") or Path.home() / ".cache" / "genreflow")


def _patches_job(job: tuple) -> tuple[np.ndarray, np.ndarray | None] | str:
    """A clip's patches, and those of its augmented copy when ``job`` has a signal transform."""
    path, rate, patches_of, *transform = job
    try:
        y, _ = decode(path, rate)
        copy = patches_of(transform[0](y)).astype(np.float16) if transform else None
        return patches_of(y).astype(np.float16), copy
    except (AudioError, GenreflowError) as exc:
        return str(exc)
    except Exception as exc:  # a clip must never stop the stage
        return f"{path}: {type(exc).__name__}: {exc}"


def _cache_dir(cache_key: str, output: str) -> Path:
    """The folder of one network output's per-clip embeddings under the key ``cache_key``
    (:func:`genreflow.core.cachekey.cache_key`)."""
    ident = json.dumps({"key": cache_key, "output": output}, sort_keys=True)
    return cache_root() / hashlib.md5(ident.encode()).hexdigest()[:16]


#: One extra copy of a training clip: ``augment(clip digest)`` gives ``(tag, transform of
#: the clip's signal)`` or ``None``; decided by the clip's bytes, so the cache is reused.
Augment = Callable[[str], "tuple[str, Callable[[np.ndarray], np.ndarray]] | None"]


def _encode(net, items: list[tuple[dict[str, Path], np.ndarray]], batch: int = 80) -> None:
    """Run ``net`` over every item's patches (several clips per call, one compiled graph)
    and save each output to its item's cache files (``{output name: path}``)."""
    # deferred: TensorFlow import (see docs/benchmarks.md, Import cost)
    import tensorflow as tf

    call = tf.function(lambda x: net(x, training=False),
                       input_signature=[tf.TensorSpec([None, *net.input_shape[1:]], tf.float32)])

    group: list[tuple[dict[str, Path], np.ndarray]] = []
    bar = tqdm(total=len(items), desc="embeddings", unit="clip")

    def flush() -> None:
        x = np.concatenate([p for _, p in group]).astype(np.float32)
        outs = {k: np.asarray(v, np.float32) for k, v in call(x).items()}
        start = 0
        for files, p in group:
            for name, path in files.items():
                np.save(path, outs[name][start:start + len(p)])
            start += len(p)
        bar.update(len(group))
        group.clear()

    for files, p in items:
        group.append((files, p))
        if sum(len(q) for _, q in group) >= batch:
            flush()
    if group:
        flush()
    bar.close()


def embed_manifest(manifest: pd.DataFrame, out_dir: Path, *, key: dict, cache_key: str,
                   output: str, patches_of: Callable, sample_rate: int,
                   encoder: Callable[[], object], data_source: str, workers: int,
                   augment: Augment | None = None, also: tuple[str, ...] = (),
                   log: Callable[[str], None] = print) -> dict:
    """Embed every clip of ``manifest`` (path, clip_id, genre, split); write ``out_dir``.

    ``encoder()`` gives a network whose outputs are a dict of embeddings per patch; every
    one of them is cached (one network pass serves every layer), ``output`` is written (and
    the outputs named in ``also``, per patch, as ``also_<name>``).
    Training clips chosen by ``augment`` also get an augmented copy (``x_aug``).
    """
    root = _cache_dir(cache_key, output)
    root.mkdir(parents=True, exist_ok=True)
    digests = [files_digest([p]) for p in manifest["path"]]
    is_train = (manifest["split"] == "train").to_numpy()
    extra = {i: augment(d) for i, d in enumerate(digests) if is_train[i] and augment}
    extra = {i: a for i, a in extra.items() if a is not None}

    def stem(i: int, tag: str | None) -> str:
        return digests[i] if tag is None else f"{digests[i]}-{tag}"

    wanted = [(i, None) for i in range(len(digests))] + [(i, a[0]) for i, a in extra.items()]
    todo = sorted({i for i, t in wanted if not (root / f"{stem(i, t)}.npy").exists()})
    log(f"embeddings: {len(manifest) - len(todo)} of {len(manifest)} clips cached in {root}"
        + (f" ({len(extra)} training clips with an augmented copy)" if extra else ""))
    failed = []
    if todo:
        t0 = time.perf_counter()
        jobs = [(manifest["path"].iloc[i], sample_rate, patches_of,
                 *([extra[i][1]] if i in extra else [])) for i in todo]
        spectra = parallel_map(_patches_job, jobs, workers, desc="front-end", chunksize=2)
        net = encoder()
        items = []
        for i, spec in zip(todo, spectra, strict=True):
            if isinstance(spec, str):
                failed.append({"clip_id": manifest["clip_id"].iloc[i], "reason": spec})
                log(printable(f"skipped {manifest['clip_id'].iloc[i]}: {spec}"))
                continue
            variants = [(None, spec[0])] + ([(extra[i][0], spec[1])] if i in extra else [])
            for tag, p in variants:
                files = {}
                for name in net.output:
                    folder = _cache_dir(cache_key, name)
                    folder.mkdir(parents=True, exist_ok=True)
                    files[name] = folder / f"{stem(i, tag)}.npy"
                items.append((files, p))
        _encode(net, items)
        log(f"embeddings: {len(todo)} clips in {time.perf_counter() - t0:.1f} s")
    bad = {f["clip_id"] for f in failed}
    rows = manifest[~manifest["clip_id"].isin(bad)].reset_index(drop=True)
    keep = [i for i, c in enumerate(manifest["clip_id"]) if c not in bad]
    per_clip = [np.load(root / f"{stem(i, None)}.npy") for i in keep]
    extras = {f"also_{name}": np.concatenate(
        [np.load(_cache_dir(cache_key, name) / f"{stem(i, None)}.npy") for i in keep]
        or [np.zeros((0, 1), np.float32)]) for name in also}
    aug_ids = [manifest["clip_id"].iloc[i] for i in keep if i in extra]
    per_aug = [np.load(root / f"{stem(i, extra[i][0])}.npy") for i in keep if i in extra]
    out_dir.mkdir(parents=True, exist_ok=True)

    def stack(arrays: list[np.ndarray]) -> np.ndarray:
        width = per_clip[0].shape[1] if per_clip else 1
        return np.concatenate(arrays) if arrays else np.zeros((0, width), np.float32)

    np.savez(out_dir / EMBEDDINGS_FILE, x=stack(per_clip),
             counts=np.array([len(e) for e in per_clip], np.int64),
             x_aug=stack(per_aug), counts_aug=np.array([len(e) for e in per_aug], np.int64),
             **extras)
    meta = {"key": key, "data_source": data_source, "split_digest": split_digest(manifest),
            "classes": sorted(manifest["genre"].unique()), "failed": failed,
            "clips": rows[["clip_id", "genre", "split", "path"]].to_dict("list"),
            "augmented": aug_ids}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1))
    return meta


@dataclass
class PatchEmbeddings:
    """What training reads: per-split patch embeddings, tracks, labels."""

    key: dict
    classes: list[str]
    data_source: str
    split_digest: str
    ids: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    counts: dict[str, list[int]]
    x: dict[str, np.ndarray]
    paths: dict[str, list[str]]
    #: augmented copies of some training tracks: patch embeddings, patches per track, labels
    aug_x: np.ndarray | None = None
    aug_counts: list[int] | None = None
    aug_y: np.ndarray | None = None
    #: other outputs of the network per patch (``embed_manifest``'s ``also``): name -> split -> array
    also: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def aug_track_means(self) -> np.ndarray:
        if not self.aug_counts:
            return np.zeros((0, self.x["train"].shape[1]), np.float32)
        return mean_by_track(self.aug_x, self.aug_counts)

    def track_means(self, split: str) -> np.ndarray:
        """One mean embedding per track."""
        if not len(self.ids[split]):
            return np.zeros((0, self.x[split].shape[1]), np.float32)
        return mean_by_track(self.x[split], self.counts[split])

    def patches_from_audio(self, patches_of: Callable, sample_rate: int,
                           log: Callable[[str], None]) -> dict[str, list[np.ndarray]]:
        """The network's input patches of every track, decoded again (for fine-tuning)."""
        out = {}
        for s in SPLITS:
            res = parallel_map(_patches_job, [(p, sample_rate, patches_of) for p in self.paths[s]],
                               2, desc=f"patches {s}")
            bad = [r for r in res if isinstance(r, str)]
            if bad:
                raise GenreflowError(f"fine-tuning: {len(bad)} clips no longer decode: {bad[0]}")
            out[s] = [r[0].astype(np.float32) for r in res]
        return out


def load_embeddings(folder: Path) -> PatchEmbeddings:
    folder = Path(folder)
    if not (folder / META_FILE).exists():
        raise GenreflowError(f"{folder}: no embeddings; run `dvc repro embed` "
                             "(or `genreflow embed`) first")
    meta = json.loads((folder / META_FILE).read_text())
    with np.load(folder / EMBEDDINGS_FILE) as z:
        x_all, counts_all = z["x"], z["counts"]
        x_aug, counts_aug = z["x_aug"], [int(c) for c in z["counts_aug"]]
        also_all = {k[len("also_"):]: z[k] for k in z.files if k.startswith("also_")}
    clips = pd.DataFrame(meta["clips"])
    starts = np.concatenate([[0], np.cumsum(counts_all)])
    index = {g: i for i, g in enumerate(meta["classes"])}
    ids, y, counts, x, paths = {}, {}, {}, {}, {}
    also = {name: {} for name in also_all}

    def rows_of(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return (np.concatenate([a[starts[r]:starts[r + 1]] for r in rows]) if len(rows)
                else np.zeros((0, a.shape[1]), np.float32))

    for s in SPLITS:
        rows = np.flatnonzero(clips["split"].to_numpy() == s)
        ids[s] = clips["clip_id"].to_numpy()[rows]
        y[s] = np.array([index[g] for g in clips["genre"].to_numpy()[rows]], np.int64)
        counts[s] = [int(counts_all[r]) for r in rows]
        x[s] = rows_of(x_all, rows)
        for name, a in also_all.items():
            also[name][s] = rows_of(a, rows)
        paths[s] = list(clips["path"].to_numpy()[rows])
    genre_of = dict(zip(clips["clip_id"], clips["genre"], strict=True))
    aug_y = np.array([index[genre_of[c]] for c in meta.get("augmented", [])], np.int64)
    return PatchEmbeddings(key=meta["key"], classes=meta["classes"],
                           data_source=meta["data_source"], split_digest=meta["split_digest"],
                           ids=ids, y=y, counts=counts, x=x, paths=paths,
                           aug_x=x_aug, aug_counts=counts_aug, aug_y=aug_y, also=also)

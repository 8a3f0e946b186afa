"""Per-patch embeddings of a frozen pretrained network, for every clip of the split manifest.

The ``embed`` stage writes them to ``artifacts/embeddings/<kind>/`` (``embeddings.npz`` +
``meta.json``). Each clip's embeddings are also kept in a per-clip cache keyed on the
clip's bytes and everything the embedding depends on (``GENREFLOW_CACHE``, default
``~/.cache/genreflow``), so another split or seed of the same audio costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genreflow.errors import GenreflowError
from genreflow.split import SPLITS, split_digest

EMBEDDINGS_FILE = "embeddings.npz"
META_FILE = "meta.json"


def cache_root() -> Path:
    return Path(os.environ.get("GENREFLOW_CACHE") or Path.home() / ".cache" / "genreflow")


def file_md5(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _patches_job(job: tuple[str, int, Callable]) -> np.ndarray | str:
    from genreflow.audio import AudioError, decode

    path, rate, patches_of = job
    try:
        y, _ = decode(path, rate)
        return patches_of(y).astype(np.float16)
    except (AudioError, GenreflowError) as exc:
        return str(exc)
    except Exception as exc:  # a clip must never stop the stage
        return f"{path}: {type(exc).__name__}: {exc}"


def _cache_dir(cache_key: dict, output: str) -> Path:
    ident = json.dumps({**cache_key, "output": output}, sort_keys=True)
    return cache_root() / hashlib.md5(ident.encode()).hexdigest()[:16]


def embed_manifest(manifest: pd.DataFrame, out_dir: Path, *, key: dict, cache_key: dict,
                   output: str, patches_of: Callable, sample_rate: int,
                   encoder: Callable[[], object], data_source: str, workers: int,
                   log: Callable[[str], None] = print) -> dict:
    """Embed every clip of ``manifest`` (path, clip_id, genre, split); write ``out_dir``.

    ``encoder()`` gives a network whose outputs are a dict of embeddings per patch; every
    one of them is cached (one network pass serves every layer), ``output`` is written.
    """
    from genreflow.parallel import parallel_map

    root = _cache_dir(cache_key, output)
    root.mkdir(parents=True, exist_ok=True)
    digests = [file_md5(p) for p in manifest["path"]]
    todo = [i for i, d in enumerate(digests) if not (root / f"{d}.npy").exists()]
    log(f"embeddings: {len(manifest) - len(todo)} of {len(manifest)} clips cached in {root}")
    failed = []
    if todo:
        t0 = time.perf_counter()
        jobs = [(manifest["path"].iloc[i], sample_rate, patches_of) for i in todo]
        spectra = parallel_map(_patches_job, jobs, workers, desc="front-end", chunksize=2)
        net = encoder()
        from tqdm import tqdm

        for i, spec in zip(todo, tqdm(spectra, desc="embeddings", unit="clip"), strict=True):
            if isinstance(spec, str):
                failed.append({"clip_id": manifest["clip_id"].iloc[i], "reason": spec})
                log(f"skipped {manifest['clip_id'].iloc[i]}: {spec}")
                continue
            outs = net(spec.astype(np.float32), training=False)
            for name, emb in outs.items():
                folder = _cache_dir(cache_key, name)
                folder.mkdir(parents=True, exist_ok=True)
                np.save(folder / f"{digests[i]}.npy", np.asarray(emb, np.float32))
        log(f"embeddings: {len(todo)} clips in {time.perf_counter() - t0:.1f} s")
    bad = {f["clip_id"] for f in failed}
    rows = manifest[~manifest["clip_id"].isin(bad)].reset_index(drop=True)
    keep = [d for d, c in zip(digests, manifest["clip_id"], strict=True) if c not in bad]
    per_clip = [np.load(root / f"{d}.npy") for d in keep]
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / EMBEDDINGS_FILE,
             x=np.concatenate(per_clip) if per_clip else np.zeros((0, 1), np.float32),
             counts=np.array([len(e) for e in per_clip], np.int64))
    meta = {"key": key, "data_source": data_source, "split_digest": split_digest(manifest),
            "classes": sorted(manifest["genre"].unique()), "failed": failed,
            "clips": rows[["clip_id", "genre", "split", "path"]].to_dict("list")}
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

    def track_means(self, split: str) -> np.ndarray:
        """One mean embedding per track."""
        from genreflow.inference import mean_by_track

        if not len(self.ids[split]):
            return np.zeros((0, self.x[split].shape[1]), np.float32)
        return mean_by_track(self.x[split], self.counts[split])

    def patches_from_audio(self, patches_of: Callable, sample_rate: int,
                           log: Callable[[str], None]) -> dict[str, list[np.ndarray]]:
        """The network's input patches of every track, decoded again (for fine-tuning)."""
        from genreflow.parallel import parallel_map

        out = {}
        for s in SPLITS:
            res = parallel_map(_patches_job, [(p, sample_rate, patches_of) for p in self.paths[s]],
                               2, desc=f"patches {s}")
            bad = [r for r in res if isinstance(r, str)]
            if bad:
                raise GenreflowError(f"fine-tuning: {len(bad)} clips no longer decode: {bad[0]}")
            out[s] = [r.astype(np.float32) for r in res]
        return out


def load_embeddings(folder: Path) -> PatchEmbeddings:
    folder = Path(folder)
    if not (folder / META_FILE).exists():
        raise GenreflowError(f"{folder}: no embeddings; run `dvc repro embed` "
                             "(or `genreflow embed`) first")
    meta = json.loads((folder / META_FILE).read_text())
    with np.load(folder / EMBEDDINGS_FILE) as z:
        x_all, counts_all = z["x"], z["counts"]
    clips = pd.DataFrame(meta["clips"])
    starts = np.concatenate([[0], np.cumsum(counts_all)])
    index = {g: i for i, g in enumerate(meta["classes"])}
    ids, y, counts, x, paths = {}, {}, {}, {}, {}
    for s in SPLITS:
        rows = np.flatnonzero(clips["split"].to_numpy() == s)
        ids[s] = clips["clip_id"].to_numpy()[rows]
        y[s] = np.array([index[g] for g in clips["genre"].to_numpy()[rows]], np.int64)
        counts[s] = [int(counts_all[r]) for r in rows]
        x[s] = (np.concatenate([x_all[starts[r]:starts[r + 1]] for r in rows]) if len(rows)
                else np.zeros((0, x_all.shape[1]), np.float32))
        paths[s] = list(clips["path"].to_numpy()[rows])
    return PatchEmbeddings(key=meta["key"], classes=meta["classes"],
                           data_source=meta["data_source"], split_digest=meta["split_digest"],
                           ids=ids, y=y, counts=counts, x=x, paths=paths)

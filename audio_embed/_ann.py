"""The approximate nearest-neighbour part of an :class:`~audio_embed.index.EmbeddingIndex`.

A thin wrapper over FAISS, inner product on L2-normalised vectors (= cosine),
vectors stored as float16 (scalar quantiser ``QT_fp16``):

* below ``flat_below`` vectors, a flat index: exact search, nothing to train;
* from there on, an inverted-file index (IVF) with ``lists_per_sqrt * √n``
  lists, trained by k-means on a sample of the vectors; ``nprobe`` lists are
  searched per query. Vectors added later go to the lists trained before; when
  the index has grown ``retrain_growth`` times past the size it was trained on,
  the owner rebuilds it (:meth:`AnnIndex.needs_rebuild`).

Chosen over USearch (HNSW) by measurement: at the same recall, building the
IVF index was 5-10x faster on this project's 2-core machine (see the README
section "Search by example" and ``benchmarks/ann_choice.py``). FAISS writes
its own binary format (no pickle); a file is checked after reading (type,
dimension, metric, count) and FAISS raises on a damaged one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from audio_embed.errors import IndexFileError

__all__ = ["ANN_LIBRARY", "DEFAULT_ANN_PARAMS", "AnnIndex"]

ANN_LIBRARY = "faiss"
DEFAULT_ANN_PARAMS: dict[str, int] = {
    "flat_below": 25_000,
    "lists_per_sqrt": 4,
    "nprobe": 64,
    "retrain_growth": 4,
    "train_per_list": 40,
}
_ADD_CHUNK = 50_000


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "Searching an index needs FAISS: pip install 'audio_embed[search]' (faiss-cpu)."
        ) from exc
    return faiss


class AnnIndex:
    """A FAISS index over unit vectors; keys are the index's row numbers (0, 1, …)."""

    def __init__(self, index: Any, params: dict[str, int], trained_on: int) -> None:
        self._index = index
        self.params = params
        self.trained_on = trained_on

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf"``."""
        return "ivf" if hasattr(self._index, "nprobe") else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, dim: int, vectors: np.ndarray, params: dict[str, int] | None = None) -> AnnIndex:
        """An index over ``vectors`` (keys 0…n-1), flat or IVF by their number."""
        faiss = _faiss()
        p = {**DEFAULT_ANN_PARAMS, **(params or {})}
        n = len(vectors)
        sq = faiss.ScalarQuantizer.QT_fp16
        index: Any
        if n < p["flat_below"]:
            index = faiss.IndexScalarQuantizer(dim, sq, faiss.METRIC_INNER_PRODUCT)
            index.train(np.zeros((1, dim), np.float32))  # fp16 needs no statistics
        else:
            nlist = max(1, int(p["lists_per_sqrt"] * math.sqrt(n)))
            quantizer: Any = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, sq, faiss.METRIC_INNER_PRODUCT
            )
            rng = np.random.default_rng(0)
            take = min(n, p["train_per_list"] * nlist)
            sample = np.sort(rng.choice(n, take, replace=False))
            index.train(np.asarray(vectors[sample], dtype=np.float32))  # keeps quantizer alive
        ann = cls(index, p, n)
        ann.add(0, vectors)
        return ann

    def needs_rebuild(self, n_total: int) -> bool:
        """Whether an index of ``n_total`` vectors should be built anew rather than
        appended to (a flat index grown past ``flat_below``, or an IVF index grown
        ``retrain_growth`` times past its training size)."""
        if self.kind == "flat":
            return n_total >= self.params["flat_below"]
        return n_total > self.params["retrain_growth"] * max(self.trained_on, 1)

    def add(self, first_key: int, vectors: np.ndarray) -> None:
        """Append ``vectors`` under the keys ``first_key, first_key + 1, …``."""
        if first_key != len(self):
            raise ValueError(f"keys must continue at {len(self)}, got {first_key}")
        for lo in range(0, len(vectors), _ADD_CHUNK):
            self._index.add(np.asarray(vectors[lo : lo + _ADD_CHUNK], dtype=np.float32))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys (int64) and inner products (float32) of the ``k`` best rows, best first."""
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.kind == "ivf":
            self._index.nprobe = min(self.params["nprobe"], self._index.nlist)
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        scores, keys = self._index.search(q, k)
        ok = keys[0] >= 0
        return keys[0][ok].astype(np.int64), scores[0][ok].astype(np.float32)

    def save(self, path: Path) -> None:
        _faiss().write_index(self._index, str(path))

    @classmethod
    def load(
        cls, path: Path, dim: int, count: int, params: dict[str, int], trained_on: int
    ) -> AnnIndex:
        """Read a saved index after checking that it is one, of ``dim`` and ``count``."""
        faiss = _faiss()
        index: Any
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, OSError, ValueError) as exc:
            raise IndexFileError(
                f"{path}: the nearest-neighbour index is damaged ({str(exc).splitlines()[0]})."
            ) from exc
        if (
            not isinstance(index, faiss.IndexScalarQuantizer | faiss.IndexIVFScalarQuantizer)
            or index.d != dim
            or index.ntotal != count
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            raise IndexFileError(
                f"{path}: the nearest-neighbour index does not match the archive "
                f"({type(index).__name__}, {index.ntotal} vectors of {index.d} dims, expected "
                f"{count} of {dim}); the archive is damaged."
            )
        return cls(index, {**DEFAULT_ANN_PARAMS, **params}, trained_on)

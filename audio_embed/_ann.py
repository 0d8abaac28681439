"""The approximate nearest-neighbour part of an :class:`~audio_embed.index.EmbeddingIndex`.

A thin wrapper over USearch (HNSW graph, vectors stored as float16, inner
product on L2-normalised vectors = cosine). USearch writes its own binary
format (no pickle); a file is checked with ``Index.metadata`` (dimension,
metric, count) before it is loaded. Chosen over FAISS by measurement (see the
README section "Search by example" and ``benchmarks/ann_choice.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from audio_embed.errors import IndexFileError

__all__ = ["ANN_LIBRARY", "DEFAULT_ANN_PARAMS", "AnnIndex"]

ANN_LIBRARY = "usearch"
#: HNSW settings: ``connectivity`` (M), ``expansion_add`` (efConstruction),
#: ``expansion_search`` (ef; raised to the number of results asked for).
DEFAULT_ANN_PARAMS: dict[str, int] = {
    "connectivity": 16,
    "expansion_add": 128,
    "expansion_search": 64,
}
_ADD_CHUNK = 50_000


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class AnnIndex:
    """An HNSW graph over unit vectors; keys are the index's row numbers."""

    def __init__(self, dim: int, params: dict[str, int] | None = None) -> None:
        from usearch.index import Index

        self.dim = int(dim)
        self.params = {**DEFAULT_ANN_PARAMS, **(params or {})}
        self._index: Any = Index(
            ndim=self.dim,
            metric="ip",
            dtype="f16",
            connectivity=self.params["connectivity"],
            expansion_add=self.params["expansion_add"],
            expansion_search=self.params["expansion_search"],
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, first_key: int, vectors: np.ndarray, threads: int | None = None) -> None:
        """Add ``vectors`` under the keys ``first_key, first_key + 1, …``."""
        for lo in range(0, len(vectors), _ADD_CHUNK):
            chunk = np.ascontiguousarray(vectors[lo : lo + _ADD_CHUNK])
            keys = np.arange(first_key + lo, first_key + lo + len(chunk), dtype=np.uint64)
            self._index.add(keys, chunk, threads=threads or _threads())

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys (int64) and inner products (float32) of the ``k`` best rows, best first."""
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        index = self._index
        old = index.expansion_search
        index.expansion_search = max(old, k)
        try:
            found = index.search(np.asarray(query, dtype=np.float32), k, threads=1)
        finally:
            index.expansion_search = old
        keys = np.asarray(found.keys, dtype=np.int64)
        scores = (1.0 - np.asarray(found.distances, dtype=np.float64)).astype(np.float32)
        return keys, scores

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    @classmethod
    def load(
        cls, path: Path, dim: int, count: int, params: dict[str, int], *, view: bool
    ) -> AnnIndex:
        """Load a saved graph after checking that it is one, of ``dim`` and ``count``.

        ``view=True`` memory-maps the file (fast, read-only).
        """
        from usearch.index import Index

        try:
            meta = Index.metadata(str(path))
        except (ValueError, RuntimeError, OSError) as exc:
            raise IndexFileError(f"{path}: not a readable USearch graph ({exc}).") from exc
        if meta is None:
            raise IndexFileError(f"{path}: not a USearch graph.")
        if (
            int(meta["dimensions"]) != dim
            or int(meta["count_present"]) != count
            or getattr(meta["kind_metric"], "name", None) != "IP"
        ):
            raise IndexFileError(
                f"{path}: the nearest-neighbour graph does not match the index "
                f"({meta['count_present']} vectors of {meta['dimensions']} dims, expected "
                f"{count} of {dim}); the archive is damaged."
            )
        ann = cls(dim, params)
        try:
            if view:
                ann._index.view(str(path))
            else:
                ann._index.load(str(path))
        except (ValueError, RuntimeError, OSError) as exc:
            raise IndexFileError(
                f"{path}: the nearest-neighbour graph is damaged ({exc})."
            ) from exc
        if len(ann) != count:
            raise IndexFileError(f"{path}: the nearest-neighbour graph is damaged.")
        return ann

"""Synthetic vectors for the search benchmarks: clustered like real window embeddings.

Real sliding-window embeddings are not uniform noise: neighbouring windows of a
recording and repeated sounds form tight groups. The set here is a mixture of
``n_clusters`` Gaussian clusters (centres N(0, 1), spread ``spread``), made in
chunks so that 10⁶ × 768 never needs more than the float16 result in memory.
Queries are stored points moved by a little noise (a new example of a known
sound). Ground truth is exact inner-product search over L2-normalised vectors
(cosine), in float32, in chunks.
"""

from __future__ import annotations

import numpy as np


def clustered(
    n: int, dim: int, *, n_clusters: int = 1000, spread: float = 0.6, seed: int = 0
) -> np.ndarray:
    """``n`` × ``dim`` float16 vectors, L2-normalised (cosine = inner product)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float16)
    step = 50_000
    for lo in range(0, n, step):
        m = min(step, n - lo)
        x = centres[rng.integers(0, n_clusters, m)]
        x += spread * rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo : lo + m] = x
    return out


def queries(data: np.ndarray, n: int, *, noise: float = 0.3, seed: int = 1) -> np.ndarray:
    """``n`` float32 queries near stored points, L2-normalised."""
    rng = np.random.default_rng(seed)
    q = data[rng.integers(0, len(data), n)].astype(np.float32)
    q += noise / np.sqrt(data.shape[1]) * rng.standard_normal(q.shape).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q


def exact_top(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the ``k`` highest inner products for each query (float32, chunked)."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    step = 100_000
    for lo in range(0, len(data), step):
        s = q @ data[lo : lo + step].astype(np.float32).T
        i = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(s, i, 1)], axis=1)
        best_i = np.concatenate([best_i, i + lo], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s = np.take_along_axis(best_s, keep, 1)
        best_i = np.take_along_axis(best_i, keep, 1)
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the true top ``k`` among the ``k`` found, over queries."""
    hits = [
        len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) / k

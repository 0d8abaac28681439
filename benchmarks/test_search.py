"""Search by example at scale: ANN latency and recall@10 against exact search, float16
against float32 storage, and index build throughput from cached embeddings.

    .venv/bin/pytest benchmarks/test_search.py --benchmark-enable -s [--search-sizes 100000,1000000]

Vectors: benchmarks/search_data.py (clustered, 768-d; the "hard" setting of
benchmarks/ann_choice.py: spread 1.0, queries with noise 1.0). The built index
is kept in ``.benchmarks/ann-<n>.faiss`` so a rerun measures search only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import record
from search_data import clustered, exact_top, queries, recall_at

from audio_embed._ann import AnnIndex

DIM = 768


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "n_vectors" in metafunc.fixturenames:
        sizes = str(metafunc.config.getoption("--search-sizes"))
        metafunc.parametrize("n_vectors", [int(float(s)) for s in sizes.split(",") if s])


def _data(n: int) -> np.ndarray:
    return clustered(n, DIM, spread=1.0, n_clusters=max(10, n // 1000))


def _graph(n: int, data: np.ndarray) -> tuple[AnnIndex, float | None]:
    path = Path(".benchmarks") / f"ann-{n}.faiss"
    if path.exists():
        return AnnIndex.load(path, DIM, n, {}, trained_on=n), None
    t = time.perf_counter()
    ann = AnnIndex.build(DIM, data)
    build = time.perf_counter() - t
    path.parent.mkdir(exist_ok=True)
    ann.save(path)
    return ann, build


def test_ann_search(n_vectors: int, benchmark: Any) -> None:
    """One query, top 10: the index's ANN (FAISS IVF, fp16) against exact float32 search."""
    data = _data(n_vectors)
    q = queries(data, 200, noise=1.0)
    truth = exact_top(data, q, 10)
    ann, build = _graph(n_vectors, data)
    found = np.stack([ann.search(v, 10)[0] for v in q])
    it = iter(range(10**9))
    benchmark.pedantic(lambda: ann.search(q[next(it) % len(q)], 10), rounds=200, iterations=1)
    t = time.perf_counter()
    exact_top(data, q[:10], 10)
    exact_ms = (time.perf_counter() - t) / 10 * 1000
    row = {
        "n": n_vectors,
        "recall@10": recall_at(found, truth),
        "ann_ms": benchmark.stats.stats.median * 1000 if benchmark.stats else None,
        "exact_ms (numpy f32, batch of 10)": exact_ms,
        "build_s": build if build is not None else "cached",
    }
    record("ANN search, 768-d", row)


def test_float16_storage_vs_float32() -> None:
    """Exact top 10 over vectors stored as float16 against the float32 originals."""
    n = 100_000
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n // 1000, DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, DIM), np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, 200)] + rng.standard_normal((200, DIM), np.float32) / np.sqrt(DIM)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = exact_top(x, q, 10)
    x16 = x.astype(np.float16)
    found = exact_top(x16, q, 10)
    err = np.abs(q @ x16[:20000].astype(np.float32).T - q @ x[:20000].T).max()
    record(
        "float16 vs float32 storage (exact search, 1e5 x 768)",
        {"recall@10": recall_at(found, truth), "max |cosine difference|": float(err)},
    )


@pytest.mark.parametrize("n_files", [12, 60])
def test_index_build_from_cached_embeddings(n_files: int, tmp_path: Path, benchmark: Any) -> None:
    """EmbeddingIndex.add when every file's embeddings are in the cache (no decoding):
    normalise, float16, ANN, write. ``n_files`` files of 10 minutes, 768-d, 8 s / 1 s
    (12 files: 7 116 windows, a flat index; 60 files: 35 580 windows, IVF)."""
    import soundfile as sf
    from models import MODELS

    from audio_embed.cache import CachedEmbeddings, EmbeddingCache
    from audio_embed.index import EmbeddingIndex
    from audio_embed.scanner import Scanner
    from audio_embed.windows import SlidingWindows, TargetedWindows

    embedder = MODELS["HUBERT_BASE"]()
    cache = EmbeddingCache(tmp_path / "cache")
    windows = SlidingWindows(8.0, 1.0, "shared")
    scanner = Scanner(
        embedder, scan_windows=windows, train_windows=TargetedWindows(8.0), cache=cache
    )
    rng = np.random.default_rng(0)
    files = []
    seconds = 600.0
    for i in range(n_files):
        f = tmp_path / f"f{i}.wav"
        sf.write(f, np.zeros(16000, np.float32), 16000)  # stands for a 10-minute file
        starts = windows.starts(seconds)
        x = rng.standard_normal((len(starts), embedder.dim)).astype(np.float32)
        key = cache.key(f, scanner._settings())  # the entry a scan would have written
        cache.put(key, CachedEmbeddings(starts, x, seconds))
        files.append(f)
    n_windows = n_files * len(windows.starts(seconds))

    def build() -> EmbeddingIndex:
        path = tmp_path / f"i{time.perf_counter_ns()}.idx"
        index = EmbeddingIndex.create(path, embedder, windows=windows, cache=cache)
        index.add(files)
        return index

    index = benchmark.pedantic(build, rounds=2, iterations=1)
    assert len(index) == n_windows
    best = benchmark.stats.stats.min if benchmark.stats else None
    if best:
        record(
            "Index build from cached embeddings",
            {
                "windows": n_windows,
                "ann": index.manifest["ann"]["kind"],
                "seconds": best,
                "windows_per_s": n_windows / best,
            },
        )

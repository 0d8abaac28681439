r"""Which ANN library the index uses: USearch or FAISS, measured on the same vectors.

    .venv/bin/python benchmarks/ann_choice.py --n 100000 [--only usearch-hnsw] [--threads 2]

For each candidate: build time (adding every vector), mean latency of one
single-vector query (one thread), recall@10 against exact cosine search, and
the size of the saved index. Vectors: benchmarks/search_data.py (clustered,
768-d, float16, L2-normalised). One JSON line per candidate on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from search_data import clustered, exact_top, queries, recall_at

Search = Callable[[np.ndarray, int, int], np.ndarray]


def usearch_hnsw(data: np.ndarray, threads: int, ef_add: int) -> tuple[Search, Any]:
    from usearch.index import Index

    index = Index(
        ndim=data.shape[1], metric="ip", dtype="f16", connectivity=16, expansion_add=ef_add
    )
    step = 50_000
    for lo in range(0, len(data), step):
        chunk = data[lo : lo + step]
        index.add(np.arange(lo, lo + len(chunk)), chunk, threads=threads)

    def search(q: np.ndarray, k: int, ef: int) -> np.ndarray:
        index.expansion_search = ef
        return np.atleast_2d(np.asarray(index.search(q, k, threads=1).keys))

    return search, index


def faiss_hnsw(data: np.ndarray, threads: int, ef_add: int) -> tuple[Search, Any]:
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_add
    step = 50_000
    for lo in range(0, len(data), step):
        index.add(data[lo : lo + step].astype(np.float32))

    def search(q: np.ndarray, k: int, ef: int) -> np.ndarray:
        faiss.omp_set_num_threads(1)
        index.hnsw.efSearch = ef
        return index.search(q, k)[1]

    return search, index


def faiss_ivf(data: np.ndarray, threads: int, _unused: int) -> tuple[Search, Any]:
    import faiss

    faiss.omp_set_num_threads(threads)
    nlist = int(4 * np.sqrt(len(data)))
    quant = faiss.IndexFlatIP(data.shape[1])
    index = faiss.IndexIVFScalarQuantizer(
        quant, data.shape[1], nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(0)
    sample = data[rng.choice(len(data), min(len(data), 40 * nlist), replace=False)]
    index.train(sample.astype(np.float32))
    step = 50_000
    for lo in range(0, len(data), step):
        index.add(data[lo : lo + step].astype(np.float32))

    def search(q: np.ndarray, k: int, nprobe: int) -> np.ndarray:
        faiss.omp_set_num_threads(1)
        index.nprobe = nprobe
        return index.search(q, k)[1]

    return search, index


def saved_size(name: str, index: Any) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ann"
        if name.startswith("usearch"):
            index.save(str(path))
        else:
            import faiss

            faiss.write_index(index, str(path))
        return path.stat().st_size


#: name: (builder, build setting, search settings: ef for HNSW, nprobe for IVF)
CANDIDATES: dict[
    str, tuple[Callable[[np.ndarray, int, int], tuple[Search, Any]], int, list[int]]
] = {
    "usearch-hnsw16-f16-add128": (usearch_hnsw, 128, [64, 128]),
    "usearch-hnsw16-f16-add32": (usearch_hnsw, 32, [64, 128]),
    "faiss-hnsw32-f32-add128": (faiss_hnsw, 128, [64, 128]),
    "faiss-ivf-fp16": (faiss_ivf, 0, [16, 64]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="threads for building")
    ap.add_argument("--only", default="", help="comma-separated candidates")
    ap.add_argument("--spread", type=float, default=1.0, help="cluster spread")
    ap.add_argument("--noise", type=float, default=1.0, help="query noise (relative norm)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = clustered(args.n, args.dim, spread=args.spread, n_clusters=max(10, args.n // 1000))
    q = queries(data, args.queries, noise=args.noise)
    truth = exact_top(data, q, 10)
    t_exact = time.perf_counter()
    exact_top(data, q[:20], 10)
    exact_ms = (time.perf_counter() - t_exact) / 20 * 1000
    print(
        json.dumps(
            {
                "n": args.n,
                "data_s": round(time.perf_counter() - t0, 1),
                "exact_numpy_ms_per_query_batched20": round(exact_ms, 2),
                "cpus": os.cpu_count(),
            }
        ),
        flush=True,
    )
    only = [c for c in args.only.split(",") if c]
    for name, (make, setting, search_settings) in CANDIDATES.items():
        if only and name not in only:
            continue
        t = time.perf_counter()
        search, index = make(data, args.threads, setting)
        build = time.perf_counter() - t
        print(json.dumps({"candidate": name, "build_s": round(build, 1)}), flush=True)
        size = round(saved_size(name, index) / 2**20, 1)
        for param in search_settings:
            search(q[:5], 10, param)  # warm
            t = time.perf_counter()
            found = np.stack([search(q[i : i + 1], 10, param)[0] for i in range(len(q))])
            latency = (time.perf_counter() - t) / len(q)
            row = {
                "candidate": name,
                "search_setting": param,
                "n": args.n,
                "build_s": round(build, 1),
                "build_threads": args.threads,
                "latency_ms": round(latency * 1000, 3),
                "recall@10": round(recall_at(found, truth), 4),
                "saved_mb": size,
            }
            print(json.dumps(row), flush=True)
        del index, search


if __name__ == "__main__":
    main()

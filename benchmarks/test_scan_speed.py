"""Scan throughput: the original method (every window encoded alone, batches of 16)
and shared-context encoding, on one synthetic recording at 8 s / 1 s.

Each method is its own benchmark, grouped per model (``--benchmark-group-by=group``
shows them side by side); the speed-up is computed from pytest-benchmark's own
statistics of the two. Both are full scans through the public API
(:meth:`Scanner.sliding_embeddings`: decoding, windowing, encoding), no cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import record_method, selected
from models import MODELS, original_scanner, shared_scanner

from audio_embed.embedders.base import Embedder

_EMBEDDERS: dict[str, Embedder] = {}


def _embedder(name: str) -> Embedder:
    """One instance per model, shared by its two benchmarks (built and warmed up once)."""
    if name not in _EMBEDDERS:
        embedder = MODELS[name]()
        embedder.embed(np.zeros((1, 8 * 16000), np.float32))  # warm up
        _EMBEDDERS[name] = embedder
    return _EMBEDDERS[name]


@pytest.mark.parametrize("method", ["original", "ours"])
@pytest.mark.parametrize("name", list(MODELS))
def test_scan_throughput(
    name: str, method: str, recording: Path, benchmark: Any, pytestconfig: pytest.Config
) -> None:
    """One full scan, ``--repeats`` rounds; the best round counts."""
    if not selected(pytestconfig, name):
        pytest.skip(f"{name} not in --bench-models")
    embedder = _embedder(name)
    scanner = (shared_scanner if method == "ours" else original_scanner)(embedder)
    benchmark.group = f"scan {name}"
    rounds = int(pytestconfig.getoption("--repeats"))
    entry = benchmark.pedantic(scanner.sliding_embeddings, args=(recording,), rounds=rounds)
    seconds = float(pytestconfig.getoption("--recording-seconds"))
    done = record_method(
        f"Scan throughput, {seconds:g} s recording at 8 s / 1 s (seconds per scan, best round)",
        {
            "model": name,
            "ours": "shared" if embedder.shared_settings() else "per-window (no frames)",
        },
        method,
        benchmark,
        columns=_cosines,
        vectors=entry.embeddings,
    )
    if done is not None:
        del _EMBEDDERS[name]


def _cosines(group: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Cosine similarity of the two methods' vectors, window by window."""
    a, b = group["ours"]["vectors"], group["original"]["vectors"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min())}

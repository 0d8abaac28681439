"""Scan throughput: the original method (every window encoded alone, batches of 16)
against shared-context encoding, on one synthetic recording at 8 s / 1 s.

Both are full scans through :meth:`Scanner.sliding_embeddings` (decoding, windowing,
encoding), no cache, measured back to back in the same process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import record, selected
from models import MODELS, OriginalMethod

from audio_embed.scanner import Scanner
from audio_embed.windows import SlidingWindows


def _scan(scanner: Scanner, path: Path) -> tuple[float, float, np.ndarray]:
    """Wall seconds, process CPU seconds (all threads) and the embeddings of one scan."""
    w0, c0 = time.perf_counter(), time.process_time()
    entry = scanner.sliding_embeddings(path)
    return time.perf_counter() - w0, time.process_time() - c0, entry.embeddings


@pytest.mark.parametrize("name", list(MODELS))
def test_scan_throughput(
    name: str, recording: Path, benchmark: Any, pytestconfig: pytest.Config
) -> None:
    """Ours then the original, ``--repeats`` times; the best of each is kept.

    CPU seconds are reported too: on a shared machine other processes inflate
    wall time, much less the CPU time of this process.
    """
    if not selected(pytestconfig, name):
        pytest.skip(f"{name} not in --bench-models")
    embedder = MODELS[name]()
    ours = Scanner(embedder, scan_windows=SlidingWindows(8.0, 1.0, "shared"))
    original = Scanner(
        OriginalMethod(embedder, batch_size=16), scan_windows=SlidingWindows(8.0, 1.0)
    )
    embedder.embed(np.zeros((1, 8 * 16000), np.float32))  # warm up
    seconds = float(pytestconfig.getoption("--recording-seconds"))
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "original": []}
    vectors: dict[str, np.ndarray] = {}

    def pair() -> None:
        for method, scanner in (("ours", ours), ("original", original)):
            wall, cpu, vectors[method] = _scan(scanner, recording)
            times[method].append((wall, cpu))

    # Models without a shared hook run per window either way: once is enough.
    rounds = int(pytestconfig.getoption("--repeats")) if embedder.shared_settings() else 1
    benchmark.pedantic(pair, rounds=rounds, iterations=1)
    ours_wall, ours_cpu = min(t[0] for t in times["ours"]), min(t[1] for t in times["ours"])
    orig_wall = min(t[0] for t in times["original"])
    orig_cpu = min(t[1] for t in times["original"])
    a, b = vectors["ours"], vectors["original"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    row = {
        "model": name,
        "ours": "shared" if embedder.shared_settings() else "per-window (no frame hooks)",
        "original_x_rt": seconds / orig_wall,
        "ours_x_rt": seconds / ours_wall,
        "speedup_wall": orig_wall / ours_wall,
        "speedup_cpu": orig_cpu / ours_cpu,
        "cos_mean": float(cos.mean()),
        "cos_min": float(cos.min()),
    }
    benchmark.extra_info.update(row)
    record(
        f"Scan throughput, {seconds:g} s recording at 8 s / 1 s "
        "(x_rt = audio seconds per wall second)",
        row,
    )

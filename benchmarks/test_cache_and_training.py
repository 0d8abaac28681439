"""Cached re-scan throughput and training time on a 4-file training set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import record, record_method, selected
from models import MODELS, original_scanner, shared_scanner

from audio_embed.cache import CachedEmbeddings, EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.demo import make_demo_set
from audio_embed.formats import read_markers
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import SlidingWindows


@pytest.mark.parametrize("name", ["HUBERT_BASE_ML"])
def test_cached_rescan(
    name: str, recording: Path, tmp_path: Path, benchmark: Any, pytestconfig: pytest.Config
) -> None:
    """A re-scan served from the embedding cache (the widest built-in vectors)."""
    seconds = float(pytestconfig.getoption("--recording-seconds"))
    scanner = Scanner(
        MODELS[name](),
        scan_windows=SlidingWindows(8.0, 1.0, "shared"),
        cache=EmbeddingCache(tmp_path / "cache"),
    )
    starts = scanner.scan_windows.starts(seconds)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(starts), scanner.embedder.dim)).astype(np.float32)
    y = (rng.random(len(starts)) < 0.1).astype(np.int64)
    scanner.classifier = CalibratedClassifier().fit(x, y)
    # The entry a first scan would have written (computing it would take minutes).
    key = scanner.cache_key(recording)
    assert key is not None and scanner.cache is not None
    scanner.cache.put(key, CachedEmbeddings(starts, x, seconds))

    result = benchmark.pedantic(lambda: scanner.scan(recording), rounds=5, iterations=1)
    assert len(result.starts) == len(starts)
    best = benchmark.stats.stats.min if benchmark.stats else None
    if best:
        row = {"what": f"cached re-scan ({name}, {seconds:g} s file)", "x_realtime": seconds / best}
        record("Cached re-scan", row)


@pytest.mark.parametrize(
    "name, method",
    [("LOGMEL", "ours"), ("HUBERT_BASE", "original"), ("HUBERT_BASE", "ours")],
)
def test_training_time(
    name: str, method: str, tmp_path: Path, benchmark: Any, pytestconfig: pytest.Config
) -> None:
    """fit() on 4 files: ours (shared) and, for the encoders, the original method,
    each its own benchmark; the speed-up comes from their statistics."""
    if not selected(pytestconfig, name):
        pytest.skip(f"{name} not in --bench-models")
    seconds = float(pytestconfig.getoption("--train-seconds"))
    demo = make_demo_set(
        tmp_path,
        n_train=4,
        n_test=0,
        seconds=seconds,
        targets_per_file=2,
        distractors_per_file=max(1, int(seconds // 12)),
    )
    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    scanner = (shared_scanner if method == "ours" else original_scanner)(MODELS[name]())
    benchmark.group = f"fit {name}"
    benchmark.pedantic(scanner.fit, args=(recs,), rounds=1, iterations=1)
    key = {"model": name, "files": f"4 × {seconds:g} s"}
    methods = ("ours",) if name == "LOGMEL" else ("original", "ours")
    if len(methods) == 1:
        best = benchmark.stats.stats.min if benchmark.stats else float("nan")
        record("Training time (fit, 4 files)", {**key, "ours_s": best})
    else:
        record_method("Training time (fit, 4 files)", key, method, benchmark, methods)

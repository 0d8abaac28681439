r"""Where a local LOGMEL scan of one recording spends its time, stage by stage.

Trains a LOGMEL scanner with each classifier (``auto``: the library's choice by the
number of marked windows; ``extratrees``; ``hgb``) at the defaults (1 s / 0.1 s
windows, 4 s context, isotonic calibration) on the demo sounds, then times each
stage of a scan of a ``--seconds`` recording, in this process with one torch
thread (CPU seconds and wall seconds, best of 3):

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scan_split.py [--seconds 600]

Stages: decoding, the sliding-window embeddings, normalising them, the context
features, the classifier's ``score_windows``, post-processing (the detections), and
the whole ``Scanner.scan`` for comparison. Training runs without augmentation (it
changes the time of training, not of a scan).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from audio_embed import CalibratedClassifier, LogMelEmbedder
from audio_embed.audio import load_audio
from audio_embed.classifier import make_base_estimator
from audio_embed.demo import make_demo_set
from audio_embed.formats import read_markers
from audio_embed.scanner import Recording, Scanner

T = TypeVar("T")


def _timed(fn: Callable[[], T], reps: int = 3) -> tuple[T, tuple[float, float]]:
    best = (float("inf"), float("inf"))
    out = fn()
    for _ in range(reps):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        best = min(best, (time.process_time() - c, time.perf_counter() - w))
    return out, best


def _split(kind: str, recs: list[Recording], path: str) -> None:
    estimator = None if kind == "auto" else make_base_estimator(kind)  # type: ignore[arg-type]
    classifier = CalibratedClassifier(estimator=estimator)
    scanner = Scanner(LogMelEmbedder(), classifier=classifier, augmentation=None).fit(recs)
    audio, t_decode = _timed(lambda: load_audio(path, 16000, None))
    entry, t_embed = _timed(lambda: scanner.sliding_embeddings(audio, sample_rate=16000))
    grid, t_norm = _timed(lambda: scanner._normalise(entry.embeddings, entry.embeddings))
    features, t_context = _timed(lambda: scanner.window_features(grid, entry.starts))
    proba, t_score = _timed(lambda: scanner.classifier.score_windows(features))
    result = scanner.score_embeddings(entry, source=path)
    np.testing.assert_array_equal(result.probabilities, proba)
    detections, t_post = _timed(lambda: result.detections())
    _, t_scan = _timed(lambda: scanner.scan(path), reps=2)
    summary = scanner.classifier.summary_
    print(
        f"\n{kind}: {summary.get('estimator')}, calibration {summary.get('calibration')}, "
        f"{len(entry.starts)} windows, {features.shape[1]} features, "
        f"{len(detections)} detections"
    )
    stages = [
        ("decode", t_decode),
        ("embedding", t_embed),
        ("normalise", t_norm),
        ("context features", t_context),
        ("classifier score_windows", t_score),
        ("post-processing (detections)", t_post),
        ("whole Scanner.scan", t_scan),
    ]
    for name, (cpu, wall) in stages:
        print(f"  {name:30s} CPU {cpu:7.3f} s   wall {wall:7.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--kinds", default="auto,extratrees,hgb")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="scan-split-"))
    train = make_demo_set(tmp / "train", n_train=4, n_test=0, seconds=120, targets_per_file=8)
    test = make_demo_set(
        tmp / "test",
        n_train=0,
        n_test=1,
        seconds=args.seconds,
        targets_per_file=max(1, int(args.seconds // 30)),
        distractors_per_file=max(1, int(args.seconds // 10)),
        seed=4,
    )
    recs = [Recording(f, m) for f, m in read_markers(train.markers_csv).items()]
    for kind in args.kinds.split(","):
        _split(kind, recs, str(test.test_files[0]))


if __name__ == "__main__":
    main()

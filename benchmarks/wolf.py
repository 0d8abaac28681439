r"""Detection quality on the real-sound wolf benchmark from ../shared.

Build it once:
    .venv/bin/python ../shared/soundscapes.py --spec ../shared/soundscape-wolf.json \
        --out wolf-bench --video 2
Then:
    .venv/bin/python benchmarks/wolf.py wolf-bench --model LOGMEL [--variants]
    .venv/bin/python benchmarks/wolf.py wolf-bench --model HUBERT_BASE --random-weights \
        --encoding shared

``--random-weights`` builds the real-size architecture with random weights
(benchmarks/models.py) instead of loading the checkpoint: its detection
quality means nothing on its own, but comparing ``--encoding shared`` with
``--encoding per_window`` on it shows what shared encoding changes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from audio_embed import create_embedder
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.errors import TrainingDataError
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.formats import read_markers
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import SlidingWindows, TargetedWindows

VARIANTS: dict[str, dict[str, Any]] = {
    "original": dict(labelling="targeted", normalization="targeted"),
    "original-margin30": dict(labelling="targeted", normalization="targeted", neg_margin=30.0),
    "targeted-margin30+recording-norm": dict(labelling="targeted", neg_margin=30.0),
    "default": dict(),
    "overlap+targeted-norm": dict(labelling="overlap", normalization="targeted"),
    "overlap+recording-norm": dict(labelling="overlap", normalization="recording"),
    "logreg": dict(classifier="logreg"),
}


def run(
    bench: Path,
    model: str,
    cache: EmbeddingCache,
    random_weights: bool = False,
    encoding: str = "shared",
    labelling: str = "overlap",
    normalization: str = "recording",
    classifier: str = "hgb",
    tolerance: float | None = None,
    neg_margin: float | None = None,
    threshold: float = 0.3,
) -> dict[str, Any]:
    if random_weights:
        from models import MODELS

        embedder = MODELS[model]()
    else:
        embedder = create_embedder(model)
    if tolerance is None:
        tolerance = 12.0 if labelling == "targeted" else 0.0
    if neg_margin is None:
        neg_margin = 120.0 if labelling == "targeted" else 8.0
    scanner = Scanner(
        embedder,
        classifier=CalibratedClassifier(make_base_estimator(classifier)),  # type: ignore[arg-type]
        scan_windows=SlidingWindows(8.0, 1.0, encoding),  # type: ignore[arg-type]
        train_windows=TargetedWindows(
            8.0, tolerance=tolerance, neg_margin=neg_margin, labelling=labelling
        ),  # type: ignore[arg-type]
        normalization=normalization,  # type: ignore[arg-type]
        cache=cache,
        threshold=threshold,
    )
    markers = read_markers(bench / "markers.csv")
    t0 = time.perf_counter()
    scanner.fit([Recording(f, m) for f, m in markers.items()])
    fit_s = time.perf_counter() - t0
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    files = set()
    for ev in read_labels(bench / "labels.csv"):
        if ev.split == "test":
            key = str(bench / ev.file)
            files.add(key)
            if ev.label == "wolf":
                events[key].append((ev.onset, ev.offset))
    t0 = time.perf_counter()
    results = {}
    for path, result in scanner.scan_many(sorted(files)):
        if isinstance(result, Exception):
            raise result
        results[path] = result
    scan_s = time.perf_counter() - t0
    ev = evaluate(results, events)
    out = {k: round(v, 4) for k, v in ev.as_dict().items()}
    out.update(
        fit_s=round(fit_s, 1),
        scan_s=round(scan_s, 1),
        train=scanner.training_summary["windows_positive"],  # type: ignore[index]
        train_neg=scanner.training_summary["windows_negative"],
    )  # type: ignore[index]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--model", default="LOGMEL")
    ap.add_argument("--encoding", default="shared", choices=["per_window", "shared"])
    ap.add_argument("--random-weights", action="store_true", help="real-size model, random weights")
    ap.add_argument("--variants", action="store_true", help="run every variant")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cache = EmbeddingCache(args.cache)
    names = list(VARIANTS) if args.variants else ["default"]
    for name in names:
        try:
            res = run(
                args.bench,
                args.model,
                cache,
                args.random_weights,
                args.encoding,
                **VARIANTS[name],
            )
        except TrainingDataError as exc:
            res = {"error": str(exc)}
        row = {"variant": name, "model": args.model, "encoding": args.encoding, **res}
        if args.random_weights:
            row["weights"] = "random"
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

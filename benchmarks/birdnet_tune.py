r"""BirdNET's classifier and post-processing settings on the wolf benchmark.

Runs ``benchmarks/wolf.py``'s pipeline (``_run``: train on the training split,
threshold by leave-one-recording-out cross-validation, scan and score the test
split) once per variant and classifier seed, in one process, with the frames
and window embeddings read from the cache (``--cache``, as ``wolf.py``).
A variant is a JSON object of changes to BirdNET's defaults:

* ``C``, ``class_weight``, ``solver``: the logistic regression
  (``StandardScaler`` + ``LogisticRegression``); ``pca``: that many
  PCA-whitened components between the two;
* ``max_neg_ratio``, ``calibration``: :class:`~audio_embed.CalibratedClassifier`'s;
* ``context``, ``window``, ``hop``, ``post`` (``Postprocessing`` changes): as
  ``wolf.py``'s options.

Each row prints the training split's cross-validated event F1 at the chosen
threshold (``threshold_cv_f1``, what settings can be chosen by) next to the
test split's numbers; ``--loro`` scores the training split instead, leaving
each recording out (``wolf.py --loro``: no test data). ``--calls`` adds the
best IoU F1 at any threshold (chosen on the test labels: an upper bound) and
one row per test call: its length, the best window score over it and the
IoU of its best-matching detection::

    .venv/bin/python benchmarks/birdnet_tune.py wolf-bench \
        '[{"name": "defaults"}, {"name": "all negatives", "max_neg_ratio": null}]' \
        --seeds 42,1,2 --cache .benchmarks/wolf-cache
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import wolf
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audio_embed import create_embedder
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.evaluate import evaluate

_CLASSIFIER_KEYS = ("max_neg_ratio", "calibration")
_LOGREG_KEYS = ("C", "class_weight", "solver", "pca")
_RUN_KEYS = ("context", "window", "hop", "augment", "augment_seed")
_ORIGINAL = wolf.make_base_estimator


def _patched(variant: dict[str, Any]) -> None:
    """Point ``wolf``'s classifier construction at the variant's settings."""
    lr = {k: variant[k] for k in _LOGREG_KEYS if k in variant}
    calibrated = {k: variant[k] for k in _CLASSIFIER_KEYS if k in variant}
    original = _ORIGINAL

    def base(kind: str, random_state: int = 42) -> Any:
        if kind != "logreg" or not lr:
            return original(kind, random_state)  # type: ignore[arg-type]
        settings = {"C": 0.1, "max_iter": 2000, "random_state": random_state, **lr}
        settings.pop("pca", None)
        if "pca" in lr:  # PCA-whitened inputs of that many components
            pca = PCA(int(lr["pca"]), whiten=True, random_state=random_state)
            return make_pipeline(StandardScaler(), pca, LogisticRegression(**settings))
        return make_pipeline(StandardScaler(), LogisticRegression(**settings))

    def classifier(estimator: Any = None, **kwargs: Any) -> CalibratedClassifier:
        return CalibratedClassifier(estimator, **{**kwargs, **calibrated})

    wolf.make_base_estimator = base  # type: ignore[assignment]
    wolf.CalibratedClassifier = classifier  # type: ignore[assignment,misc]


def _best_iou_f1(results: dict[str, Any], events: dict[str, Any]) -> dict[str, float]:
    """The best IoU F1 over thresholds 0.02-0.98 on the scored split (an upper bound)."""
    best = (-1.0, 0.0)
    for t in np.arange(0.02, 0.99, 0.02):
        f1 = float(evaluate(results, events, threshold=float(t)).as_dict()["iou_f1"])
        best = max(best, (round(f1, 4), round(float(t), 2)))
    return {"best_iou_f1": best[0], "best_threshold": best[1]}


def _calls(
    results: dict[str, Any], events: dict[str, list[tuple[float, float]]], threshold: float
) -> list[dict[str, Any]]:
    """Per labelled call: length, best score of the windows over it, best detection IoU."""
    rows = []
    for path, calls in sorted(events.items()):
        result = results[path]
        found = result.detections(threshold)
        for on, off in calls:
            over = (result.starts < off) & (result.starts + result.window > on)
            ious = [
                max(0.0, min(off, d.end) - max(on, d.start)) / (max(off, d.end) - min(on, d.start))
                for d in found
            ]
            rows.append(
                {
                    "file": Path(path).name,
                    "onset": on,
                    "length": round(off - on, 2),
                    "peak": round(float(result.probabilities[over].max()) if over.any() else 0, 3),
                    "iou": round(max(ious, default=0.0), 3),
                }
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("variants", type=json.loads, help="JSON list of variant objects")
    ap.add_argument("--seeds", default="42,1,2", help="classifier seeds")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--calls", action="store_true", help="per-call rows, best IoU F1")
    ap.add_argument(
        "--loro",
        action="store_true",
        help="no test split: leave each training recording out (wolf.py --loro)",
    )
    args = ap.parse_args()
    model_kwargs = {"num_threads": 1, **dict(wolf._parse_setting(s) for s in args.set)}
    cache = EmbeddingCache(args.cache)
    embedder = create_embedder("BIRDNET_V24", **model_kwargs)
    wolf._memoise_frames(embedder, args.cache / "frames")
    keys = (
        "iou_f1 iou_precision iou_recall lenient_f1 flagged_fraction mean_detection_seconds "
        "window_auc threshold threshold_cv_f1"
    ).split()
    for variant in args.variants:
        _patched(variant)
        settings: dict[str, Any] = {k: variant[k] for k in _RUN_KEYS if k in variant}
        if "post" in variant:
            settings["postprocessing"] = variant["post"]
        for seed in [int(s) for s in args.seeds.split(",")]:
            kwargs: dict[str, Any] = dict(embedder=embedder, classifier_seed=seed, **settings)
            if args.loro:
                out = wolf.loro(args.bench, "BIRDNET_V24", cache, **kwargs)
            else:
                out, results, events = wolf._run(args.bench, "BIRDNET_V24", cache, **kwargs)
            row = {"variant": variant.get("name", json.dumps(variant)), "seed": seed}
            row.update({k: out[k] for k in keys if k in out})
            if args.loro:
                row.update(split="train, leave one recording out", thresholds=out["thresholds"])
            elif args.calls:
                row.update(_best_iou_f1(results, events))
            print(json.dumps(row), flush=True)
            if args.calls and not args.loro:
                for call in _calls(results, events, out["threshold"]):
                    print(json.dumps({"variant": row["variant"], "seed": seed, **call}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

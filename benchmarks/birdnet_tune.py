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
  ``wolf.py``'s options;
* ``transform`` (``"sqrt"``, ``"log1p"``): applied to every vector before the
  per-recording normalisation (BirdNET's frames are ReLU outputs, heavy-tailed);
  ``norm``: the per-recording normalisation (``"zscore"``, the library's;
  ``"median"``: minus the recording's median, divided by its IQR / 1.349;
  ``"center"``: minus the mean only; ``"l2"``: z-score, then each vector to unit
  length; ``"center_l2"``: minus the mean, then unit length; ``"none"``);
  ``part``: ``"post"`` (the 1024 centre channels) or ``"block4"`` (the 576
  block-4 values) of the time frames only, or BirdNET's class layer applied to
  the centre channels (time-resolved: ``"logits"``, 6,522 pre-sigmoid values,
  or ``"probs"``, their sigmoid);
* ``estimator`` (``"svm"``: an RBF SVM, ``"knn"``: k nearest neighbours, both
  on standardised vectors, ``k`` neighbours, ``pca`` components first when
  given): instead of the logistic regression; ``classifier`` (``wolf.py``'s
  ``--classifier``, e.g. ``"extratrees"``; add ``"max_neg_ratio": null`` to
  keep every negative).

Each row prints the training split's cross-validated event F1 at the chosen
threshold (``threshold_cv_f1``, what settings can be chosen by) next to the
test split's numbers; ``--loro`` scores the training split instead, leaving
each recording out (``wolf.py --loro``: no test data); ``--loco`` leaves each
of the six training *clips* out instead (:func:`loco`: the test split mixes
other takes of the wolf sounds, which leaving a recording out does not
simulate; a diagnostic, not the selection rule). ``--calls`` adds the
best IoU F1 at any threshold (chosen on the test labels: an upper bound) and
one row per test call: its length, the best window score over it and the
IoU of its best-matching detection::

    .venv/bin/python benchmarks/birdnet_tune.py wolf-bench \
        '[{"name": "defaults"}, {"name": "all negatives", "max_neg_ratio": null}]' \
        --seeds 42,1,2 --cache .benchmarks/wolf-cache
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import attrs
import numpy as np
import wolf
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from audio_embed import create_embedder
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.evaluate import evaluate
from audio_embed.scanner import Scanner
from audio_embed.scanner.core import STD_FLOOR
from audio_embed.windows import Markers

_CLASSIFIER_KEYS = ("max_neg_ratio", "calibration")
_LOGREG_KEYS = ("C", "class_weight", "solver", "pca", "estimator", "k", "gamma")
_RUN_KEYS = ("context", "window", "hop", "augment", "augment_seed", "classifier")
_ORIGINAL = wolf.make_base_estimator
_ZSCORE = Scanner._zscore


@functools.cache
def _head() -> tuple[np.ndarray, np.ndarray]:
    """BirdNET's class layer (``model/CLASS_DENSE_LAYER``): weights [6522, 1024], bias."""
    from ai_edge_litert.tools import flatbuffer_utils

    from audio_embed.embedders.birdnet import bundled_birdnet_file

    model = flatbuffer_utils.read_model(str(bundled_birdnet_file()))
    graph = model.subgraphs[0]
    out = []
    for prefix in ("model/CLASS_DENSE_LAYER/MatMul", "model/CLASS_DENSE_LAYER/BiasAdd/"):
        t = next(t for t in graph.tensors if bytes(t.name).decode().startswith(prefix))
        data = np.asarray(model.buffers[t.buffer].data, np.uint8).view(np.float32)
        out.append(data.reshape([int(n) for n in t.shape]))
    return out[0], out[1]


def _normaliser(transform: str | None, norm: str, part: str | None = None) -> Any:
    """``Scanner._zscore`` with a transform first and another normalisation."""

    def apply(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if part in ("logits", "probs"):  # the class layer on the frame's centre channels
            w, b = _head()
            x = x[:, :1024] @ w.T.astype(np.float64) + b
            return 1.0 / (1.0 + np.exp(-x)) if part == "probs" else x
        if part is not None:
            x = x[:, :1024] if part == "post" else x[:, 1024:]
        if transform == "sqrt":
            return np.sqrt(np.maximum(x, 0.0))
        if transform == "log1p":
            return np.log1p(np.maximum(x, 0.0))
        if transform is not None:
            raise ValueError(f"unknown transform {transform!r}")
        return x

    def normalise(x: np.ndarray, stats_from: np.ndarray) -> np.ndarray:
        x, ref = apply(x), apply(stats_from)
        if norm == "median":
            q1, med, q3 = np.percentile(ref, [25, 50, 75], axis=0)
            out = (x - med) / np.maximum((q3 - q1) / 1.349, STD_FLOOR)
        elif norm in ("center", "center_l2"):
            out = x - ref.mean(axis=0)
            if norm == "center_l2":
                out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        elif norm == "none":
            out = x
        else:
            out = _ZSCORE(x, ref)
            if norm == "l2":
                out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
            elif norm != "zscore":
                raise ValueError(f"unknown norm {norm!r}")
        return np.asarray(out, np.float32)

    return normalise


def _patched(variant: dict[str, Any]) -> None:
    """Point ``wolf``'s classifier construction at the variant's settings."""
    lr = {k: variant[k] for k in _LOGREG_KEYS if k in variant}
    calibrated = {k: variant[k] for k in _CLASSIFIER_KEYS if k in variant}
    original = _ORIGINAL

    def base(kind: str, random_state: int = 42) -> Any:
        if kind != "logreg" or not lr:
            return original(kind, random_state)  # type: ignore[arg-type]
        settings = {"C": 0.1, "max_iter": 2000, "random_state": random_state, **lr}
        for key in ("pca", "estimator", "k", "gamma"):
            settings.pop(key, None)
        front: list[Any] = [StandardScaler()]
        if "pca" in lr and "estimator" in lr:
            front.append(PCA(int(lr["pca"]), random_state=random_state))
        if lr.get("estimator") == "svm":
            svm = SVC(C=float(lr.get("C", 1.0)), gamma=lr.get("gamma", "scale"))
            return make_pipeline(*front, svm)
        if lr.get("estimator") == "knn":
            knn = KNeighborsClassifier(int(lr.get("k", 15)), weights="distance")
            return make_pipeline(*front, knn)
        if "estimator" in lr:
            raise ValueError(f"unknown estimator {lr['estimator']!r}")
        if "pca" in lr:  # PCA-whitened inputs of that many components
            pca = PCA(int(lr["pca"]), whiten=True, random_state=random_state)
            return make_pipeline(StandardScaler(), pca, LogisticRegression(**settings))
        return make_pipeline(StandardScaler(), LogisticRegression(**settings))

    def classifier(estimator: Any = None, **kwargs: Any) -> CalibratedClassifier:
        return CalibratedClassifier(estimator, **{**kwargs, **calibrated})

    Scanner._zscore = staticmethod(  # type: ignore[method-assign]
        _ZSCORE
        if not {"transform", "part"} & set(variant) and variant.get("norm", "zscore") == "zscore"
        else _normaliser(
            variant.get("transform"), variant.get("norm", "zscore"), variant.get("part")
        )
    )
    wolf.make_base_estimator = base  # type: ignore[assignment]
    wolf.CalibratedClassifier = classifier  # type: ignore[assignment,misc]


def _clip(event: tuple[float, float]) -> float:
    """Which source clip an event is: the bench mixes each clip at its own length."""
    return round(event[1] - event[0], 2)


def loco(
    bench: Path, cache: EmbeddingCache, model: str = "BIRDNET_V24", **kwargs: Any
) -> dict[str, Any]:
    """Leave one source clip out of the training split (diagnostic, not the selection rule).

    The test split mixes other takes of the wolf sounds than the training split
    (``soundscape-wolf.json``: ``train_clips`` / ``test_clips``), so leaving a
    recording out (``--loro``) still trains on the held-out recording's clips.
    Here the six training clips (told apart by their lengths) are left out in
    turn: their markers become soft (no window near them is a negative), the
    scanner is trained on the other clips' markers in all four training
    recordings, and only the held-out clip's events are scored; windows over
    the other clips' events (trained positives) are set to 0 before scoring.
    Metrics pooled over the six folds."""
    events = wolf._events(bench, "train")
    markers = wolf.read_markers(bench / "markers.csv")
    clips = sorted({_clip(e) for evs in events.values() for e in evs})
    own_markers, own_events = wolf._markers, wolf._events
    results: dict[str, Any] = {}
    scored: dict[str, list[tuple[float, float]]] = {}
    thresholds = []
    try:
        for clip in clips:
            custom: dict[str, Markers] = {}
            for f, m in markers.items():
                pos: list[float] = []
                soft: list[float] = []
                for t in m.positive:
                    ev = next(e for e in events[f] if e[0] - 1e-3 <= t <= e[1] + 1e-3)
                    (soft if _clip(ev) == clip else pos).append(t)
                custom[f] = Markers(positive=pos, soft=soft)
            held = {f: [e for e in evs if _clip(e) == clip] for f, evs in events.items()}
            wolf._markers = lambda *a, _m=custom, **k: _m  # type: ignore[assignment]
            wolf._events = lambda *a, _e=held, **k: _e  # type: ignore[assignment]
            out, res, _ = wolf._run(bench, model, cache, **kwargs)
            thresholds.append(out["threshold"])
            for path, r in res.items():
                over = np.zeros(len(r.starts), bool)
                for on, off in events[path]:
                    if _clip((on, off)) != clip:
                        over |= (r.starts < off + 0.5) & (r.starts + r.window > on - 0.5)
                p = np.where(over, 0.0, r.probabilities)
                results[f"{path}|{clip}"] = attrs.evolve(r, probabilities=p)
                scored[f"{path}|{clip}"] = held[path]
    finally:
        wolf._markers, wolf._events = own_markers, own_events
    d = evaluate(results, scored).as_dict()
    keys = "iou_f1 iou_precision iou_recall lenient_f1 flagged_fraction window_auc"
    row: dict[str, Any] = {k: round(float(d[k]), 4) for k in keys.split()}
    row.update(split="train, leave one clip out", thresholds=thresholds)
    return row


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
        "--loco",
        action="store_true",
        help="no test split: leave each training clip out (diagnostic, see loco())",
    )
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
            if args.loco:
                out = loco(args.bench, cache, **kwargs)
            elif args.loro:
                out = wolf.loro(args.bench, "BIRDNET_V24", cache, **kwargs)
            else:
                out, results, events = wolf._run(args.bench, "BIRDNET_V24", cache, **kwargs)
            row = {"variant": variant.get("name", json.dumps(variant)), "seed": seed}
            row.update({k: out[k] for k in keys if k in out})
            if args.loro or args.loco:
                row.update(split=out["split"], thresholds=out["thresholds"])
            elif args.calls:
                row.update(_best_iou_f1(results, events))
            print(json.dumps(row), flush=True)
            if args.calls and not args.loro:
                for call in _calls(results, events, out["threshold"]):
                    print(json.dumps({"variant": row["variant"], "seed": seed, **call}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

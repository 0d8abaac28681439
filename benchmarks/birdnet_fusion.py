r"""BirdNET fused with another embedder on the wolf benchmark (benchmark only).

Two kinds of fusion, each a JSON object in the ``variants`` list:

* ``{"kind": "early", "plus": "LOGMEL", "window": 0.5, "classifier": "logreg"}``:
  the window vectors of BirdNET (its default time frames) and of ``plus`` side by
  side (``wolf.py --grid W/H --plus``, with the streamed blocks kept on BirdNET's
  frame grid), one scanner on the concatenation; ``all_negatives`` (default true
  for ``logreg``) keeps every negative window as BirdNET's defaults do;
  ``context``, ``hop``, ``augment`` and ``post`` as ``wolf.py``'s options
  (``augment`` defaults to 0: augmentation re-embeds every mixed segment, minutes
  with BirdNET).
* ``{"kind": "late", "plus": "LOGMEL", "grid": "birdnet", "weight": 0.5}``: two
  scanners, each with its own defaults (what a user gets: BirdNET's without
  augmentation, which its defaults do not run; ``plus_augment`` for the other,
  default ``"auto"``), trained on the same markers; each file's fused score is
  ``weight`` × BirdNET's calibrated probability + (1 − ``weight``) × the
  other's, read on one scanner's window grid (``grid``: ``"birdnet"`` or
  ``"plus"``; the other's probabilities interpolated at the window centres),
  detected with that scanner's post-processing at the same mix of the two
  scanners' own thresholds (each chosen by its leave-one-recording-out
  cross-validation on the training markers: no test data). ``weights`` and
  ``grids`` (lists) give one row each from one training of the two scanners;
  ``"plus": "BIRDNET_V24"`` with ``plus_window`` (seconds) fuses two BirdNET
  windows on the same frames, ``plus_set`` (embedder keywords) another BirdNET.

Every variant takes ``seed``, the classifiers' seed (42 by default). BirdNET's
frames are memoised on disk as ``wolf.py`` does, under ``--frames`` (default
``CACHE/frames``).

``--loro`` scores the training split instead, leaving each recording out
(``wolf.py --loro``: train on the other three, threshold by their own
cross-validation, score the held-out one), pooled over the four recordings:
settings are chosen by this, never by the test split. ``--hindsight`` adds the
best IoU F1 at any threshold (chosen on the scored labels: an upper bound)::

    .venv/bin/python benchmarks/birdnet_fusion.py wolf-bench \
        '[{"kind": "early", "window": 0.5}, {"kind": "late"}]' [--loro]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import attrs
import numpy as np
import wolf
from birdnet_tune import _best_iou_f1

from audio_embed import create_embedder
from audio_embed.cache import EmbeddingCache
from audio_embed.evaluate import evaluate, read_labels

_KEYS = (
    "iou_f1 iou_precision iou_recall lenient_f1 flagged_fraction mean_detection_seconds "
    "window_auc threshold threshold_cv_f1"
).split()


def _runs(bench: Path, loro: bool) -> list[str | None]:
    if not loro:
        return [None]
    return sorted({ev.file for ev in read_labels(bench / "labels.csv") if ev.split == "train"})


def _pooled(results: dict[str, Any], events: dict[str, Any], extra: dict[str, Any]) -> dict:
    d = evaluate(results, events).as_dict()
    row = {k: round(float(d[k]), 4) for k in _KEYS if k in d}
    return {**row, **extra}


def _early(
    bench: Path, cache: EmbeddingCache, birdnet: Any, variant: dict[str, Any], loro: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    plus = [create_embedder(name) for name in variant.get("plus", "LOGMEL").split(",")]
    embedder = wolf._Plus([birdnet, *plus])  # blocks on BirdNET's frame grid
    classifier = variant.get("classifier", "logreg")
    all_negatives = bool(variant.get("all_negatives", classifier == "logreg"))
    settings: dict[str, Any] = dict(
        embedder=embedder,
        classifier=classifier,
        window=float(variant.get("window", 0.5)),
        hop=float(variant.get("hop", 0.1)),
        augment=variant.get("augment", 0),
        classifier_seed=int(variant.get("seed", 42)),
        classifier_kwargs={"max_neg_ratio": None} if all_negatives else None,
    )
    if "context" in variant:
        settings["context"] = float(variant["context"])
    if "post" in variant:
        settings["postprocessing"] = variant["post"]
    results: dict[str, Any] = {}
    events: dict[str, Any] = {}
    outs = []
    for holdout in _runs(bench, loro):
        out, res, ev = wolf._run(bench, "BIRDNET_V24", cache, holdout=holdout, **settings)
        results.update(res)
        events.update(ev)
        outs.append(out)
    extra = {"thresholds": [o["threshold"] for o in outs]}
    if not loro:
        extra = {k: outs[0][k] for k in ("threshold", "threshold_cv_f1", "fit_s", "scan_s")}
    return extra, results, events


def _fuse(a: Any, b: Any, weight: float, threshold: float) -> Any:
    """``a``'s grid and post-processing; ``b``'s probabilities at ``a``'s window centres."""
    centres = a.starts + a.window / 2
    other = np.interp(centres, b.starts + b.window / 2, b.probabilities)
    fused = weight * a.probabilities + (1 - weight) * other
    return attrs.evolve(a, probabilities=fused, threshold=threshold)


def _late(
    bench: Path,
    cache: EmbeddingCache,
    birdnet: Any,
    variant: dict[str, Any],
    loro: bool,
    frames: Path,
) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """One row per ``weights`` × ``grids`` (or ``weight``, ``grid``); the two scanners
    are trained and run once."""
    name = variant.get("plus", "LOGMEL")
    own = {"num_threads": 1} if name == "BIRDNET_V24" else {}
    other = create_embedder(name, **own, **variant.get("plus_set", {}))
    if other.frame_geometry() is not None:
        wolf._memoise_frames(other, frames)
    if name == "BIRDNET_V24" and not variant.get("plus_set"):
        other = birdnet  # the same frames, another window
    plus_kw = {"window": variant["plus_window"]} if "plus_window" in variant else {}
    weights = [float(w) for w in variant.get("weights", [variant.get("weight", 0.5)])]
    grids = variant.get("grids", [variant.get("grid", "birdnet")])
    events: dict[str, Any] = {}
    runs = []
    for holdout in _runs(bench, loro):
        kw: dict[str, Any] = dict(holdout=holdout, classifier_seed=int(variant.get("seed", 42)))
        out_b, res_b, ev = wolf._run(bench, "BIRDNET_V24", cache, embedder=birdnet, **kw)
        out_o, res_o, _ = wolf._run(
            bench,
            name,
            cache,
            embedder=other,
            augment=variant.get("plus_augment", "auto"),
            **plus_kw,
            **kw,
        )
        events.update(ev)
        runs.append((out_b["threshold"], res_b, out_o["threshold"], res_o))
    alone: dict[str, Any] = {}
    for key, k in (("birdnet", 1), ("plus", 3)):  # each scanner alone, at its own thresholds
        res = {p: r for run in runs for p, r in run[k].items()}
        d = evaluate(res, events).as_dict()
        alone[key] = {k: round(float(d[k]), 4) for k in ("iou_f1", "lenient_f1", "window_auc")}
    rows = []
    for weight, grid in itertools.product(weights, grids):
        on_birdnet = grid == "birdnet"
        results: dict[str, Any] = {}
        thresholds = []
        for tb, res_b, to, res_o in runs:
            t = weight * tb + (1 - weight) * to
            thresholds.append(round(t, 4))
            for path, rb in res_b.items():
                ro = res_o[path]
                results[path] = (
                    _fuse(rb, ro, weight, t) if on_birdnet else _fuse(ro, rb, 1 - weight, t)
                )
        extra: dict[str, Any] = {"weight": weight, "grid": grid, **alone}
        extra.update({"thresholds": thresholds} if loro else {"threshold": thresholds[0]})
        rows.append((extra, results, events))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("variants", type=json.loads, help="JSON list of variant objects")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--frames", type=Path, help="BirdNET frame store (default: CACHE/frames)")
    ap.add_argument("--loro", action="store_true", help="training split, one recording out")
    ap.add_argument("--hindsight", action="store_true", help="best IoU F1 at any threshold")
    args = ap.parse_args()
    cache = EmbeddingCache(args.cache)
    birdnet = create_embedder("BIRDNET_V24", num_threads=1)
    store = args.frames or args.cache / "frames"
    wolf._memoise_frames(birdnet, store)
    for variant in args.variants:
        if variant.get("kind", "early") == "early":
            rows = [_early(args.bench, cache, birdnet, variant, args.loro)]
        else:
            rows = _late(args.bench, cache, birdnet, variant, args.loro, store)
        for extra, results, events in rows:
            row = {"variant": variant, **_pooled(results, events, extra)}
            if args.loro:
                row["split"] = "train, leave one recording out"
            if args.hindsight:
                row.update(_best_iou_f1(results, events))
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

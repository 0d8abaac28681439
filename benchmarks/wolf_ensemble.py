"""Averaging scanners trained on several augmentation draws: how the library's
``MixAugmentation(draws=K)`` was chosen.

The all-markers wolf default moves with the draw of its mixed-in copies (README,
"Reproducing the numbers"). This measures whether averaging the calibrated
probabilities of K scanners, each fitted with the defaults' recipe
(``--augment 3 --augment-gain=-10,0``) at another augmentation seed, steadies it:
each member is ``wolf.py``'s own ``_run`` (its threshold chosen by its own
cross-validation), the ensemble's score is the mean of the members' probabilities
on their common window grid and its threshold the mean of their thresholds (no new
cross-validation, no test data), detected with the members' post-processing::

    .venv/bin/python benchmarks/wolf_ensemble.py wolf-bench --seeds 0,1,2,3,4 \
        --ensembles '0,1,2;2,3,4;0,3,4' [--loro]

The library does the same inside one fit now (``AUTO_MANY_AUGMENTATION`` has
``draws=3``: ``wolf.py wolf-bench`` gives the ``0,1,2`` row; ``wolf.py --augment 3
--augment-gain=-10,0 --augment-draws 3 --augment-seed S`` fits seeds S, S+1, S+2);
this script stays because it scores every member and any ensemble of them from one
set of fits. One JSON row per single seed and per ensemble.
``--loro`` scores the training split
(each training recording held out in turn, every member trained on the other three),
the selection rule; without it, the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import attrs
import numpy as np
import wolf

from audio_embed.cache import EmbeddingCache
from audio_embed.evaluate import evaluate

_KEYS = (
    "iou_f1 iou_precision iou_recall lenient_f1 flagged_fraction mean_detection_seconds window_auc"
).split()


def members(
    bench: Path, cache: EmbeddingCache, seed: int, loro: bool
) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """One member's results per file, events per file and threshold(s) (one per fold)."""
    kw: dict[str, Any] = dict(augment=3, augment_gain=(-10.0, 0.0), augment_seed=seed)
    if loro:
        return wolf.loro_results(bench, "LOGMEL", cache, **kw)
    out, res, ev = wolf._run(bench, "LOGMEL", cache, **kw)
    return res, ev, [out["threshold"]]


def row(results: dict[str, Any], events: dict[str, Any]) -> dict[str, Any]:
    d = evaluate(results, events).as_dict()
    return {k: round(float(d[k]), 4) for k in _KEYS}


def average(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The members' mean probability per file, at the mean of their thresholds."""
    out = {}
    for key in runs[0]:
        rs = [r[key] for r in runs]
        for r in rs[1:]:
            if not np.array_equal(r.starts, rs[0].starts):
                raise ValueError(f"{key}: the members' window grids differ")
        out[key] = attrs.evolve(
            rs[0],
            probabilities=np.mean([r.probabilities for r in rs], axis=0),
            threshold=float(np.mean([r.threshold for r in rs])),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--ensembles", default="0,1,2")
    ap.add_argument("--loro", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    args = ap.parse_args(argv)
    cache = EmbeddingCache(args.cache)
    runs: dict[int, dict[str, Any]] = {}
    events: dict[str, Any] = {}
    split = "train, leave one recording out" if args.loro else "test"
    for s in (int(x) for x in args.seeds.split(",")):
        runs[s], events, thresholds = members(args.bench, cache, s, args.loro)
        print(json.dumps({"seeds": [s], "split": split, "thresholds": thresholds,
                          **row(runs[s], events)}), flush=True)  # fmt: skip
    for group in args.ensembles.split(";"):
        seeds = [int(x) for x in group.split(",")]
        mixed = average([runs[s] for s in seeds])
        print(json.dumps({"seeds": seeds, "split": split, **row(mixed, events)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The best detection threshold in hindsight on the wolf test split: an upper bound.

Trains and scans as ``benchmarks/wolf.py`` does with the model's defaults, then
scores the same scans at every threshold from 0.02 to 0.94 and prints the one
with the best lenient event F1. The threshold is chosen on the test labels, so
this is not a result a user gets; it tells whether any threshold could reach a
target::

    .venv/bin/python benchmarks/wolf_hindsight.py wolf-bench --model BIRDNET_V24
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from wolf import _run

from audio_embed.cache import EmbeddingCache
from audio_embed.evaluate import evaluate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench", type=Path)
    ap.add_argument("--model", default="LOGMEL")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    args = ap.parse_args()
    chosen, results, events = _run(args.bench, args.model, EmbeddingCache(args.cache))
    best: dict[str, float] = {"lenient_f1": -1.0}
    for t in np.arange(0.02, 0.95, 0.02):
        d = evaluate(results, events, threshold=float(t), unmatched="ignore").as_dict()
        if d["lenient_f1"] > best["lenient_f1"]:
            best = {"threshold": round(float(t), 2), **d}
    keys = ("threshold", "lenient_f1", "iou_f1", "flagged_fraction")
    print(
        json.dumps(
            {
                "model": args.model,
                "chosen_threshold": chosen["threshold"],
                "chosen_lenient_f1": chosen["lenient_f1"],
                **{f"hindsight_{k}": best[k] for k in keys},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

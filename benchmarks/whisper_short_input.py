"""Whisper per-window encoding of short windows: padded to 30 s vs the table cut.

A full wolf run per window with ``short_input="pad"`` costs a 30 s encoder
pass for every one of the 30,000 1 s windows (a day of CPU here), so this
compares the two modes on a labelled sample of the wolf benchmark's windows:
every 1 s window centred on a wolf call (positives) and ``--negatives`` random
1 s windows at least 2 s from any call, per split. A logistic regression
(the model's scan default) is trained on the training sample and scored on the
test sample; prints window ROC AUC and average precision per mode, and the mean
cosine between the two modes' vectors.

    .venv/bin/python benchmarks/whisper_short_input.py /work/wolf-bench --negatives 60
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from audio_embed import create_embedder, load_audio
from audio_embed.classifier import make_base_estimator
from audio_embed.evaluate import read_labels


def _sample(
    bench: Path, split: str, negatives: int, rng: np.random.Generator
) -> list[tuple[str, float, int]]:
    calls: dict[str, list[tuple[float, float]]] = defaultdict(list)
    files: set[str] = set()
    for ev in read_labels(bench / "labels.csv"):
        if ev.split == split:
            files.add(ev.file)
            if ev.label == "wolf":
                calls[ev.file].append((ev.onset, ev.offset))
    out = []
    for f in sorted(files):
        for a, b in calls[f]:
            out.append((f, max(0.0, (a + b) / 2 - 0.5), 1))
        far = [
            t
            for t in np.arange(0.0, 299.0, 0.5)
            if all(t + 1 < a - 2 or t > b + 2 for a, b in calls[f])
        ]
        for t in rng.choice(far, size=negatives // len(files), replace=False):
            out.append((f, float(t), 0))
    return out


def _embed(emb: Any, bench: Path, sample: list[tuple[str, float, int]]) -> np.ndarray:
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, (f, _, _) in enumerate(sample):
        by_file[f].append(i)
    out = np.zeros((len(sample), emb.dim), np.float32)
    for f, idx in by_file.items():
        audio = load_audio(bench / f, emb.sample_rate)
        starts = np.array([sample[i][1] for i in idx])
        out[idx] = emb.embed_windows(audio, starts, 1.0, encoding="per_window", batch_size=8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--negatives", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(args.seed)
    train, test = (
        _sample(args.bench, "train", args.negatives, rng),
        _sample(args.bench, "test", args.negatives, rng),
    )
    y_train, y_test = np.array([s[2] for s in train]), np.array([s[2] for s in test])
    vectors = {}
    for mode in ("cut", "pad"):
        emb = create_embedder("WHISPER_TINY_EN", short_input=mode)
        x_train, x_test = _embed(emb, args.bench, train), _embed(emb, args.bench, test)
        vectors[mode] = x_test
        clf = make_base_estimator("logreg").fit(x_train, y_train)
        p = clf.predict_proba(x_test)[:, 1]
        print(
            json.dumps(
                {
                    "short_input": mode,
                    "train": [int(y_train.sum()), int(len(y_train) - y_train.sum())],
                    "test": [int(y_test.sum()), int(len(y_test) - y_test.sum())],
                    "window_auc": round(float(roc_auc_score(y_test, p)), 4),
                    "window_ap": round(float(average_precision_score(y_test, p)), 4),
                }
            ),
            flush=True,
        )
    a, b = vectors["cut"], vectors["pad"]
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    print(
        json.dumps(
            {
                "cosine_cut_vs_pad_mean": round(float(cos.mean()), 4),
                "min": round(float(cos.min()), 4),
            }
        )
    )


if __name__ == "__main__":
    main()

r"""Exploring settings on the wolf benchmark with the embeddings computed once.

``benchmarks/wolf.py`` runs the library end to end. This script computes each
file's ``LOGMEL`` sliding-window embeddings once (through the embedding cache)
and rebuilds the pipeline around them, so that settings the library has no
option for can be measured: other labellings of point markers, classifiers,
feature variants, augmentation, model averaging. With no options it reproduces
the defaults row of ``wolf.py`` exactly (same features, labels, classifier,
threshold cross-validation and detection).

    .venv/bin/python benchmarks/wolf_explore.py wolf-bench
    .venv/bin/python benchmarks/wolf_explore.py wolf-bench --pre 0.5 --post 0.2
    .venv/bin/python benchmarks/wolf_explore.py wolf-bench --classifier extratrees --few-shot 5

One JSON row: the cross-validated threshold and its F1, the test split's IoU
P / R / F1, lenient F1, flagged share, mean detection and window AUC at that
threshold, and ``best_f1`` / ``best_threshold``: the best IoU F1 over a grid
of thresholds on the test split itself (an upper bound, not a result).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.formats import read_markers
from audio_embed.scanner import STD_FLOOR, Postprocessing, Scanner, ScanResult
from audio_embed.threshold import FoldScores, choose_threshold, training_threshold
from audio_embed.windows import Markers, SlidingWindows

HOP = 0.1
WINDOW = 1.0


def _classifier(name: str) -> Any:
    """None = the library's automatic choice."""
    et = dict(n_estimators=300, class_weight="balanced", random_state=42, n_jobs=1)
    hgb = dict(max_iter=200, max_depth=5, learning_rate=0.1, random_state=42)
    table: dict[str, Callable[[], Any]] = {
        "auto": lambda: None,
        "hgb-mf0.3": lambda: HistGradientBoostingClassifier(**hgb, max_features=0.3),
        "hgb-leaf5": lambda: HistGradientBoostingClassifier(**hgb, min_samples_leaf=5),
        "hgb-reg": lambda: HistGradientBoostingClassifier(
            max_iter=300,
            max_depth=3,
            learning_rate=0.05,
            l2_regularization=1.0,
            max_features=0.3,
            min_samples_leaf=10,
            random_state=42,
        ),
        "extratrees-leaf1": lambda: ExtraTreesClassifier(**et, min_samples_leaf=1),
        "extratrees-leaf5": lambda: ExtraTreesClassifier(**et, min_samples_leaf=5),
        "rf": lambda: RandomForestClassifier(**et, min_samples_leaf=2),
        "logreg-0.01": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=0.01, max_iter=3000)
        ),
        "vote-hgb-extratrees": lambda: VotingClassifier(
            [(k, make_base_estimator(k)) for k in ("hgb", "extratrees")], voting="soft"
        ),
        "vote-extratrees-prototype": lambda: VotingClassifier(
            [(k, make_base_estimator(k)) for k in ("extratrees", "prototype")], voting="soft"
        ),
    }
    for kind in ("hgb", "logreg", "extratrees", "prototype"):
        table[kind] = lambda kind=kind: make_base_estimator(kind)  # type: ignore[misc]
    if name not in table:
        raise SystemExit(f"--classifier: one of {', '.join(table)}. Got {name!r}.")
    return table[name]()


def _zscore(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x - x.mean(0)) / np.maximum(x.std(0), STD_FLOOR)
    return out.astype(np.float32)


def _odd(seconds: float) -> int:
    n = max(1, round(seconds / HOP))
    return n + 1 - n % 2


class Bench:
    def __init__(
        self, bench: Path, cache: Path, embedder: Callable[..., LogMelEmbedder] = LogMelEmbedder
    ) -> None:
        self.bench = bench
        self.embedder = embedder  # benchmarks/wolf_augment.py passes other front-ends
        self.cache = EmbeddingCache(cache)
        labels = read_labels(bench / "labels.csv")
        self.events: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for ev in labels:
            if ev.label == "wolf":
                self.events[str(bench / ev.file)].append((ev.onset, ev.offset))
        self.test = sorted({str(bench / e.file) for e in labels if e.split == "test"})
        self.markers = {str(k): v for k, v in read_markers(bench / "markers.csv").items()}
        self._entries: dict[tuple[Any, ...], dict[str, Any]] = {}

    def entries(self, window: float = WINDOW, hop: float = HOP, **kw: Any) -> dict[str, Any]:
        key = (window, hop, tuple(sorted(kw.items())))
        if key not in self._entries:
            scanner = Scanner(
                self.embedder(**kw), scan_windows=SlidingWindows(window, hop), cache=self.cache
            )
            files = sorted(self.markers) + self.test
            self._entries[key] = {p: scanner.sliding_embeddings(p) for p in files}
        return self._entries[key]

    def features(self, variant: str) -> dict[str, np.ndarray]:
        """What the classifier sees for every sliding window of every file."""
        ent = self.entries()
        with_context = Scanner(LogMelEmbedder(), context=4.0)
        out = {}
        for p, e in ent.items():
            x = _zscore(e.embeddings)
            if variant in ("default", "scale0.5", "stack"):
                f = with_context.window_features(x, e.starts)
            elif variant == "mels32":
                e32 = self.entries(n_mels=32)[p]
                f = with_context.window_features(_zscore(e32.embeddings), e32.starts)
            else:
                f = np.concatenate([x, x - self._background(x, variant)], axis=1)
            if variant == "scale0.5":  # the 0.5 s window centred on the 1 s window's centre
                short = self.entries(0.5, 0.05)[p]
                fs = with_context.window_features(_zscore(short.embeddings), short.starts)
                idx = np.clip(np.searchsorted(short.starts, e.starts + 0.25 - 1e-6), 0, None)
                f = np.concatenate([f, fs[np.minimum(idx, len(fs) - 1)]], axis=1)
            if variant == "stack":  # the windows 0.5 s before and after
                i = np.arange(len(x))
                f = np.concatenate(
                    [f, x[np.clip(i - 5, 0, None)], x[np.minimum(i + 5, len(x) - 1)]], 1
                )
            out[p] = f.astype(np.float32)
        return out

    @staticmethod
    def _background(x: np.ndarray, variant: str) -> np.ndarray:
        size = _odd(4.0)
        mean = uniform_filter1d(x.astype(np.float64), size, axis=0, mode="nearest")
        if variant == "median":
            return np.asarray(median_filter(x, size=(size, 1), mode="nearest"))
        if variant == "ring":  # ±2 s without the window's own ±0.5 s
            inner = _odd(1.0)
            small = uniform_filter1d(x.astype(np.float64), inner, axis=0, mode="nearest")
            return (mean * size - small * inner) / (size - inner)
        if variant == "localz":  # (x - mean) / std becomes x - background
            var = uniform_filter1d(x.astype(np.float64) ** 2, size, axis=0, mode="nearest")
            std = np.maximum(np.sqrt(np.maximum(var - mean**2, 0)), 0.5)
            return np.asarray(x - (x - mean) / std)
        raise SystemExit(f"--features: unknown variant {variant!r}")


def labels(starts: np.ndarray, markers: Markers, pre: float, post: float) -> np.ndarray:
    """1: a positive marker lies in [start - post, start + pre]; 0: no marker within 8 s of
    the window; -1: dropped. ``pre=1, post=0`` is the library's overlap labelling."""
    lab = np.full(len(starts), -1)
    marked = np.asarray(markers.all)
    if len(marked):
        lo, hi = starts[:, None] - 8.0, starts[:, None] + WINDOW + 8.0
        lab[~((marked >= lo) & (marked <= hi)).any(1)] = 0
    if markers.positive:
        d = starts[:, None] - np.asarray(markers.positive)[None, :]
        lab[((d >= -pre - 1e-6) & (d <= post + 1e-6)).any(1)] = 1
    return lab


def _shift_bands(x: np.ndarray, shifts: list[int]) -> np.ndarray:
    """Copies of ``x`` with every 64-band block shifted by each of ``shifts`` bands."""
    if not shifts:
        return x[:0]
    blocks = x.reshape(len(x), -1, 64)
    out = [blocks[:, :, np.clip(np.arange(64) - s, 0, 63)].reshape(len(x), -1) for s in shifts]
    return np.concatenate(out) if out else x[:0]


#: Extra positive rows for the training files and markers of one fit (wolf_augment.py).
Extra = Callable[[list[tuple[str, Markers]]], np.ndarray]
#: Pseudo-labelled windows (features, labels) of the scanned files (--self-train).
Pseudo = tuple[tuple[np.ndarray, np.ndarray], ...]
Fit = Callable[..., CalibratedClassifier]


def _train(
    fit: Fit,
    markers: dict[str, Markers],
    ent: dict[str, Any],
    feats: dict[str, np.ndarray],
    post: Postprocessing,
    args: argparse.Namespace,
    pseudo: Pseudo = (),
) -> tuple[CalibratedClassifier, Any, list[CalibratedClassifier]]:
    """The threshold by cross-validation over the training files (as ``Scanner.fit``), then
    the final classifier on all of them; ``pseudo`` (pseudo-labelled windows) joins every fit."""
    files = sorted(markers)
    folds, models = [], []
    if len(files) >= 2:  # leave one recording out
        for p in files:
            clf = fit([(q, markers[q]) for q in files if q != p], pseudo)
            models.append(clf)
            refs = tuple((t, t) for t in markers[p].positive)
            e = ent[p]
            folds.append(
                FoldScores(e.starts, clf.score_windows(feats[p]), WINDOW, e.duration, refs)
            )
    elif len(markers[files[0]].positive) >= 2:  # folds over markers, as Scanner does
        p, m = files[0], markers[files[0]]
        n = len(m.positive)
        k = min(5, n)
        order = np.random.default_rng(0).permutation(n)
        for f in range(k):
            out = {int(j) for j in order[f::k]}
            keep = [t for j, t in enumerate(m.positive) if j not in out]
            held = [t for j, t in enumerate(m.positive) if j in out]
            clf = fit([(p, Markers(positive=keep, soft=held))], pseudo)
            models.append(clf)
            e = ent[p]
            folds.append(
                FoldScores(
                    e.starts,
                    clf.score_windows(feats[p]),
                    WINDOW,
                    e.duration,
                    tuple((t, t) for t in held),
                    tuple((t - 0.5, t + 0.5) for t in keep),
                )
            )
    choice = choose_threshold(folds, post, "cv", len(folds))
    final = fit([(p, markers[p]) for p in files], pseudo)
    if choice.method == "fallback":
        xs, ys = [], []
        for p in files:
            lab = labels(ent[p].starts, markers[p], args.pre, args.post)
            xs.append(feats[p][lab >= 0])
            ys.append(lab[lab >= 0])
        s, y = final.score_windows(np.concatenate(xs)), np.concatenate(ys)
        choice = training_threshold(s[y == 1], s[y == 0])
    return final, choice, models


def pseudo_labels(
    files: list[str],
    feats: dict[str, np.ndarray],
    ent: dict[str, Any],
    clf: CalibratedClassifier,
    threshold: float,
    post: Postprocessing,
    args: argparse.Namespace,
    events: dict[str, list[tuple[float, float]]] | None = None,
    judges: tuple[CalibratedClassifier, ...] = (),
) -> tuple[Pseudo, dict[str, Any]]:
    """Self-training: windows of the scanned ``files`` labelled by ``clf`` itself.

    Positives: the windows holding the peak of each file's ``--pseudo-top`` best
    detections at ``threshold`` (all of them when 0) whose score is at least
    ``--pseudo-min``. Negatives: windows farther than 8 s from every detection whose
    score is at most the file's ``--pseudo-neg`` quantile (1 = all of them).
    ``judges`` (the cross-validation models, with ``--pseudo-agree``): a pseudo-positive
    must also reach ``threshold`` at its peak under every one of them.
    ``events`` (the test labels) only count how many pseudo-positives are right.
    """
    rows, n_pos, n_neg, n_det, right, n_peaks = [], 0, 0, 0, 0, 0
    for p in files:
        e, f = ent[p], feats[p]
        s = clf.score_windows(f)
        dets = ScanResult(p, e.starts, s, WINDOW, e.duration, threshold, post).detections()
        dets = sorted(dets, key=lambda d: -d.score)
        n_det += len(dets)
        chosen = [d for d in dets if d.score >= args.pseudo_min]
        if judges:
            i = np.clip(
                np.searchsorted(e.starts + WINDOW / 2, np.array([d.peak for d in chosen]) - 1e-6),
                0,
                len(s) - 1,
            )
            votes = np.min([j.score_windows(f[i]) for j in judges], axis=0) if len(i) else []
            chosen = [d for d, v in zip(chosen, votes, strict=True) if v >= threshold]
        if args.pseudo_top:
            chosen = chosen[: args.pseudo_top]
        peaks = [d.peak for d in chosen]
        n_peaks += len(peaks)
        right += sum(any(a <= t <= b for a, b in (events or {}).get(p, [])) for t in peaks)
        others = [t for d in dets if d not in chosen for t in (d.start, d.end)]
        lab = labels(e.starts, Markers(positive=peaks, soft=others), args.pre, args.post)
        lab[(lab == 0) & (s > np.quantile(s, args.pseudo_neg))] = -1
        if not len(peaks):
            lab[lab == 1] = -1
        n_pos += int((lab == 1).sum())
        n_neg += int((lab == 0).sum())
        rows.append((f[lab >= 0], lab[lab >= 0]))
    info = dict(
        detections=n_det,
        pseudo_positives=n_peaks,
        on_a_call=right if events else None,
        positive_windows=n_pos,
        negative_windows=n_neg,
    )
    return tuple(rows), info


class MeanOf:
    """The mean score of classifiers fitted on different augmentation pools (bagging over
    augmentation draws: ``wolf_augment.py --aug-bag``)."""

    def __init__(self, models: list[CalibratedClassifier]) -> None:
        self.models = models
        self.summary_ = models[0].summary_

    def score_windows(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.mean([m.score_windows(x) for m in self.models], axis=0))


def run(b: Bench, args: argparse.Namespace, extra: Extra | None = None) -> dict[str, Any]:
    feats = b.features(args.features)
    ent = b.entries()
    post = Postprocessing(smooth=0.5, hysteresis=0.5, valley=0.5)
    markers = dict(b.markers)
    if args.few_shot:
        points = sorted((f, t) for f, m in markers.items() for t in m.positive)[: args.few_shot]
        grouped: dict[str, list[float]] = defaultdict(list)
        for f, t in points:
            grouped[f].append(t)
        markers = {f: Markers(positive=v) for f, v in grouped.items()}

    def fit(items: list[tuple[str, Markers]], pseudo: Pseudo = ()) -> CalibratedClassifier:
        xs, ys = [x for x, _ in pseudo], [y for _, y in pseudo]
        for p, m in items:
            lab = labels(ent[p].starts, m, args.pre, args.post)
            xs.append(feats[p][lab >= 0])
            ys.append(lab[lab >= 0])
        x0, y0 = np.concatenate(xs), np.concatenate(ys)
        shifted0 = _shift_bands(x0[y0 == 1], args.shift_aug)
        pools = [None] if extra is None else extra(items)  # a list: one model per pool
        fitted = []
        for rows in pools if isinstance(pools, list) else [pools]:
            shifted = shifted0 if rows is None else np.concatenate([shifted0, rows])
            x = np.concatenate([x0, shifted])
            y = np.concatenate([y0, np.ones(len(shifted), int)])
            clf = CalibratedClassifier(
                _classifier(args.classifier),
                max_neg_ratio=None if args.all_negatives else 30.0,
                random_state=args.classifier_seed,
            )
            fitted.append(clf.fit(x, y))
        return fitted[0] if len(fitted) == 1 else MeanOf(fitted)  # type: ignore[return-value]

    final, choice, models = _train(fit, markers, ent, feats, post, args)
    scanned = b.test  # --scan-split train: the training files without markers (few-shot)
    if args.scan_split == "train":
        scanned = sorted(p for p in b.markers if p not in markers)
    pseudo_rows: list[dict[str, Any]] = []
    for _ in range(args.self_train):
        judges = tuple(models) if args.pseudo_agree else ()
        pseudo, info = pseudo_labels(
            scanned, feats, ent, final, choice.value, post, args, b.events, judges
        )
        pseudo_rows.append(info)
        if args.rethreshold == "cv":
            final, choice, models = _train(fit, markers, ent, feats, post, args, pseudo)
        else:
            final = fit([(p, markers[p]) for p in sorted(markers)], pseudo)
    ensemble = [*models, final] if args.ensemble else [final]

    def scores(p: str) -> np.ndarray:
        return np.asarray(np.mean([m.score_windows(feats[p]) for m in ensemble], axis=0))

    probs = {p: scores(p) for p in scanned}

    def score_at(t: float) -> Any:
        results = {
            p: ScanResult(p, ent[p].starts, probs[p], WINDOW, ent[p].duration, t, post)
            for p in scanned
        }
        return evaluate(results, {p: b.events[p] for p in scanned})

    ev = score_at(choice.value)
    d = ev.as_dict()
    best = max((score_at(float(t)).iou_f1, round(float(t), 2)) for t in np.arange(0.04, 0.9, 0.04))
    row: dict[str, Any] = {
        k: round(float(d[k]), 4) for k in ("iou_precision", "iou_recall", "iou_f1")
    }
    row.update(
        {k: round(float(d[k]), 4) for k in ("lenient_f1", "flagged_fraction", "window_auc")},
        mean_detection_seconds=round(float(d["mean_detection_seconds"]), 3),
        threshold=choice.value,
        threshold_cv_f1=None if choice.cv_f1 is None else round(choice.cv_f1, 3),
        estimator=final.summary_["estimator"],
        best_f1=round(best[0], 4),
        best_threshold=best[1],
    )
    if pseudo_rows:
        row["pseudo"] = pseudo_rows
    return row


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--pre", type=float, default=1.0, help="positives start ≥ marker - PRE")
    ap.add_argument("--post", type=float, default=0.0, help="positives start ≤ marker + POST")
    ap.add_argument("--classifier", default="auto")
    ap.add_argument("--classifier-seed", type=int, default=42)
    ap.add_argument("--all-negatives", action="store_true", help="no negative subsampling")
    ap.add_argument(
        "--features",
        default="default",
        choices=["default", "scale0.5", "stack", "mels32", "median", "ring", "localz"],
    )
    ap.add_argument(
        "--shift-aug",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[],
        help="mel-band shifts added as positives, e.g. -2,-1,1,2",
    )
    ap.add_argument("--ensemble", action="store_true", help="average the CV models and final")
    ap.add_argument("--few-shot", type=int, help="train on the first k training events")
    ap.add_argument(
        "--self-train",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="refit on pseudo-labelled test windows, ROUNDS times",
    )
    ap.add_argument("--pseudo-top", type=int, default=0, help="best K detections per file")
    ap.add_argument("--pseudo-min", type=float, default=0.0, help="pseudo-positive min score")
    ap.add_argument("--pseudo-neg", type=float, default=0.5, help="negatives' score quantile")
    ap.add_argument("--rethreshold", choices=["cv", "keep"], default="cv")
    ap.add_argument("--pseudo-agree", action="store_true", help="CV models must agree")
    ap.add_argument(
        "--scan-split",
        choices=["test", "train"],
        default="test",
        help="train: scan and score the training files left without markers (--few-shot)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    row = run(Bench(args.bench, args.cache), args)
    print(json.dumps({"settings": {k: v for k, v in vars(args).items() if k != "bench"}} | row,
                     default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

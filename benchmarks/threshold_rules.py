r"""Threshold-choice rules compared offline on the same scores (wolf benchmark).

Trains once as ``benchmarks/wolf.py`` does (the model's defaults, a classifier
seed, optionally the first k markers), keeps the cross-validation's held-out
scores (:class:`audio_embed.threshold.FoldScores`, captured as
``Scanner.fit`` hands them to :func:`~audio_embed.threshold.choose_threshold`)
and the test split's scan scores, then lets every rule below pick a threshold
from the held-out scores alone and scores that threshold on the test split::

    .venv/bin/python benchmarks/threshold_rules.py wolf-bench --model LOGMEL \
        [--classifier-seed 1] [--few-shot-k 5] [--cache DIR] [--set KEY=VALUE]

One JSON row per rule: the chosen threshold, its cross-validated event F1, the
test split's IoU F1 / lenient F1 / share of audio flagged at it, plus a
``hindsight`` row (the best IoU F1 over thresholds on the test split itself: an
upper bound, not a rule). Only the rule names in ``--rules`` are printed (all by
default).

Rules (``f``: pooled held-out event F1 over the candidate thresholds, which
are :func:`~audio_embed.threshold.candidate_thresholds` plus a 0.01 grid;
``n``: the held-out markers):

* ``smoothed``, ``argmax``: the library's rules (``choose_threshold(...,
  rule=...)`` on its own candidate grid): ``argmax``, the default before, is
  the best ``f`` (ties: the middle one); ``smoothed``, the default now, the
  best of ``f`` averaged with a Gaussian in log-odds as wide as the folds'
  own best thresholds spread (their sample standard deviation);
* ``plateau-se``, ``plateau-halfse``: the middle (in probability) of the
  thresholds whose ``f`` is within one (a half) standard error of the best,
  ``sqrt(F(1 - F) / n)``; ``plateau-se-logit``: the same middle in log-odds;
* ``smooth``: the best of ``f`` on the 0.01 grid averaged over +-0.05;
* ``fold-median``, ``fold-logit-mean``: each fold's own best threshold, their
  median (mean in log-odds);
* ``f05``: the best pooled F0.5 (precision weighted);
* ``plateau-se-top``: the highest threshold within one standard error;
  ``plateau-se-run``: the middle of the contiguous run within one standard
  error that holds the best;
* ``macro``, ``maximin``: the best mean (worst) F1 over the folds;
* ``gauss-logit-0.5``: the best of ``f`` averaged with a Gaussian of 0.5 in
  log-odds; ``gauss-logit-fold``: its width is the spread (standard deviation
  in log-odds) of the folds' own best thresholds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from wolf import Call, _events, _force_rule, _layer_embedder, _memoise_frames, _parse_setting, _run

from audio_embed import create_embedder
from audio_embed.cache import EmbeddingCache
from audio_embed.evaluate import evaluate
from audio_embed.threshold import RULES as LIBRARY
from audio_embed.threshold import (
    F1Curve,
    candidate_thresholds,
    choose_threshold,
    f1_curve,
)


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _expit(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _mid_of_best(f: np.ndarray, t: np.ndarray) -> float:
    best = np.flatnonzero(f >= f.max() - 1e-12)
    return float(t[best[len(best) // 2]])


def _fbeta(c: F1Curve, beta: float) -> np.ndarray:
    tp, fp, fn = c.tp.sum(0), c.fp.sum(0), c.fn.sum(0)
    b2 = beta * beta
    den = (1 + b2) * tp + b2 * fn + fp
    return np.where(tp > 0, (1 + b2) * tp / np.maximum(den, 1), 0.0)


def _plateau(c: F1Curve, scale: float, where: str = "mid") -> float:
    f, t = c.f1(), c.thresholds
    top = float(f.max())
    se = np.sqrt(max(top * (1 - top), 0.0) / max(c.n_references, 1))
    near = t[f >= top - scale * se - 1e-12]
    if where == "top":
        return float(near.max())
    if where == "logit":
        return _expit(float(0.5 * (_logit(near.min()) + _logit(near.max()))))
    return float(0.5 * (near.min() + near.max()))


def _smooth(c: F1Curve, half: float = 0.05) -> float:
    grid = np.round(np.arange(0.01, 0.995, 0.01), 4)
    keep = np.isin(np.round(c.thresholds, 4), grid)
    t, f = c.thresholds[keep], c.f1()[keep]
    k = round(half / 0.01)
    pad = np.pad(f, k, mode="edge")
    sm = np.convolve(pad, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
    return _mid_of_best(sm, t)


def _per_fold(c: F1Curve) -> np.ndarray:
    out = []
    for i in range(c.tp.shape[0]):
        tp, fp, fn = c.tp[i], c.fp[i], c.fn[i]
        if tp.max() == 0:
            continue
        f = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
        out.append(_mid_of_best(f, c.thresholds))
    return np.asarray(out)


def _fold_f1(c: F1Curve) -> np.ndarray:
    tp, fp, fn = c.tp, c.fp, c.fn
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


def _gauss_logit(c: F1Curve, sigma: float) -> float:
    """The best of ``f`` averaged with a Gaussian of ``sigma`` in log-odds (the
    expected F1 when new data shifts the scores by that much)."""
    x = _logit(c.thresholds)
    w = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return _mid_of_best(w @ c.f1() / w.sum(1), c.thresholds)


def _run_plateau(c: F1Curve, scale: float) -> float:
    """The middle of the contiguous run of thresholds within ``scale`` standard
    errors of the best that holds the best (the middle one of ties)."""
    f, t = c.f1(), c.thresholds
    top = float(f.max())
    se = np.sqrt(max(top * (1 - top), 0.0) / max(c.n_references, 1))
    ok = f >= top - scale * se - 1e-12
    best = np.flatnonzero(f >= top - 1e-12)
    i = j = int(best[len(best) // 2])
    while i > 0 and ok[i - 1]:
        i -= 1
    while j < len(t) - 1 and ok[j + 1]:
        j += 1
    return float(0.5 * (t[i] + t[j]))


RULES: dict[str, Callable[[F1Curve], float]] = {
    "plateau-se": lambda c: _plateau(c, 1.0),
    "plateau-halfse": lambda c: _plateau(c, 0.5),
    "plateau-se-logit": lambda c: _plateau(c, 1.0, "logit"),
    "plateau-se-top": lambda c: _plateau(c, 1.0, "top"),
    "smooth": _smooth,
    "fold-median": lambda c: float(np.median(_per_fold(c))),
    "fold-logit-mean": lambda c: _expit(float(_logit(_per_fold(c)).mean())),
    "f05": lambda c: _mid_of_best(_fbeta(c, 0.5), c.thresholds),
    "macro": lambda c: _mid_of_best(_fold_f1(c).mean(0), c.thresholds),
    "maximin": lambda c: _mid_of_best(_fold_f1(c).min(0), c.thresholds),
    "gauss-logit-0.5": lambda c: _gauss_logit(c, 0.5),
    "gauss-logit-fold": lambda c: _gauss_logit(c, max(0.1, float(_logit(_per_fold(c)).std()))),
    "plateau-se-run": lambda c: _run_plateau(c, 1.0),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--model", default="LOGMEL")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--classifier-seed", type=int, default=42)
    ap.add_argument("--few-shot-k", type=int, help="train on the first k training events")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rules", default=",".join([*LIBRARY, *RULES]))
    ap.add_argument("--dump", type=Path, help="write both F1 curves (CV and test) here, JSON")
    args = ap.parse_args(argv)
    model_kwargs = dict(_parse_setting(item) for item in args.set)
    base = create_embedder(args.model, **model_kwargs)
    if base.frame_geometry() is not None:
        _memoise_frames(base, args.cache / "frames")
    seen: list[Call] = []
    _force_rule(None, seen)  # record what the cross-validation scores its thresholds on
    out, results, events = _run(
        args.bench,
        args.model,
        EmbeddingCache(args.cache),
        embedder=_layer_embedder(base, "last"),
        model_kwargs=model_kwargs,
        classifier_seed=args.classifier_seed,
        first_k=args.few_shot_k,
    )
    assert events == _events(args.bench, "test")
    head = dict(
        model=args.model,
        classifier_seed=args.classifier_seed,
        first_k=args.few_shot_k,
        library_threshold=out["threshold"],
        library_iou_f1=out["iou_f1"],
    )
    if not seen:  # one marker: no cross-validation, nothing to compare
        print(json.dumps({**head, "note": "no cross-validation ran"}))
        return 0
    folds, post, _, _ = seen[-1]
    pooled = np.concatenate([f.probabilities for f in folds])
    grid = np.unique(
        np.concatenate([candidate_thresholds(pooled), np.round(np.arange(0.01, 0.995, 0.01), 4)])
    )
    curve = f1_curve(folds, post, grid)
    cv = curve.f1()

    def test(t: float) -> dict[str, float]:
        d = evaluate(results, events, threshold=t, unmatched="ignore").as_dict()
        return {k: round(float(d[k]), 4) for k in ("iou_f1", "lenient_f1", "flagged_fraction")}

    for name in args.rules.split(","):
        if name in LIBRARY:  # exactly what Scanner.fit chooses with that rule
            t = choose_threshold(folds, post, "", len(folds), rule=name).value  # type: ignore[arg-type]
        else:
            t = float(RULES[name](curve))
        at = f1_curve(folds, post, np.array([t])).f1()[0]
        row = {**head, "rule": name, "threshold": round(t, 4), "cv_f1": round(float(at), 4)}
        print(json.dumps({**row, **test(t)}), flush=True)
    scores = [(t, test(float(t))) for t in np.round(np.arange(0.02, 0.97, 0.02), 2)]
    t_best, best = max(scores, key=lambda s: s[1]["iou_f1"])
    i = int(np.argmin(np.abs(grid - t_best)))
    hind = {**head, "rule": "hindsight", "threshold": float(t_best), "cv_f1": round(cv[i], 4)}
    print(json.dumps({**hind, **best}), flush=True)
    if args.dump is not None:
        tests = {float(t): test(float(t)) for t in grid[::2]}
        args.dump.write_text(
            json.dumps(
                {
                    **head,
                    "cv": {"t": grid.tolist(), "f1": cv.tolist(), "n": curve.n_references},
                    "test": {"t": list(tests), "iou_f1": [v["iou_f1"] for v in tests.values()]},
                    "fold_best": _per_fold(curve).tolist(),
                    "counts": [curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()],
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

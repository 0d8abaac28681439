r"""Post-processing sized from the marked durations: a sweep over rules, each fit once.

Post-processing does not change the classifier, only the detections and the
threshold the cross-validation picks for them. So each fit of ``wolf.py`` is run
once (the folds of its threshold cross-validation are kept), and every rule
below re-chooses the threshold on those folds, as ``Scanner.fit`` would with
that post-processing, then scores the scans with it:

    .venv/bin/python benchmarks/span_post.py horn-bench --target horn --spans --loro
    .venv/bin/python benchmarks/span_post.py wolf-bench --spans --loro

``--loro``: the training split, leaving one recording out (choose here); without
it, the test split (report only). A rule gets ``D``, the median duration of the
marked selections the fit was given (with point markers there are none: every
rule is the scanner's own post-processing). ``--rules a,b`` runs some of them
(``--list`` names them). ``--set KEY=VALUE`` (repeatable) changes a ``wolf._run``
setting (e.g. ``--set augment=1``). One JSON row per rule; besides the IoU >= 0.3
event F1 it gives boundary quality: the F1 at IoU >= 0.5 and 0.7 and the mean over
events of their best IoU with a detection. The fits run with
``postprocessing_from_spans=False`` (the scanner's post-processing is every rule's
base). The library adopted ``mindur-1D+long:hyst-0.5``
(:func:`audio_embed.scanner.defaults.span_postprocessing`; README, "A second
benchmark: horns").
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wolf import Call, _events, _force_rule, _parse_setting, _run

from audio_embed.cache import EmbeddingCache
from audio_embed.detect import Postprocessing, iou_matrix, max_matching
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.threshold import choose_threshold

Rule = Callable[[float, Postprocessing], dict[str, Any]]

RULES: dict[str, Rule] = {
    "scanner": lambda d, p: {},
    "hyst-0.5": lambda d, p: {"hysteresis": 0.5},
    "hyst-0.25": lambda d, p: {"hysteresis": 0.25},
    "valley-0": lambda d, p: {"valley": 0.0},
    "smooth-0.25D": lambda d, p: {"smooth": max(p.smooth, 0.25 * d)},
    "smooth-0.5D": lambda d, p: {"smooth": max(p.smooth, 0.5 * d)},
    "mindur-0.5D": lambda d, p: {"min_duration": 0.5 * d},
    "mindur-0.75D": lambda d, p: {"min_duration": 0.75 * d},
    "mindur-1D": lambda d, p: {"min_duration": d},
    "gap-0.25D": lambda d, p: {"min_gap": 0.25 * d},
    "gap-0.5D": lambda d, p: {"min_gap": 0.5 * d},
    "gap-0.5D+valley-0": lambda d, p: {"min_gap": 0.5 * d, "valley": 0.0},
    "hyst-0.5+mindur-0.75D": lambda d, p: {"hysteresis": 0.5, "min_duration": 0.75 * d},
    "hyst-0.5+smooth-0.5D": lambda d, p: {"hysteresis": 0.5, "smooth": max(p.smooth, 0.5 * d)},
    "smooth-0.5D+mindur-0.75D": lambda d, p: {
        "smooth": max(p.smooth, 0.5 * d),
        "min_duration": 0.75 * d,
    },
    "smooth-0.25D+gap-0.25D+mindur-0.75D": lambda d, p: {
        "smooth": max(p.smooth, 0.25 * d),
        "min_gap": 0.25 * d,
        "min_duration": 0.75 * d,
    },
    # conditional on the sound being longer than the window (1 s here): D >= 2 s
    "long:hyst-0.5": lambda d, p: {"hysteresis": 0.5} if d >= 2.0 else {},
    "long:hyst-0.25": lambda d, p: {"hysteresis": 0.25} if d >= 2.0 else {},
    "mindur-0.75D+long:hyst-0.5": lambda d, p: {
        "min_duration": 0.75 * d,
        **({"hysteresis": 0.5} if d >= 2.0 else {}),
    },
    "mindur-1D+long:hyst-0.5": lambda d, p: {
        "min_duration": d,
        **({"hysteresis": 0.5} if d >= 2.0 else {}),
    },
    "hyst-0.5+mindur-1D": lambda d, p: {"hysteresis": 0.5, "min_duration": d},
    "mindur-0.75D+gap-0.25D+long:hyst-0.5": lambda d, p: {
        "min_duration": 0.75 * d,
        "min_gap": 0.25 * d,
        **({"hysteresis": 0.5} if d >= 2.0 else {}),
    },
}


def _fits(
    bench: Path, cache: EmbeddingCache, loro: bool, settings: dict[str, Any]
) -> list[tuple[Call | None, dict[str, Any], dict[str, Any], float | None]]:
    """(threshold call, results, events, D) per fit: four with ``loro``, else one."""
    calls: list[Call] = []
    _force_rule(None, calls)  # the library's rule; each fit's folds recorded
    target = settings.get("target", "wolf")
    files = sorted({e.file for e in read_labels(bench / "labels.csv") if e.split == "train"})
    out = []
    for holdout in files if loro else [None]:
        before = len(calls)
        _, results, events = _run(bench, "LOGMEL", cache, holdout=holdout, **settings)
        marked = [
            b - a
            for f, evs in _events(bench, "train", target=target).items()
            if holdout is None or f != str(bench / holdout)
            for a, b in evs
        ]
        d = statistics.median(marked) if settings.get("spans") and marked else None
        call = calls[-1] if len(calls) > before else None
        out.append((call, results, events, d))
    return out


def _strict(results: dict[str, Any], events: dict[str, Any]) -> dict[str, float]:
    """Boundary quality: event F1 at IoU >= 0.5 and 0.7 (one-to-one), and the mean over
    events of their best IoU with a detection (0 when none overlaps)."""
    tp = {0.5: 0, 0.7: 0}
    n_det = n_ev = 0
    best: list[float] = []
    for key, r in results.items():
        dets = [(d.start, d.end) for d in r.detections()]
        refs = list(events.get(key, ()))
        n_det, n_ev = n_det + len(dets), n_ev + len(refs)
        if not refs:
            continue
        if not dets:
            best.extend([0.0] * len(refs))
            continue
        iou = iou_matrix(refs, dets)
        best.extend(iou.max(axis=1).tolist())
        for t in tp:
            tp[t] += max_matching(iou >= t, iou)
    out = {f"f1_iou{t}": round(2 * k / max(n_det + n_ev, 1), 3) for t, k in tp.items()}
    out["mean_best_iou"] = round(statistics.fmean(best), 3) if best else 0.0
    return out


def rescore(
    fits: Sequence[tuple[Call | None, dict[str, Any], dict[str, Any]]],
    posts: Sequence[Postprocessing],
) -> tuple[dict[str, Any], list[float]]:
    """Every fit's scans detected with its post-processing of ``posts`` at the threshold
    re-chosen on that fit's cross-validation folds (its own when none were recorded),
    pooled: the event metrics, boundary quality (:func:`_strict`) and the thresholds."""
    results: dict[str, Any] = {}
    events: dict[str, Any] = {}
    thresholds = []
    for (call, res, ev), post in zip(fits, posts, strict=True):
        if call is None:
            t = next(iter(res.values())).threshold
        else:
            folds, _, a, kw = call
            t = choose_threshold(folds, post, *a, **kw).value
        thresholds.append(round(t, 3))
        results.update(
            {k: attrs.evolve(r, threshold=t, postprocessing=post) for k, r in res.items()}
        )
        events.update(ev)
    e = evaluate(results, events).as_dict()
    keys = "iou_precision iou_recall iou_f1 lenient_f1 flagged_fraction mean_detection_seconds"
    row: dict[str, Any] = {k: round(float(e[k]), 3) for k in keys.split()}
    row.update(_strict(results, events))
    return row, thresholds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--target", default="wolf")
    ap.add_argument("--spans", action="store_true")
    ap.add_argument("--loro", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(RULES))
        return 0
    logging.basicConfig(level=logging.ERROR)
    # the scanner's own post-processing is the base every rule starts from
    settings: dict[str, Any] = {"target": args.target, "spans": args.spans}
    settings["post_from_spans"] = False
    settings.update(dict(_parse_setting(s) for s in args.set))
    fits = _fits(args.bench, EmbeddingCache(args.cache), args.loro, settings)
    for name in args.rules.split(","):
        rule = RULES[name]
        posts = []
        for _, res, _, d in fits:
            base = next(iter(res.values())).postprocessing
            posts.append(base if d is None else attrs.evolve(base, **rule(d, base)))
        metrics, thresholds = rescore([f[:3] for f in fits], posts)
        row: dict[str, Any] = {"rule": name, **metrics}
        row.update(
            D=[None if d is None else round(d, 2) for *_, d in fits],
            thresholds=thresholds,
            post=posts[0].as_dict(),
            split="train loro" if args.loro else "test",
        )
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

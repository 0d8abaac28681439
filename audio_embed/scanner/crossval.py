"""Cross-validating the detection threshold of :meth:`Scanner.fit`.

Folds come from :func:`audio_embed.threshold.fold_plan` (leave one recording
out, or folds over the markers of a single recording); a held-out marker's
windows are labelled soft in its fold, so they are neither positives nor
negatives there, and the event F1 of each threshold is scored on the
held-out markers (a recording that is not complete,
``Recording(complete=False)``, is in every fold's training set and never
held out); :func:`audio_embed.threshold.choose_threshold` picks the
threshold from that F1 curve (by default its best point once smoothed over
thresholds as widely as the folds disagree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np
from sklearn.base import clone

from audio_embed.cache import CachedEmbeddings
from audio_embed.detect import Postprocessing
from audio_embed.progress import CancelToken
from audio_embed.scanner.augmented import AugmentedPool, fold_kept
from audio_embed.threshold import (
    FEW_MATCHES,
    FoldScores,
    ThresholdChoice,
    choose_threshold,
    fold_plan,
)
from audio_embed.windows import Markers, nearest_index

if TYPE_CHECKING:
    from audio_embed.scanner.core import Recording, Scanner

__all__ = ["FEW_MATCHES", "ONE_RECORDING_RULE", "cross_validated_threshold"]


def cross_validated_threshold(
    scanner: Scanner,
    recs: list[Recording],
    grids: list[tuple[CachedEmbeddings, np.ndarray]],
    cancel: CancelToken | None,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    augmented: AugmentedPool | None = None,
    choose_by: int | None = None,
    post: Postprocessing | None = None,
) -> ThresholdChoice:
    """The threshold ``Scanner.fit`` chooses by cross-validation over its training
    recordings (see :mod:`audio_embed.threshold`): each fold refits a clone of the
    scanner's classifier without its held-out markers and scores them. ``extra``
    (pseudo-labelled windows, :mod:`~audio_embed.scanner.adapt`) joins every fold's
    training set; of ``augmented`` (:mod:`~audio_embed.scanner.augmented`) each fold
    gets the units of its kept markers mixed into its kept recordings, and every
    fold's automatic estimator is chosen by ``choose_by`` positive windows (the final
    fit's count, so that the threshold is chosen for the estimator that scans; by its
    own marked windows a fold could fall below a boundary of
    :meth:`CalibratedClassifier.fit <audio_embed.CalibratedClassifier.fit>`'s choice;
    None: the fold's own marked windows). Without ``augmented`` each fold chooses by
    its own positives (measured better there, README). ``post``: the post-processing
    the folds' detections use (None: the scanner's ``scan_postprocessing``)."""
    post = scanner.scan_postprocessing if post is None else post
    markers = [r.markers.within(e.duration) for r, (e, _) in zip(recs, grids, strict=True)]
    # a recording that is not complete (reviewed answers) is never held out: its
    # unmarked part cannot tell a false positive from an unmarked occurrence, and its
    # answers are no sample of either (README, "Search by example")
    plan = fold_plan(
        [len(m.positive) if r.complete else 0 for r, m in zip(recs, markers, strict=True)],
        scanner.seed,
    )
    by_recording = len({i for fold in plan for i, _ in fold}) > 1
    method = "leave-one-recording-out" if by_recording else "folds over markers"
    folds: list[FoldScores] = []
    for fold in plan:
        held: dict[int, set[int]] = {}
        for i, k in fold:
            held.setdefault(i, set()).add(k)
        xs, ys = [], []
        for i, (entry, grid) in enumerate(grids):
            if by_recording and i in held:
                continue
            m = markers[i]
            out = held.get(i, set())
            keep = [t for k, t in enumerate(m.positive) if k not in out]
            kept = Markers(
                positive=keep,
                soft=m.soft + tuple(m.positive[k] for k in out),
                negative=m.negative,
                spans=[s for t in keep if (s := m.span_of(t)) is not None],
            )
            lw = scanner.labelling_of(recs[i]).windows(entry.duration, kept)
            xs.append(grid[nearest_index(entry.starts, lw.starts)])
            ys.append(lw.labels)
        if extra is not None:
            xs.append(extra[0])
            ys.append(extra[1])
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        if len(np.unique(y)) < 2:
            continue
        if cancel is not None:
            cancel.check()
        clf = clone(scanner.classifier)
        if augmented is None:
            clf.fit(np.concatenate(xs), y)
        else:
            pairs, files = fold_kept(markers, held, by_recording)
            aug = augmented.rows(pairs, files)
            clf.fit(
                np.concatenate([*xs, aug]),
                np.concatenate([y, np.ones(len(aug), y.dtype)]),
                choose_by=int(y.sum()) if choose_by is None else choose_by,
            )
        for i, ks in held.items():
            entry, grid = grids[i]
            m = markers[i]
            half = scanner.scan_windows.window / 2.0
            folds.append(
                FoldScores(
                    starts=entry.starts,
                    probabilities=clf.score_windows(grid),
                    window=scanner.scan_windows.window,
                    duration=entry.duration,
                    references=tuple(
                        m.span_of(m.positive[k]) or (m.positive[k], m.positive[k])
                        for k in sorted(ks)
                    ),
                    ignore=tuple(
                        (t - half, t + half) for k, t in enumerate(m.positive) if k not in ks
                    ),
                )
            )
    if by_recording:
        return choose_threshold(folds, post, method, len(plan))
    # One recording: its folds are draws from the same recording, each holding out a
    # marker or few, so how far their own best thresholds spread says nothing about
    # how the threshold moves to a new recording, the width "smoothed" needs (with one
    # held-out marker a fold's "best" is the middle of a wide plateau, and smoothing
    # by that spread pulled the threshold down: README, "Few markers").
    # With one held-out marker found at the most, at any threshold, the F1 curve is one
    # match or none, and its best point can be the lowest threshold (two horn
    # selections: 0.01, flagging 46 % of new audio; README, "Few markers"): a fallback.
    choice = choose_threshold(folds, post, method, len(plan), rule="argmax", min_matches=2)
    if choice.method == "fallback":
        return choice
    return attrs.evolve(choice, rule=f"{choice.rule} ({ONE_RECORDING_RULE})")


#: Why one recording's folds over markers take the plain best F1 (training summary).
ONE_RECORDING_RULE = (
    "folds over one recording's markers: not smoothed, their disagreement does not "
    "measure how the threshold moves to other recordings"
)

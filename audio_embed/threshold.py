"""Choosing the detection threshold by cross-validation over the training data.

``Scanner.fit(..., threshold="auto")`` (the default) holds out part of the
training data, trains on the rest, scans what was held out and picks the
threshold whose detections best match the held-out markers (event F1):

* several recordings with positive markers: leave one recording out;
* one recording with at least two positive markers: folds over its markers
  (``min(5, n)`` folds, markers assigned by a seeded permutation); the held-out
  markers become *soft* for training (neither positive nor negative), and
  detections over a training marker are ignored when scoring the fold;
* one recording whose folds find at most one held-out marker at any threshold
  (``choose_threshold(..., min_matches=2)``, note :data:`FEW_MATCHES`; two or
  three markers of a hard sound): their F1 curve is one lucky match or none, so
  the threshold comes from the training scores as for one marker (next item),
  and the note says why;
* one positive marker: nothing can be held out; the threshold is set halfway
  between the final classifier's median score on the marked windows and the
  99th percentile of its scores on the negative windows (both in-sample, so
  optimistic), but no higher than the negatives' 99.5th percentile, so that a
  scan still offers its best-scoring moments for review; the summary says so
  (:data:`FALLBACK_THRESHOLD` when even that cannot be computed).

Which threshold, from the pooled held-out event F1 at each candidate
threshold (:func:`f1_curve`; ``rule`` of :func:`choose_threshold`):

* ``"smoothed"`` (default): the F1 curve is averaged over thresholds with a
  Gaussian in log-odds (:func:`smoothed_f1`) and its best point taken. The
  Gaussian is as wide as the folds disagree: the sample standard deviation of
  the log-odds of each fold's own best threshold (:func:`fold_spread`). The
  best threshold for new recordings is another draw of the same kind, so the
  smoothed curve is the F1 to expect there; a narrow spike of the curve (one
  more held-out marker matched by luck) loses to a broad plateau. Without two
  folds that each match a marker, nothing measures the spread and the plain
  best F1 is taken. Measured on the wolf benchmark with
  ``benchmarks/threshold_rules.py`` against the rules below and others (the
  middle of the thresholds within one standard error of the best F1, the
  median of the folds' best thresholds, the best F0.5, smoothing by a fixed
  width in probability) - see the README;
* ``"argmax"`` (the rule before): the best plain F1. ``Scanner.fit`` uses it
  for folds over one recording's markers
  (:func:`audio_embed.scanner.crossval.cross_validated_threshold`): their own
  best thresholds are draws from the same recording, so their spread is no
  width for ``"smoothed"`` (chosen on the wolf benchmark's training split,
  ``benchmarks/wolf_fewshot.py``; README, "Few markers: chosen on the training
  split").

Ties: the middle one. The training summary says which rule and width were used.

A detection matches a held-out point marker when the marker lies inside it
(widened by half a hop); a marker with a duration (an Audacity or Raven
selection) when their intersection over union is at least 0.3. Matching is
one-to-one, as in :mod:`audio_embed.evaluate`.

Limits: unmarked occurrences of the target in the training recordings count
as false positives (mark every occurrence in the recordings you train on, or
the threshold comes out too high); with few markers the cross-validated F1 is
noisy; the final classifier is trained on all the data, so its scores run a
little higher than the held-out ones the threshold was chosen on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from attrs import frozen

from audio_embed.detect import (
    Detection,
    Postprocessing,
    detect,
    format_threshold,
    iou_matrix,
    max_matching,
)
from audio_embed.errors import InvalidInputError

__all__ = [
    "FALLBACK_THRESHOLD",
    "FEW_MATCHES",
    "RULES",
    "F1Curve",
    "FoldScores",
    "Rule",
    "ThresholdChoice",
    "candidate_thresholds",
    "choose_threshold",
    "f1_curve",
    "fold_plan",
    "fold_spread",
    "held_out_counts",
    "mean_choice",
    "pick_threshold",
    "smoothed_f1",
    "threshold_warning",
    "training_threshold",
]

#: Used when cross-validation cannot run (a single positive marker).
FALLBACK_THRESHOLD = 0.5
MAX_MARKER_FOLDS = 5
#: The note of a choice that fell back because the folds matched too few held-out
#: markers at any threshold (``choose_threshold``'s ``min_matches``).
FEW_MATCHES = (
    "folds over one recording's markers found at most one held-out marker at any "
    "threshold: too little to choose by"
)


#: A cross-validated event F1 below this makes the chosen threshold a loud warning
#: (:func:`threshold_warning`): the held-out markers were mostly missed or drowned in
#: false positives at every threshold, so the value is close to a guess.
UNRELIABLE_CV_F1 = 0.5

_WHAT_TO_DO = (
    "Scans may flag much of new audio, or miss the target: check the first scans "
    "(scan warns when detections cover more than a quarter of a file), mark more "
    "occurrences or in more recordings, or set the threshold yourself "
    "(Scanner(threshold=...), audio-embed train/scan --threshold)."
)


@frozen
class FoldScores:
    """One held-out recording of one fold: its window scores and what is marked in it.

    ``references``: held-out positives as ``(start, end)``, a point marker as
    ``(t, t)``. ``ignore``: spans whose detections count neither way (the
    training markers of a marker fold).
    """

    starts: np.ndarray
    probabilities: np.ndarray
    window: float
    duration: float
    references: tuple[tuple[float, float], ...]
    ignore: tuple[tuple[float, float], ...] = ()


@frozen
class ThresholdChoice:
    """The chosen threshold, its cross-validated event F1, and how it was chosen.

    ``draws``: with several augmentation draws, each draw's own threshold (``value``
    is their mean, :func:`mean_choice`); empty otherwise. ``counts``: what the
    folds' detections at ``value`` made of the held-out markers, pooled over the
    folds - ``(found, held_out, unmatched)``: markers found, markers held out, and
    detections that match none (false positives, or occurrences nobody marked) -
    so that ``cv_f1`` can be read; None where no curve was scored (or draws averaged)."""

    value: float
    cv_f1: float | None
    method: str
    folds: int
    note: str = ""
    rule: str = ""
    draws: tuple[float, ...] = ()
    counts: tuple[int, int, int] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "cv_f1": self.cv_f1,
            "method": self.method,
            "folds": self.folds,
            "note": self.note,
            "rule": self.rule,
            "draws": list(self.draws),
            "held_out": None
            if self.counts is None
            else dict(zip(("found", "markers", "unmatched"), self.counts, strict=True)),
        }


def mean_choice(choices: Sequence[ThresholdChoice]) -> ThresholdChoice:
    """One threshold for a classifier that averages one model per augmentation draw:
    the mean of the draws' own cross-validated thresholds (and of their F1). Measured
    as the wolf benchmark's draw ensemble (README, "Several draws averaged"). A draw
    that fell back makes the whole choice fall back (the caller then takes it from the
    averaged classifier's training scores). The rule is the first draw's (each draw
    smooths by its own folds' spread); the notes of every draw are kept."""
    if len(choices) == 1:
        return choices[0]
    first = choices[0]
    fallback = next((c for c in choices if c.method == "fallback"), None)
    if fallback is not None:
        return fallback
    f1s = [c.cv_f1 for c in choices]
    values = tuple(c.value for c in choices)
    notes = [f"draw {k}: {c.note}" for k, c in enumerate(choices) if c.note]
    return ThresholdChoice(
        round(float(np.mean(values)), 4),
        None if None in f1s else float(np.mean([f for f in f1s if f is not None])),
        first.method,
        first.folds,
        "; ".join(notes),
        f"{first.rule}; the mean of {len(choices)} augmentation draws' thresholds",
        values,
    )


def threshold_warning(choice: ThresholdChoice) -> str:
    """A warning to log (and keep in the training summary) when ``choice`` is not a
    cross-validated threshold one can trust; "" when it is, or when it was given.

    Loud are: a threshold taken from the training scores or the fixed fallback (no
    cross-validation: one marker, or folds that matched at most one held-out marker;
    with two or three markers of a hard sound it can come out near 0.01 and flag most
    of new audio), and a cross-validated one whose held-out event F1 is below
    :data:`UNRELIABLE_CV_F1`."""
    if choice.method == "given":
        return ""
    if choice.cv_f1 is None:
        why = (
            "the folds over the markers found at most one held-out marker"
            if choice.note.startswith(FEW_MATCHES)
            else choice.note.split(":", 1)[0] or "nothing to hold out"
        )
        source = (
            "the library's fixed fallback"
            if choice.method == "fallback"
            else "the training scores (in-sample, optimistic)"
        )
        return (
            f"The detection threshold {format_threshold(choice.value)} is not "
            f"cross-validated ({why}); it comes from {source}. {_WHAT_TO_DO}"
        )
    if choice.cv_f1 < UNRELIABLE_CV_F1:
        return (
            f"The detection threshold {format_threshold(choice.value)} is unreliable: at "
            f"it, cross-validation ({choice.method}) found the held-out markers with event "
            f"F1 {choice.cv_f1:.2f} only (below {UNRELIABLE_CV_F1:g})"
            f"{_why_low(choice.counts)}. {_WHAT_TO_DO}"
        )
    return ""


def held_out_counts(counts: tuple[int, int, int]) -> str:
    """``counts`` of a :class:`ThresholdChoice` in words: "2 of 2 held-out markers
    found, 16 detection(s) matching no marker"."""
    found, held_out, unmatched = counts
    return (
        f"{found} of {held_out} held-out marker(s) found, "
        f"{unmatched} detection(s) matching no marker"
    )


def _why_low(counts: tuple[int, int, int] | None) -> str:
    """What a low cross-validated F1 was made of, and the likely cause when the
    held-out markers were found among many detections that match no marker: an
    occurrence nobody marked in a marked recording is such a detection (and was
    trained as a negative), the usual case when a few moments of a long recording
    are marked."""
    if counts is None:
        return ""
    found, held_out, unmatched = counts
    said = f": {held_out_counts(counts)}"
    if found * 2 >= held_out and unmatched > found:
        said += (
            ". If the marked recordings hold occurrences you did not mark, they are among "
            "those (and were trained as 'not the sound'): mark every occurrence in each "
            "recording you mark"
        )
    return said


def fold_plan(positives_per_recording: Sequence[int], seed: int) -> list[list[tuple[int, int]]]:
    """Which positive markers each fold holds out, as ``(recording, marker index)`` lists.

    Leave-one-recording-out when at least two recordings have positives;
    folds over markers when only one has (two or more); none otherwise.
    """
    with_pos = [i for i, n in enumerate(positives_per_recording) if n > 0]
    if len(with_pos) >= 2:
        return [[(i, k) for k in range(positives_per_recording[i])] for i in with_pos]
    if len(with_pos) == 1 and positives_per_recording[with_pos[0]] >= 2:
        i = with_pos[0]
        n = positives_per_recording[i]
        k = min(MAX_MARKER_FOLDS, n)
        order = np.random.default_rng(seed).permutation(n)
        return [[(i, int(m)) for m in sorted(order[f::k])] for f in range(k)]
    return []


def _matches(refs: Sequence[tuple[float, float]], dets: Sequence[Detection], slack: float) -> int:
    if not refs or not dets:
        return 0
    spans = [(d.start, d.end) for d in dets]
    iou = iou_matrix(refs, spans)
    r = np.asarray(refs, dtype=np.float64)
    s = np.asarray(spans, dtype=np.float64)
    point = (r[:, 1] - r[:, 0]) <= 1e-9
    inside = (r[:, None, 0] >= s[None, :, 0] - slack) & (r[:, None, 0] <= s[None, :, 1] + slack)
    allowed = np.where(point[:, None], inside, iou >= 0.3)
    return max_matching(allowed, iou)


def _counts(fold: FoldScores, threshold: float, post: Postprocessing) -> tuple[int, int, int]:
    dets = detect(fold.starts, fold.probabilities, fold.window, threshold, fold.duration, post)
    dets = [d for d in dets if not any(d.start < b and a < d.end for a, b in fold.ignore)]
    hop = float(np.median(np.diff(fold.starts))) if len(fold.starts) > 1 else fold.window
    tp = _matches(fold.references, dets, hop / 2.0)
    return tp, len(dets) - tp, len(fold.references) - tp


def candidate_thresholds(probabilities: np.ndarray) -> np.ndarray:
    """A grid over (0, 1) plus the upper quantiles of the held-out scores."""
    grid = np.linspace(0.02, 0.98, 49)
    if len(probabilities):
        q = np.quantile(probabilities, np.linspace(0.5, 0.999, 40))
        grid = np.concatenate([grid, q])
    return np.unique(np.clip(np.round(grid, 4), 0.01, 0.99))


def training_threshold(
    positive: np.ndarray, negative: np.ndarray, why: str = "one positive marker"
) -> ThresholdChoice:
    """Halfway between the median positive and the 99th percentile negative training score,
    at most the negatives' 99.5th percentile. ``why``: why there is no cross-validation
    (the start of the choice's note)."""
    if len(positive) == 0 or len(negative) == 0:
        return choose_threshold([], Postprocessing(), "", 0)
    mid = 0.5 * (float(np.median(positive)) + float(np.quantile(negative, 0.99)))
    mid = min(mid, float(np.quantile(negative, 0.995)))
    value = float(np.clip(round(mid, 4), 0.01, 0.99))
    return ThresholdChoice(
        value,
        None,
        "from training scores",
        0,
        f"{why}: no cross-validation; halfway between the marked windows' "
        "median score and the 99th percentile of the negatives' (in-sample), at most "
        "the negatives' 99.5th percentile",
    )


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Event F1 from counts, elementwise (0 where nothing matched)."""
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


@frozen
class F1Curve:
    """Event counts of the held-out markers at each candidate threshold.

    ``tp``, ``fp``, ``fn``: arrays of shape ``(n_folds, n_thresholds)``, one
    row per :class:`FoldScores`; :meth:`f1` pools them over the folds.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    def f1(self) -> np.ndarray:
        """The pooled event F1 at each threshold (0 where nothing matched)."""
        return _f1(self.tp.sum(0), self.fp.sum(0), self.fn.sum(0))

    @property
    def n_references(self) -> int:
        """How many held-out markers the folds have in all."""
        return int(self.tp[:, 0].sum() + self.fn[:, 0].sum()) if self.tp.size else 0


def f1_curve(
    folds: Sequence[FoldScores], post: Postprocessing, thresholds: np.ndarray | None = None
) -> F1Curve:
    """Held-out event counts of ``folds`` at ``thresholds`` (default:
    :func:`candidate_thresholds` of their pooled scores)."""
    if thresholds is None:
        thresholds = candidate_thresholds(np.concatenate([f.probabilities for f in folds]))
    counts = np.array(
        [[_counts(fold, float(t), post) for t in thresholds] for fold in folds], dtype=np.int64
    ).reshape(len(folds), len(thresholds), 3)
    return F1Curve(np.asarray(thresholds), counts[..., 0], counts[..., 1], counts[..., 2])


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(q / (1 - q))


def _middle_of_best(values: np.ndarray) -> int:
    best = np.flatnonzero(values >= values.max() - 1e-12)
    return int(best[len(best) // 2])


def fold_spread(curve: F1Curve) -> float | None:
    """How far the best threshold moves between folds: the sample standard
    deviation, in log-odds, of each fold's own best threshold (folds that match
    no marker at any threshold left out); None with fewer than two such folds."""
    per_fold = _f1(curve.tp, curve.fp, curve.fn)
    best = [curve.thresholds[_middle_of_best(row)] for row in per_fold if row.max() > 0]
    if len(best) < 2:
        return None
    return float(np.std(_logit(np.asarray(best)), ddof=1))


def smoothed_f1(curve: F1Curve, sigma: float) -> np.ndarray:
    """The pooled F1 averaged over thresholds with a Gaussian of ``sigma`` in
    log-odds: at each threshold, the F1 expected when the best threshold for
    new data lies that far off (the curve is a step function of the threshold,
    each candidate weighted by the log-odds interval it stands for)."""
    x = _logit(curve.thresholds)
    edges = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2, [x[-1]]])
    width = np.maximum(np.diff(edges), 1e-9)
    kernel = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2) * width[None, :]
    return np.asarray(kernel @ curve.f1() / kernel.sum(1))


#: How :func:`choose_threshold` picks from the cross-validated F1 curve.
Rule = Literal["smoothed", "argmax"]
RULES: tuple[Rule, ...] = ("smoothed", "argmax")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise InvalidInputError(
            f"The 'rule' of choose_threshold must be one of {RULES}. Got {rule!r} instead."
        )


def choose_threshold(
    folds: Sequence[FoldScores],
    post: Postprocessing,
    method: str,
    n_folds: int,
    rule: Rule = "smoothed",
    min_matches: int = 0,
) -> ThresholdChoice:
    """The threshold ``rule`` picks from the pooled held-out event F1 of ``folds``.

    ``"smoothed"`` (default): the best F1 once the curve is averaged over a
    Gaussian in log-odds as wide as the folds disagree about the best
    threshold (:func:`fold_spread`, :func:`smoothed_f1`); the best plain F1
    when fewer than two folds found a marker. ``"argmax"``: the best plain F1.
    Ties: the middle one. ``cv_f1`` is the plain pooled F1 at the threshold chosen.
    ``min_matches``: when the folds match fewer held-out markers than this at every
    threshold, a ``"fallback"`` choice noted :data:`FEW_MATCHES` instead.
    """
    _check_rule(rule)
    if not folds:
        return ThresholdChoice(
            FALLBACK_THRESHOLD,
            None,
            "fallback",
            0,
            "cross-validation needs two positive markers or more; using "
            + format_threshold(FALLBACK_THRESHOLD),
        )
    curve = f1_curve(folds, post)
    if curve.tp.sum(0).max() < min_matches:
        return ThresholdChoice(FALLBACK_THRESHOLD, None, "fallback", n_folds, FEW_MATCHES)
    i, how = pick_threshold(curve, rule)
    f1s = curve.f1()
    note = "" if f1s.max() > 0 else "no held-out marker was found at any threshold"
    tp, fp, fn = (int(a[:, i].sum()) for a in (curve.tp, curve.fp, curve.fn))
    return ThresholdChoice(
        float(curve.thresholds[i]), float(f1s[i]), method, n_folds, note, how, (), (tp, tp + fn, fp)
    )


def pick_threshold(curve: F1Curve, rule: Rule = "smoothed") -> tuple[int, str]:
    """The index into ``curve.thresholds`` that ``rule`` picks (see
    :func:`choose_threshold`), and a sentence saying how it was picked."""
    _check_rule(rule)
    spread = fold_spread(curve) if rule == "smoothed" else None
    if spread is not None and spread > 0:
        how = (
            f"best event F1 smoothed over thresholds (a Gaussian of {spread:.2f} in log-odds: "
            "the spread of the folds' own best thresholds)"
        )
        return _middle_of_best(smoothed_f1(curve, spread)), how
    how = "best event F1"
    if rule == "smoothed":
        how += " (not smoothed: fewer than two folds disagree on a best threshold)"
    return _middle_of_best(curve.f1()), how

"""Self-training on the recordings to be scanned (:meth:`Scanner.adapt`).

A first scan of each recording gives detections; the best ``top`` of each
recording become extra positive markers (pseudo-labels), and its windows far
from every detection that score at most the recording's ``negative_quantile``
become extra negatives. The classifier is refitted on the marked training
windows plus these, the threshold chosen again as ``fit`` chose it (the
pseudo-labelled windows join every cross-validation fold's training set; the
folds are still scored on the marked recordings only), and the recordings are
scanned again by the refitted scanner. A new take of the target that scores
moderately somewhere is pulled in, and with it its repeats elsewhere.

Measured on the wolf benchmark (README, "Recall and few-shot"): it helps with
few markers, where a wrong pseudo-label costs less than the missing examples;
it does not help with many.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import numpy as np
from attrs import frozen

from audio_embed.cache import CachedEmbeddings
from audio_embed.detect import Postprocessing, detect
from audio_embed.errors import InvalidInputError, TrainingDataError
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent
from audio_embed.types import check_sample_rate
from audio_embed.windows import Markers, TargetedWindows, nearest_index

if TYPE_CHECKING:
    from audio_embed.scanner.augmented import AugmentedPool
    from audio_embed.scanner.core import Scanner
    from audio_embed.scanner.streaming import Source

_S = TypeVar("_S", bound="Scanner")

__all__ = [
    "FitData",
    "PseudoLabels",
    "adapt_scanner",
    "check_adapt_options",
    "pseudo_labels",
]


@frozen(eq=False)
class FitData:
    """What :meth:`Scanner.fit` trained on, kept in memory so that ``adapt`` can refit.

    ``grids``: each recording's sliding-window embeddings and classifier
    features; ``X``, ``y``: the labelled training windows; ``threshold``: the
    setting ``fit`` used (``"auto"`` or a number); ``augmented``: the
    :class:`~audio_embed.scanner.augmented.AugmentedPool` of each draw of
    ``augmentation`` (empty: none was made, as in ``fit_from_index``).
    """

    recordings: tuple[Any, ...]
    grids: tuple[tuple[CachedEmbeddings, np.ndarray], ...]
    X: np.ndarray
    y: np.ndarray
    per_file: tuple[dict[str, Any], ...]
    threshold: float | Literal["auto"]
    augmented: tuple[AugmentedPool, ...] = ()


@frozen(eq=False)
class PseudoLabels:
    """Pseudo-labelled windows of one scanned recording.

    ``index``: rows of the recording's sliding-window grid; ``labels``: 1 or 0
    for each; ``detections``: how many detections the first scan gave;
    ``peaks``: the moments (detection peaks) used as positive markers.
    """

    index: np.ndarray
    labels: np.ndarray
    detections: int
    peaks: tuple[float, ...]


def check_adapt_options(top: object, rounds: object, negative_quantile: object) -> None:
    """:class:`InvalidInputError` unless ``top`` and ``rounds`` are integers >= 1 and
    ``negative_quantile`` a number in [0, 1]."""
    for name, value in (("top", top), ("rounds", rounds)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InvalidInputError(
                f"The '{name}' parameter of Scanner.adapt must be an integer >= 1. "
                f"Got {value!r} instead."
            )
    q = negative_quantile
    if (
        isinstance(q, bool)
        or not isinstance(q, numbers.Real)
        or not (math.isfinite(float(q)) and 0.0 <= float(q) <= 1.0)
    ):
        raise InvalidInputError(
            "The 'negative_quantile' parameter of Scanner.adapt must be a number in [0, 1]. "
            f"Got {q!r} instead."
        )


def pseudo_labels(
    entry: CachedEmbeddings,
    scores: np.ndarray,
    *,
    window: float,
    threshold: float,
    postprocessing: Postprocessing,
    train_windows: TargetedWindows,
    top: int,
    negative_quantile: float,
) -> PseudoLabels:
    """Pseudo-labels for one recording from its window ``scores`` (see the module doc).

    The ``top`` best detections at ``threshold`` become positive markers at
    their peaks, labelled as ``train_windows`` labels marked moments; the
    other detections become soft markers (never negatives); the negatives that
    ``train_windows`` then gives are kept only where the window scores at most
    the ``negative_quantile`` of the recording's scores. No detection: nothing.
    """
    dets = detect(entry.starts, scores, window, threshold, entry.duration, postprocessing)
    if not dets:
        return PseudoLabels(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, ())
    ranked = sorted(dets, key=lambda d: (-d.score, d.peak))
    chosen, rest = ranked[:top], ranked[top:]
    markers = Markers(
        positive=[d.peak for d in chosen], soft=[t for d in rest for t in (d.start, d.end)]
    )
    labelled = train_windows.windows(entry.duration, markers)
    index = nearest_index(entry.starts, labelled.starts)
    labels = labelled.labels.astype(np.int64)
    cut = float(np.quantile(scores, negative_quantile))
    keep = (labels == 1) | (scores[index] <= cut)
    return PseudoLabels(index[keep], labels[keep], len(dets), tuple(d.peak for d in chosen))


def adapt_scanner(
    scanner: _S,
    sources: Iterable[Source],
    *,
    top: int,
    rounds: int,
    negative_quantile: float,
    sample_rate: int | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> _S:
    """:meth:`Scanner.adapt` (its docstring says what this does and raises)."""
    scanner._check_fitted()
    check_adapt_options(top, rounds, negative_quantile)
    data = scanner._fit_data
    if data is None:
        raise TrainingDataError(
            "adapt() refits on the training windows, which only a scanner trained by "
            "fit() in this session holds (a loaded scanner does not): fit it first."
        )
    rate = None if sample_rate is None else check_sample_rate(sample_rate, "Scanner.adapt")
    items = [(s, rate if isinstance(s, np.ndarray) else None) for s in sources]
    if not items:
        raise InvalidInputError("adapt() needs at least one recording to adapt to.")
    files = [Path(s) for s, _ in items if not isinstance(s, np.ndarray)]
    trained_on = {Path(r.source).resolve() for r in data.recordings if r.label != "<array>"}
    again = [str(f) for f in files if f.resolve() in trained_on]
    if again:
        raise InvalidInputError(
            f"adapt() learns from recordings without markers; {again[0]} is a training "
            "recording (its markers are already used). Pass only the files to scan."
        )
    entries = []
    for i, entry in scanner._embeddings_many(items, progress, cancel):
        if isinstance(entry, Exception):
            raise entry
        entries.append((entry, scanner._scan_features(entry)))
        if progress is not None:
            source = items[i][0]
            label = "<array>" if isinstance(source, np.ndarray) else str(source)
            progress(ProgressEvent("train-files", label, i + 1, len(items), "files"))
    current = scanner
    for _ in range(rounds):
        current = _adapt_round(current, data, entries, top, negative_quantile, rounds, cancel)
    return current


def _adapt_round(
    scanner: _S,
    data: FitData,
    entries: list[tuple[CachedEmbeddings, np.ndarray]],
    top: int,
    negative_quantile: float,
    rounds: int,
    cancel: CancelToken | None,
) -> _S:
    """One round of :meth:`Scanner.adapt`: pseudo-label ``entries`` with ``scanner``,
    refit a copy."""
    xs, ys, peaks, dets = [], [], 0, 0
    for entry, features in entries:
        labels = pseudo_labels(
            entry,
            scanner.classifier.score_windows(features),
            window=scanner.scan_windows.window,
            threshold=scanner.scan_threshold,
            postprocessing=scanner.scan_postprocessing,
            train_windows=scanner.train_windows,
            top=top,
            negative_quantile=negative_quantile,
        )
        xs.append(features[labels.index])
        ys.append(labels.labels)
        peaks, dets = peaks + len(labels.peaks), dets + labels.detections
    y = np.concatenate(ys)
    adapted = attrs.evolve(scanner)
    adapted._fit_arrays(
        data,
        cancel,
        (np.concatenate(xs), y),
        {
            "recordings": len(entries),
            "rounds": rounds,
            "top": top,
            "negative_quantile": negative_quantile,
            "first_scan_detections": dets,
            "pseudo_positive_markers": peaks,
            "pseudo_positive_windows": int(y.sum()),
            "pseudo_negative_windows": int(len(y) - y.sum()),
        },
    )
    return adapted

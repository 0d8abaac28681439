"""Detection quality: event precision / recall / F1, window ROC AUC, calibration.

Three event scores, from strict to lenient:

* **IoU** (``iou_*``): the one-to-one matching of the DCASE few-shot
  bioacoustic task (2021 onwards): a detection and a labelled event may pair
  when their intersection over union is at least ``iou`` (0.3); each event and
  each detection pairs at most once, and the pairing with the most pairs is
  taken (a bipartite matching, :func:`scipy.optimize.linear_sum_assignment`).
* **Collar** (``collar_*``): the event-based F1 of ``sed_eval``: a pair counts
  when the onsets differ by at most ``t_collar`` (0.2 s) and the offsets by at
  most ``max(t_collar, 0.5 * event length)``; one-to-one, optimal matching as
  ``sed_eval``'s default (``event_matching_type="optimal"``). Written here
  (``sed_eval`` 0.2.1 is from 2018 and pulls ``dcase_util`` and its audio
  stack); a dev test cross-checks it against ``sed_eval`` when installed.
* **Lenient** (``precision``, ``recall``, ``f1``): a labelled event is
  *found* when any detection overlaps it; a detection that overlaps no event
  is a *false positive*. One long detection can "find" many events, so read it
  with ``flagged_fraction``.

A window is labelled positive when it overlaps a target event.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from attrs import frozen

from audio_embed.detect import as_spans, iou_matrix, max_matching
from audio_embed.errors import MarkerError
from audio_embed.scanner import Detection, ScanResult

log = logging.getLogger(__name__)

__all__ = [
    "Evaluation",
    "LabelledEvent",
    "collar_matches",
    "evaluate",
    "iou_matches",
    "iou_matrix",
    "read_labels",
]

#: DCASE task 5: a detection and an event pair when their IoU is at least this.
IOU_THRESHOLD = 0.3
#: sed_eval's defaults for the event-based metrics.
T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.5


@frozen
class LabelledEvent:
    """One row of a labels CSV (``split,file,onset,offset,label``)."""

    file: str
    onset: float
    offset: float
    label: str
    split: str = ""


def _label_track_hint(header: list[str]) -> str:
    """For a "header" that is an Audacity label line (start, end, label: no header)."""
    from audio_embed.formats import decimal_point

    try:
        float(decimal_point(header[0]))
    except (IndexError, ValueError):
        return ""
    return (
        " It looks like an Audacity label track (start, end, label; no header): the "
        "labels are one CSV for every labelled recording, a row per event "
        "(split,file,onset,offset,label: test,rec.mp4,3.85,4.30,gag)."
    )


def read_labels(path: str | os.PathLike[str]) -> list[LabelledEvent]:
    """Read a labels CSV with columns ``file,onset,offset,label`` (and optionally ``split``):
    comma-, ``;``- (decimal commas) or tab-separated, as
    :func:`~audio_embed.formats.read_markers` reads them."""
    from audio_embed.formats import (
        clock_seconds,
        csv_blank_row,
        csv_comment_row,
        csv_duplicate_columns,
        csv_extra_fields,
        csv_headerless_hint,
        csv_number,
        csv_separator,
        csv_table,
        read_text_file,
    )

    p = Path(path)
    try:
        text, above, commented = csv_table(read_text_file(p, "labels"))
        sep = csv_separator(text)
        reader = csv.DictReader(io.StringIO(text), delimiter=sep)
        used = ("split", "file", "onset", "offset", "label")
        csv_duplicate_columns(reader.fieldnames, str(p), used)
        rows = []
        for raw in reader:
            n = above + reader.line_num
            if csv_blank_row(raw):  # before: "the file column is empty", of ",,," rows
                continue
            if csv_comment_row(raw, reader.fieldnames or [], ("onset", "offset"), sep):
                continue  # before: "bad label row"
            csv_extra_fields(raw, f"{p}, line {n}", sep)
            rows.append((n, {(k or "").strip().lower(): v for k, v in raw.items()}))
        header = [f.strip().lower() for f in reader.fieldnames or []]
    except csv.Error as exc:
        raise MarkerError(f"Cannot read labels file {p}: {exc}") from exc
    missing = [c for c in ("file", "onset", "offset", "label") if c not in header]
    if missing:  # e.g. a markers CSV (file,time,kind) given as labels
        raise MarkerError(
            f"{p}: a labels CSV needs the columns [split,]file,onset,offset,label; "
            f"missing {', '.join(missing)}. Found: {', '.join(header) or 'none'}.{commented}"
            + (
                _label_track_hint(header)
                or csv_headerless_hint(
                    reader.fieldnames,
                    sep,
                    ("split,file,onset,offset,label", "file,onset,offset,label"),
                )
            )
        )
    out = []
    for n, row in rows:
        if not (row.get("file") or "").strip():  # else the labels' own folder is "scanned"
            raise MarkerError(f"{p}, line {n}: the file column is empty.")
        try:
            onset = clock_seconds(csv_number(row["onset"], sep))
            offset = clock_seconds(csv_number(row["offset"], sep))
            if not (math.isfinite(onset) and math.isfinite(offset)) or offset < onset:
                raise ValueError("onset/offset must be finite with offset >= onset")
            if onset < 0:  # as marker times: before the recording, never found
                raise ValueError("onset must be >= 0 (seconds from the recording's start)")
            out.append(  # cells stripped, as a markers CSV's (before: "wolf " of a
                LabelledEvent(  # spreadsheet was another label than "wolf", left out)
                    file=row["file"].strip(),
                    onset=onset,
                    offset=offset,
                    label=(row["label"] or "").strip(),
                    split=(row.get("split") or "").strip(),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MarkerError(f"{p}, line {n}: bad label row {row!r} ({exc}).") from exc
    return out


@frozen
class Evaluation:
    """Scores of a scanner on labelled recordings."""

    n_events: int
    n_found: int
    n_detections: int
    n_false_positives: int
    precision: float
    recall: float
    f1: float
    window_auc: float
    window_ap: float
    brier: float
    ece: float
    minutes: float
    flagged_minutes: float = 0.0
    iou_true_positives: int = 0
    collar_true_positives: int = 0
    mean_detection_seconds: float = float("nan")
    mean_event_seconds: float = float("nan")

    @property
    def iou_precision(self) -> float:
        """Share of detections paired one-to-one with an event at IoU >= 0.3."""
        return _ratio(self.iou_true_positives, self.n_detections)

    @property
    def iou_recall(self) -> float:
        return _ratio(self.iou_true_positives, self.n_events)

    @property
    def iou_f1(self) -> float:
        return _f1(self.iou_precision, self.iou_recall)

    @property
    def collar_precision(self) -> float:
        """Share of detections paired with an event within sed_eval's onset/offset collars."""
        return _ratio(self.collar_true_positives, self.n_detections)

    @property
    def collar_recall(self) -> float:
        return _ratio(self.collar_true_positives, self.n_events)

    @property
    def collar_f1(self) -> float:
        return _f1(self.collar_precision, self.collar_recall)

    @property
    def false_positives_per_minute(self) -> float:
        return self.n_false_positives / self.minutes if self.minutes else 0.0

    @property
    def flagged_fraction(self) -> float:
        """Share of the audio covered by detections: 1.0 means "everything is the target".

        Event F1 alone rewards a few huge detections (one region covering a whole
        file finds every event with no false positive); read it with this.
        """
        return self.flagged_minutes / self.minutes if self.minutes else 0.0

    def as_dict(self) -> dict[str, float]:
        from attrs import asdict

        d = asdict(self)
        d["false_positives_per_minute"] = self.false_positives_per_minute
        d["flagged_fraction"] = self.flagged_fraction
        for kind in ("iou", "collar"):
            for name in ("precision", "recall", "f1"):
                d[f"{kind}_{name}"] = getattr(self, f"{kind}_{name}")
        d["lenient_precision"], d["lenient_recall"], d["lenient_f1"] = (
            self.precision,
            self.recall,
            self.f1,
        )
        return d


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def iou_matches(
    events: Sequence[tuple[float, float]],
    detections: Sequence[tuple[float, float]],
    iou: float = IOU_THRESHOLD,
) -> int:
    """Pairs of a maximum one-to-one matching of events to detections with IoU >= ``iou``.

    As the DCASE few-shot bioacoustic event detection evaluation (task 5,
    2021 onwards): true positives; false positives are ``len(detections)``
    minus it, false negatives ``len(events)`` minus it.
    """
    m = iou_matrix(events, detections)
    return max_matching(m >= iou, m)


def collar_matches(
    events: Sequence[tuple[float, float]],
    detections: Sequence[tuple[float, float]],
    t_collar: float = T_COLLAR,
    percentage_of_length: float = PERCENTAGE_OF_LENGTH,
) -> int:
    """Pairs matched within onset/offset collars, as ``sed_eval``'s event-based metrics.

    An event and a detection may pair when ``|onset difference| <= t_collar``
    and ``|offset difference| <= max(t_collar, percentage_of_length * event
    length)``; one-to-one, maximum matching.
    """
    ref, est = as_spans(events), as_spans(detections)
    onset_gap = np.abs(ref[:, None, 0] - est[None, :, 0])
    offset_gap = np.abs(ref[:, None, 1] - est[None, :, 1])
    collar = np.maximum(t_collar, percentage_of_length * (ref[:, 1] - ref[:, 0]))[:, None]
    allowed = (onset_gap <= t_collar + 1e-9) & (offset_gap <= collar + 1e-9)
    return max_matching(allowed, -(onset_gap + offset_gap))


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 < b1 and b0 < a1


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |accuracy - confidence| over equal-width probability bins."""
    if len(y) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            err += m.mean() * abs(float(y[m].mean()) - float(p[m].mean()))
    return float(err)


def _check_keys(
    results: Mapping[str, ScanResult],
    events: Mapping[str, Sequence[tuple[float, float]]],
    unmatched: str,
) -> None:
    if unmatched not in ("warn", "error", "ignore"):
        raise MarkerError(
            "The 'unmatched' parameter of evaluate must be 'warn', 'error' or 'ignore'. "
            f"Got {unmatched!r} instead."
        )
    no_result = sorted(set(events) - set(results))
    no_events = sorted(set(results) - set(events)) if events else []
    if unmatched == "ignore" or not (no_result or no_events):
        return

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + ("…" if len(keys) > 5 else "")

    parts = []
    if no_result:
        parts.append(
            f"{len(no_result)} labelled file(s) have no result ({some(no_result)}): "
            "their events are left out"
        )
    if no_events:
        parts.append(
            f"{len(no_events)} result(s) have no labels ({some(no_events)}): they count "
            "as recordings without the target"
        )
    message = "evaluate: " + "; ".join(parts) + ". Name results and labels alike."
    if unmatched == "error":
        raise MarkerError(message)
    log.warning("%s", message)


def _check_events(
    results: Mapping[str, ScanResult], events: Mapping[str, Sequence[tuple[float, float]]]
) -> None:
    """Warn about labelled events no detection can match as meant: past the end of their
    recording, without length, or listed twice. They are scored as given."""
    beyond: list[str] = []
    empty: list[str] = []
    twice: list[str] = []
    for key, result in results.items():
        seen: set[tuple[float, float]] = set()
        for a, b in events.get(key, ()):
            where = f"{key} {a:g}-{b:g} s"
            if a >= result.duration:
                beyond.append(f"{where} (the recording is {result.duration:g} s long)")
            if b <= a:
                empty.append(where)
            if (a, b) in seen:
                twice.append(where)
            seen.add((a, b))

    def some(items: list[str]) -> str:
        return "; ".join(items[:3]) + ("; …" if len(items) > 3 else "")

    if beyond:
        log.warning(
            "evaluate: %d labelled event(s) start at or after the end of their recording "
            "(%s); they count as missed. Are the labels for another version of the file, "
            "or in another unit?",
            len(beyond),
            some(beyond),
        )
    if empty:
        log.warning(
            "evaluate: %d labelled event(s) have no length, offset = onset (%s): IoU and "
            "collar matching cannot pair them (they count as missed there), the lenient "
            "score finds one inside a detection. Label each event's extent.",
            len(empty),
            some(empty),
        )
    if twice:
        log.warning(
            "evaluate: %d labelled event(s) repeat an earlier row of the same file (%s); "
            "each copy counts as an event, so one detection finds only one of them one "
            "to one. Remove the duplicated rows.",
            len(twice),
            some(twice),
        )


def evaluate(
    results: Mapping[str, ScanResult],
    events: Mapping[str, Sequence[tuple[float, float]]],
    threshold: float | None = None,
    *,
    unmatched: Literal["warn", "error", "ignore"] = "warn",
) -> Evaluation:
    """Score ``results`` (keyed by file) against target ``events`` (same keys).

    A result without events counts as a recording without the target. Keys of
    ``events`` that no result has, and results of which ``events`` has no key
    although it has others, usually mean the two are named differently (a path
    against a bare file name): ``unmatched="warn"`` (default) logs a warning
    naming them, ``"error"`` raises :class:`~audio_embed.errors.MarkerError`.
    Events that start at or after the end of their recording, have no length or
    repeat another of the same file are scored as given, with a warning naming them.
    """
    _check_keys(results, events, unmatched)
    _check_events(results, events)
    return score(results, events, threshold)


def score(
    results: Mapping[str, ScanResult],
    events: Mapping[str, Sequence[tuple[float, float]]],
    threshold: float | None = None,
) -> Evaluation:
    """:func:`evaluate` without its warnings (for the per-file scores of a set whose
    whole :func:`evaluate` has warned already)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    n_events = n_found = n_det = n_fp = n_iou = n_collar = 0
    det_seconds = event_seconds = 0.0
    ys: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    minutes = flagged = 0.0
    for key, result in results.items():
        targets = list(events.get(key, ()))
        dets: Iterable[Detection] = result.detections(threshold)
        dets = list(dets)
        n_events += len(targets)
        n_found += sum(any(_overlaps(d.start, d.end, a, b) for d in dets) for a, b in targets)
        n_det += len(dets)
        flagged += sum(d.end - d.start for d in dets) / 60.0
        n_fp += sum(not any(_overlaps(d.start, d.end, a, b) for a, b in targets) for d in dets)
        spans = [(d.start, d.end) for d in dets]
        n_iou += iou_matches(targets, spans)
        n_collar += collar_matches(targets, spans)
        det_seconds += sum(d.end - d.start for d in dets)
        event_seconds += sum(b - a for a, b in targets)
        ends = result.starts + result.window
        y = np.array(
            [
                any(_overlaps(s, e, a, b) for a, b in targets)
                for s, e in zip(result.starts, ends, strict=True)
            ]
        )
        ys.append(y.astype(int))
        ps.append(result.probabilities)
        minutes += result.duration / 60.0
    y_all = np.concatenate(ys) if ys else np.zeros(0, int)
    p_all = np.concatenate(ps) if ps else np.zeros(0)
    both = len(np.unique(y_all)) == 2
    precision = (n_det - n_fp) / n_det if n_det else 0.0
    recall = n_found / n_events if n_events else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(
        n_events=n_events,
        n_found=n_found,
        n_detections=n_det,
        n_false_positives=n_fp,
        precision=precision,
        recall=recall,
        f1=f1,
        window_auc=float(roc_auc_score(y_all, p_all)) if both else float("nan"),
        window_ap=float(average_precision_score(y_all, p_all)) if both else float("nan"),
        brier=float(np.mean((p_all - y_all) ** 2)) if len(y_all) else float("nan"),
        ece=expected_calibration_error(y_all, p_all),
        minutes=minutes,
        flagged_minutes=flagged,
        iou_true_positives=n_iou,
        collar_true_positives=n_collar,
        mean_detection_seconds=det_seconds / n_det if n_det else float("nan"),
        mean_event_seconds=event_seconds / n_events if n_events else float("nan"),
    )

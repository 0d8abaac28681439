"""Window strategies and marker labelling.

A *window* is a stretch of ``window`` seconds starting at a time ``start``.
Strategies return window start times as float64 arrays (seconds):

* :class:`SlidingWindows` tiles a whole recording (scanning, and the
  per-recording normalisation statistics).
* :class:`TargetedWindows` picks labelled training windows around the moments
  a person marked (:class:`Markers`).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable
from typing import Literal

import numpy as np
from attrs import field, frozen

from audio_embed.errors import InvalidInputError, MarkerError
from audio_embed.types import is_real_number

__all__ = [
    "LabelledWindows",
    "MarkerKind",
    "Markers",
    "SlidingWindows",
    "TargetedWindows",
    "nearest_index",
]

log = logging.getLogger(__name__)

MarkerKind = Literal["positive", "soft", "negative"]
MARKER_KINDS: tuple[MarkerKind, ...] = ("positive", "soft", "negative")
_EPS = 1e-6


def _check_number(owner: str, name: str, value: object) -> float:
    """``value`` as a float, refusing what only looks like a number: a text (``"1"``,
    from a config file), a bool, None (before: kept as given, a ``TypeError`` deep in
    the first scan, or ``window=True`` taken as 1 s)."""
    if not is_real_number(value):
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be a number of seconds. Got {value!r} instead."
        )
    return float(value)  # type: ignore[arg-type]


def _check_positive(owner: str, name: str, value: float) -> float:
    value = _check_number(owner, name, value)
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be > 0. Got {value!r} instead."
        )
    return value


def _times(values: Iterable[float] | float) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)):  # "12" read as 1 and 2 seconds, silently
        raise MarkerError(
            f"Marker times are numbers of seconds, e.g. Markers(positive=[12.5]). "
            f"Got the text {values!r}."
        )
    if isinstance(values, numbers.Real) or (
        isinstance(values, np.ndarray) and values.ndim == 0
    ):  # Markers(positive=12.5): one marker, not "'float' object is not iterable"
        values = [float(values)]
    out = set()
    for v in values:  # type: ignore[union-attr]
        t = float(v)
        if not math.isfinite(t):
            raise MarkerError(f"Marker times must be finite numbers of seconds. Got {v!r}.")
        if t < 0:
            raise MarkerError(f"Marker times must be >= 0 seconds. Got {t!r}.")
        out.add(t)
    return tuple(sorted(out))


def _spans(values: Iterable[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    items: list[object] = list(values)
    if len(items) == 2 and all(isinstance(v, numbers.Real) for v in items):
        items = [tuple(items)]  # Markers(spans=(3, 5)): one span, not two bare numbers
    out = set()
    for item in items:
        pair = tuple(item) if isinstance(item, Iterable) and not isinstance(item, str) else ()
        if len(pair) != 2:
            raise MarkerError(
                f"Marked spans are (start, end) pairs of seconds, e.g. "
                f"Markers(spans=[(3.0, 5.5)]). Got {item!r} among them."
            )
        a, b = (float(v) for v in pair)
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < a:
            raise MarkerError(
                f"A marked span needs finite start <= end, both >= 0 seconds. Got {pair!r}."
            )
        out.add((a, b))
    return tuple(sorted(out))


def span_midpoint(span: tuple[float, float]) -> float:
    return (span[0] + span[1]) / 2.0


@frozen
class Markers:
    """The moments marked in one recording, in seconds from its start.

    ``positive``: the target sound is there. ``soft``: ambiguous (never used
    as a negative, never as a positive). ``negative``: explicitly not the
    target. Duplicates are merged; NaN, infinite or negative times raise
    :class:`MarkerError`.

    ``spans``: the extents ``(start, end)`` of positives marked as selections
    (Audacity labels, Raven selections); each span's midpoint is added to
    ``positive``. Training then labels windows by how much of the span they
    hold, and the automatic threshold matches detections to the span.
    """

    positive: tuple[float, ...] = field(default=(), converter=_times)
    soft: tuple[float, ...] = field(default=(), converter=_times)
    negative: tuple[float, ...] = field(default=(), converter=_times)
    spans: tuple[tuple[float, float], ...] = field(default=(), converter=_spans)

    def __attrs_post_init__(self) -> None:
        mids = {span_midpoint(s) for s in self.spans} - set(self.positive)
        if mids:
            object.__setattr__(self, "positive", _times(self.positive + tuple(mids)))

    def span_of(self, t: float) -> tuple[float, float] | None:
        """The span whose midpoint is the positive marker ``t``, if any."""
        for s in self.spans:
            if abs(span_midpoint(s) - t) < _EPS:
                return s
        return None

    @property
    def all(self) -> tuple[float, ...]:
        """Every marked time, whatever its kind, sorted."""
        return tuple(sorted(self.positive + self.soft + self.negative))

    def __len__(self) -> int:
        return len(self.positive) + len(self.soft) + len(self.negative)

    def within(self, duration: float, source: str | None = None) -> Markers:
        """The markers that fall inside a recording of ``duration`` seconds.

        Markers beyond the end are dropped with a warning (they usually mean
        the wrong file or a time in the wrong unit) that names ``source``, the
        recording, when given.
        """
        kept = {
            kind: tuple(t for t in getattr(self, kind) if t <= duration + _EPS)
            for kind in MARKER_KINDS
        }
        late = sorted(t for t in self.all if t > duration + _EPS)
        if late:
            times = ", ".join(f"{t:g} s" for t in late[:5]) + (", …" if len(late) > 5 else "")
            hint = (
                " (every marker: are the times in milliseconds? Marker times are seconds, "
                "or clock times such as 1:23.5)"
                if len(late) == len(self) and late[-1] / 1000.0 <= duration
                else ""
            )
            log.warning(
                "%s%d marker(s) lie beyond the end of the recording (%.1f s) and were "
                "ignored: %s%s",
                f"{source}: " if source else "",
                len(late),
                duration,
                times,
                hint,
            )
        spans = tuple(s for s in self.spans if span_midpoint(s) in kept["positive"])
        return Markers(**kept, spans=spans)


@frozen
class LabelledWindows:
    """Training windows: start times and labels (1 = target, 0 = not)."""

    starts: np.ndarray
    labels: np.ndarray

    @property
    def n_positive(self) -> int:
        return int(self.labels.sum())

    @property
    def n_negative(self) -> int:
        return int(len(self.labels) - self.labels.sum())


@frozen
class SlidingWindows:
    """Windows of ``window`` seconds every ``hop`` seconds over a whole recording.

    Starts are 0, hop, 2·hop, … while the window fits; when that leaves a tail
    uncovered, one more window is aligned to the end of the file. A recording
    shorter than one window gets exactly one window starting at 0; the
    embedders see it zero-padded at the end to the window length.

    ``encoding`` says how windows reach the encoder: ``"shared"`` (default)
    encodes each stretch of audio once and pools the frames inside each window
    (layered models with frame hooks; log-mel statistics are shared and exact
    anyway; other models fall back to per-window); ``"per_window"`` encodes
    each window on its own, as the original application did. Shared is 6-7x
    faster at 8 s / 1 s with HuBERT-base-sized models (see the README).

    The defaults, 1 s every 0.1 s, were chosen on the wolf benchmark (README):
    a window about as long as the sound scores it clearly, and a fine hop lets
    :mod:`audio_embed.detect` place each occurrence's start and end. Raise the
    window for long sounds (a minute-long horn, a song).
    """

    window: float = 1.0
    hop: float = 0.1
    encoding: Literal["per_window", "shared"] = "shared"

    def __attrs_post_init__(self) -> None:
        _check_positive("SlidingWindows", "window", self.window)
        _check_positive("SlidingWindows", "hop", self.hop)
        if self.encoding not in ("per_window", "shared"):
            raise InvalidInputError(
                "The 'encoding' parameter of SlidingWindows must be 'per_window' or "
                f"'shared'. Got {self.encoding!r} instead."
            )

    def whole(self, duration: float) -> int:
        """How many windows of the hop grid (``k * hop``) lie whole inside the first
        ``duration`` seconds: :meth:`starts` before its end-aligned last window, and
        what a streamed scan embeds of the audio decoded so far."""
        return max(math.floor((duration - self.window) / self.hop + _EPS) + 1, 0)

    def starts(self, duration: float) -> np.ndarray:
        """Window start times, in seconds, for a recording of ``duration`` seconds."""
        if duration <= self.window + _EPS:
            return np.zeros(1)
        starts = np.arange(self.whole(duration), dtype=np.float64) * self.hop
        if starts[-1] + self.window < duration - _EPS:
            starts = np.append(starts, duration - self.window)
        return starts


@frozen
class TargetedWindows:
    """Labelled training windows around the marked moments.

    ``labelling="overlap"`` (the default): the windows of a ``hop``-second
    sliding grid; a window is positive when a positive marker lies inside it,
    widened by ``tolerance`` seconds on both sides; negative when no marker of
    any kind lies within ``neg_margin`` seconds of it, or when it holds a
    negative marker and no positive or soft one; otherwise it is dropped.

    ``labelling="targeted"`` is the original application's rules, exactly
    (:meth:`original` gives them with the original settings):

    * positive windows start at every whole second within ±``tolerance`` of a
      positive marker (and inside the file);
    * manual negatives likewise around negative markers, minus the positives
      (and minus the windows around soft markers, which are never negatives);
    * automatic negatives every ``neg_stride`` seconds whose start is farther
      than ``neg_margin`` from every marker (none when ``neg_margin <= 0`` or
      when there are no markers);
    * windows within tolerance of nothing and closer than ``neg_margin`` are
      ambiguous and dropped.

    The defaults were chosen on the wolf benchmark (see the README): the
    original rules label many windows that do not hold the sound as positive,
    and with a 120 s margin a 5-minute recording with a few markers yields no
    negatives at all.
    """

    window: float = 1.0
    tolerance: float = 0.0
    neg_margin: float = 8.0
    neg_stride: float = 4.0
    labelling: Literal["targeted", "overlap"] = "overlap"
    #: Step of the ``"overlap"`` grid; None = the scan windows' hop when a
    #: :class:`~audio_embed.Scanner` holds these windows (1 s on their own).
    hop: float | None = None

    @classmethod
    def original(cls, window: float = 8.0) -> TargetedWindows:
        """The original application's rules and settings (tolerance 12 s, margin 120 s)."""
        return cls(window, tolerance=12.0, neg_margin=120.0, neg_stride=4.0, labelling="targeted")

    def __attrs_post_init__(self) -> None:
        _check_positive("TargetedWindows", "window", self.window)
        _check_positive("TargetedWindows", "neg_stride", self.neg_stride)
        if self.hop is not None:
            _check_positive("TargetedWindows", "hop", self.hop)
        for name in ("tolerance", "neg_margin"):
            _check_number("TargetedWindows", name, getattr(self, name))
        if not math.isfinite(self.tolerance) or self.tolerance < 0:
            raise InvalidInputError(
                "The 'tolerance' parameter of TargetedWindows must be >= 0. "
                f"Got {self.tolerance!r} instead."
            )
        if self.labelling not in ("targeted", "overlap"):
            raise InvalidInputError(
                "The 'labelling' parameter of TargetedWindows must be 'targeted' or "
                f"'overlap'. Got {self.labelling!r} instead."
            )

    def windows(self, duration: float, markers: Markers) -> LabelledWindows:
        """Labelled window starts for a recording of ``duration`` seconds."""
        markers = markers.within(duration)
        last = max(duration - self.window, 0.0)
        if self.labelling == "overlap":
            return self._overlap(duration, markers)
        pos = self._around(markers.positive, last)
        soft = self._around(markers.soft, last)
        neg = self._around(markers.negative, last) - pos - soft
        marked = np.asarray(markers.all)
        if self.neg_margin > 0 and marked.size:
            grid = np.arange(0.0, last + _EPS, self.neg_stride)
            far = np.abs(grid[:, None] - marked[None, :]).min(axis=1) > self.neg_margin
            neg |= {round(float(s), 6) for s in grid[far]} - pos - soft
        starts = np.array(sorted(pos) + sorted(neg), dtype=np.float64)
        labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
        order = np.argsort(starts, kind="stable")
        return LabelledWindows(starts=starts[order], labels=labels[order])

    def lost_negatives(self, duration: float, markers: Markers) -> tuple[float, ...]:
        """The negative markers that label no window negative: every window holding
        one (``"overlap"``; within ``tolerance`` of it, ``"targeted"``) holds a
        positive or soft marker too, which wins (a "negative" review answer a few
        tenths of a second from a marker)."""
        markers = markers.within(duration)
        if not markers.negative:
            return ()
        labelled = self.windows(duration, markers)
        neg = labelled.starts[labelled.labels == 0]
        last = max(duration - self.window, 0.0)
        lost = []
        for t in markers.negative:
            if self.labelling == "overlap":
                mine = (neg <= t + _EPS) & (neg + self.window >= t - _EPS)
            else:
                around = np.array(sorted(self._around((t,), last)), dtype=np.float64)
                mine = np.isin(np.round(neg, 6), np.round(around, 6))
            if not mine.any():
                lost.append(t)
        return tuple(lost)

    def _around(self, times: tuple[float, ...], last: float) -> set[float]:
        starts: set[float] = set()
        for t in times:
            lo = max(math.ceil(t - self.tolerance - _EPS), 0)
            hi = min(math.floor(t + self.tolerance + _EPS), math.floor(last + _EPS))
            starts.update(float(s) for s in range(lo, hi + 1))
        return starts

    def _overlap(self, duration: float, markers: Markers) -> LabelledWindows:
        starts = SlidingWindows(self.window, self.hop or 1.0).starts(duration)
        ends = starts + self.window

        def holds(times: tuple[float, ...], slack: float) -> np.ndarray:
            if not times:
                return np.zeros(len(starts), dtype=bool)
            t = np.asarray(times)[None, :]
            inside = (t >= starts[:, None] - slack) & (t <= ends[:, None] + slack)
            return np.asarray(inside.any(axis=1))

        spans = [s for s in markers.spans if span_midpoint(s) in markers.positive]
        points = tuple(t for t in markers.positive if markers.span_of(t) is None)
        pos = holds(points, self.tolerance)
        for a, b in spans:  # windows holding at least half the span (or half a window of it)
            inside = np.minimum(ends, b + self.tolerance) - np.maximum(starts, a - self.tolerance)
            pos |= inside >= 0.5 * min(b - a + 2 * self.tolerance, self.window) - _EPS
        soft = holds(markers.soft, self.tolerance)
        manual_neg = holds(markers.negative, 0.0) & ~pos & ~soft
        if self.neg_margin > 0 and len(markers):
            edges = tuple(t for s in spans for t in s)
            auto_neg = ~holds(markers.all + edges, self.neg_margin)
        else:
            auto_neg = np.zeros(len(starts), dtype=bool)
        neg = (manual_neg | auto_neg) & ~pos
        keep = pos | neg
        return LabelledWindows(starts=starts[keep], labels=pos[keep].astype(np.int64))


def nearest_index(grid: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the grid value nearest to each of ``at`` (``grid`` sorted)."""
    idx = np.clip(np.searchsorted(grid, at), 1, max(len(grid) - 1, 1))
    left = grid[idx - 1] if len(grid) > 1 else grid[idx * 0]
    take_left = np.abs(at - left) <= np.abs(grid[np.minimum(idx, len(grid) - 1)] - at)
    out: np.ndarray = np.where(take_left, idx - 1, idx) if len(grid) > 1 else idx * 0
    return out

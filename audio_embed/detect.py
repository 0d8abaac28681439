"""From window scores to occurrences: one :class:`Detection` per sound.

The scanner scores sliding windows of ``window`` seconds every ``hop``
seconds. :func:`detect` turns those scores into detections the way sound event
detection systems post-process frame probabilities:

1. **Track.** Each window's score stands for the moment at its centre; the
   track is the scores in time order, one value per hop. A window that holds
   the target sound near its middle scores highest, so the stretch of high
   scores follows the sound itself, not the union of every window touching it.
2. **Smoothing** (``smooth`` seconds, a median filter) removes one-hop spikes
   and one-hop drops.
3. **Hysteresis.** A region starts where the track reaches ``threshold`` and
   extends both ways while it stays at or above ``hysteresis * threshold``.
4. **Splitting at valleys.** Inside a region, two peaks at or above the
   threshold are separate occurrences when the track between them falls to
   ``valley`` times the lower peak or below; the region is cut at the lowest
   point between them.
5. **Extent** (opt-in, ``extent="intersection"``): for windows longer than
   the sound (BirdNET's 3 s chunks on 1 s calls) every window that holds the
   whole sound scores high, so the stretch of high scores is about
   ``window - sound`` long and centred on the sound. The occurrence is then the
   intersection of its windows that reach the threshold: centred where their
   centres are, ``window`` minus the spread of those centres long (at least one
   hop), and never wider than the track region of step 1.
6. **Gaps and durations.** Regions closer than ``min_gap`` seconds are one
   occurrence (step 4 cuts inside a region, never in such a gap; before, it
   cut every bridged gap again); occurrences shorter than ``min_duration``
   are widened around their middle (never dropped, never over a neighbour or
   the file's ends).

Boundaries: a region of track points ``i..j`` spans from half a hop before
centre ``i`` to half a hop after centre ``j``, clipped to the file; a region
whose best window is the file's first (last) starts (ends) where that window
does, as a sound in the file's first or last half-window is never at a
window's centre (before: a sound in the first 0.45 s of a file got a
detection after it). ``score`` is
the best window score inside and ``peak`` the centre of that window (the best
moment to jump to); where smoothing lifted the track over the threshold with
no raw window inside reaching it (windows above it on both sides of a dip),
``score`` is the best smoothed score inside instead, so that a detection's
score is never below the threshold it was found at (before: a 0.1 s
detection scored 0.10 at threshold 0.21).

Guarantees (tested with property tests): detections are sorted, never
overlap (one may end where the next starts), lie inside ``[0, duration]``, and
(with the default ``extent="track"``) every window whose (smoothed) score
reaches the threshold has its centre inside a detection, and every
detection's score reaches the threshold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs
import numpy as np
from attrs import frozen

from audio_embed.errors import InvalidInputError
from audio_embed.types import Detection, is_real_number

__all__ = [
    "SHORT_FILE_SECONDS",
    "Detection",
    "Postprocessing",
    "as_spans",
    "detect",
    "flagged_share",
    "format_threshold",
    "fuse_windows",
    "iou_matrix",
    "max_matching",
    "score_track",
    "short_file_advice",
    "short_training_advice",
]

#: A region whose first (last) window scores within this of its best reaches the
#: file's start (end): neighbouring windows that hold one sound score alike, and a
#: difference this small is noise, not the sound's place (review: a strict maximum
#: left a sound in the first 0.3 s outside its detection for 0.86 against 0.87).
EDGE_SLACK = 0.05

#: How far a detection reaches: the track region, or the windows' intersection.
Extent = Literal["track", "intersection"]
EXTENTS: tuple[Extent, ...] = ("track", "intersection")


def format_threshold(value: float, against: Iterable[float] = ()) -> str:
    """A detection threshold as every message and summary shows it: four significant
    digits (``0.66``, ``0.6575``, ``0.0357``, ``0.3333`` for 1/3), so a threshold
    :func:`~audio_embed.threshold.choose_threshold` picked (rounded to 4 decimals in
    (0.01, 0.99)) is shown exactly. JSON output keeps the full value. (Before: ``%g``,
    six digits, written out in each place.) ``against``: thresholds shown beside it
    (a warning that two differ); one that four digits cannot tell from it shows both
    with ten."""
    text = f"{value:.4g}"
    if any(other != value and f"{other:.4g}" == text for other in against):
        return f"{value:.10g}"
    return text


def _check_range(name: str, value: float, lo: float, hi: float) -> float:
    if not is_real_number(value):  # before: a text such as "0.5" was kept, a TypeError later
        raise InvalidInputError(
            f"The {name!r} parameter of Postprocessing must be a number. Got {value!r} instead."
        )
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InvalidInputError(
            f"The {name!r} parameter of Postprocessing must be in [{lo:g}, {hi:g}]. "
            f"Got {value!r} instead."
        )
    return value


@frozen(kw_only=True)
class Postprocessing:
    """How window scores become detections (see the module docstring).

    Args:
        smooth: width in seconds of the median filter over the score track
            (0 = none; rounded to an odd number of hops).
        hysteresis: a region extends while the track is at least
            ``hysteresis * threshold`` (1 = plain thresholding).
        valley: split a region between two peaks when the track between
            them falls to ``valley`` times the lower peak (0 = never split).
        min_gap: merge detections closer than this many seconds.
        min_duration: widen shorter detections to this many seconds.
        extent: ``"track"`` (default): a detection spans its region of the
            score track; ``"intersection"``: the intersection of its windows
            that reach the threshold, for windows longer than the sound (see
            the module docstring, step 5).
    """

    smooth: float = 0.0
    hysteresis: float = 1.0
    valley: float = 0.5
    min_gap: float = 0.0
    min_duration: float = 0.0
    extent: Extent = "track"

    def __attrs_post_init__(self) -> None:
        if self.extent not in EXTENTS:
            raise InvalidInputError(
                "The 'extent' parameter of Postprocessing must be 'track' or 'intersection'. "
                f"Got {self.extent!r} instead."
            )
        _check_range("smooth", self.smooth, 0.0, math.inf)
        _check_range("hysteresis", self.hysteresis, 0.0, 1.0)
        _check_range("valley", self.valley, 0.0, 1.0)
        _check_range("min_gap", self.min_gap, 0.0, math.inf)
        _check_range("min_duration", self.min_duration, 0.0, math.inf)

    def as_dict(self) -> dict[str, Any]:
        """The fields, as a saved scanner stores them (a subclass's own fields too: they
        must be JSON values, and its ``__init__`` must take them back)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}
        if self.extent == "track":  # files saved before the option read the same
            del out["extent"]
        return out

    def detections(
        self,
        starts: np.ndarray,
        probabilities: np.ndarray,
        window: float,
        threshold: float,
        duration: float | None = None,
    ) -> list[Detection]:
        """The hook :func:`detect` calls (``threshold`` already checked, in [0, 1]):
        the steps of the module docstring. A subclass overrides it, e.g. to drop or
        merge some of ``super().detections(...)``; every scan, the threshold's choice
        and self-training then use it, and a saved scanner keeps it by its import path
        (loaded when its module is imported first: ``--plugin MODULE``). Return
        detections sorted, not overlapping, inside ``[0, duration]``."""
        return _detections(starts, probabilities, window, threshold, duration, self)


def median_hop(centres: np.ndarray, window: float) -> float:
    """The step between window centres (or starts): their median, the window without one."""
    if len(centres) < 2:
        return float(window)
    steps = np.diff(centres)
    steps = steps[steps > 1e-9]
    return float(np.median(steps)) if len(steps) else float(window)


def score_track(
    starts: np.ndarray, probabilities: np.ndarray, window: float, smooth: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window centres in time order, their (median-smoothed) scores, and the raw scores."""
    from scipy.ndimage import median_filter

    starts = np.asarray(starts, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if starts.shape != p.shape or starts.ndim != 1:
        raise InvalidInputError(
            "starts and probabilities must be 1-D arrays of the same length. Got shapes "
            f"{starts.shape} and {p.shape}."
        )
    order = np.argsort(starts, kind="stable")
    centres, raw = starts[order] + window / 2.0, p[order]
    track = raw
    if smooth > 0 and len(raw) > 2:
        size = max(1, round(smooth / median_hop(centres, window)))
        if size > 1:
            size += 1 - size % 2  # odd, centred
            track = median_filter(raw, size=size, mode="nearest")
    return centres, track, raw


def _regions(track: np.ndarray, high: float, low: float) -> list[tuple[int, int]]:
    """Index ranges ``[i, j]`` (inclusive) at or above ``low`` that reach ``high``."""
    above = track >= low
    out: list[tuple[int, int]] = []
    i, n = 0, len(track)
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and above[j + 1]:
            j += 1
        if (track[i : j + 1] >= high).any():
            out.append((i, j))
        i = j + 1
    return out


def _split(track: np.ndarray, i: int, j: int, high: float, valley: float) -> list[int]:
    """Indices (inside ``i..j``) where the region is cut between two occurrences."""
    if valley <= 0 or j - i < 2:
        return []
    seg = track[i : j + 1]
    # Plateau-aware local maxima at or above the threshold.
    peaks = [  # local maxima at or above the threshold (a plateau counts once)
        k
        for k in range(len(seg))
        if seg[k] >= high
        and (k == 0 or seg[k] > seg[k - 1])
        and (k == len(seg) - 1 or seg[k] >= seg[k + 1])
    ]
    cuts: list[int] = []
    last = peaks[0] if peaks else None
    for k in peaks[1:]:
        assert last is not None
        between = seg[last : k + 1]
        m = last + int(np.argmin(between))
        if m not in (last, k) and seg[m] <= valley * min(seg[last], seg[k]):
            cuts.append(i + m)
            last = k
        elif seg[k] > seg[last]:
            last = k
    return cuts


def detect(
    starts: np.ndarray,
    probabilities: np.ndarray,
    window: float,
    threshold: float,
    duration: float | None = None,
    post: Postprocessing | None = None,
) -> list[Detection]:
    """Detections from window scores: see the module docstring for each step
    (``post.detections``, a subclass's own when ``post`` is one)."""
    if not is_real_number(threshold):
        hint = (
            " A scanner's 'threshold' setting can be 'auto'; the number it chose is "
            "Scanner.scan_threshold (or threshold_)."
            if isinstance(threshold, str)
            else ""
        )
        raise InvalidInputError(
            f"The 'threshold' must be a number in [0, 1]. Got {threshold!r} instead.{hint}"
        )
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise InvalidInputError(f"The 'threshold' must be in [0, 1]. Got {threshold!r} instead.")
    threshold = float(threshold)
    post = post or Postprocessing()
    return post.detections(starts, probabilities, window, threshold, duration)


def _detections(
    starts: np.ndarray,
    probabilities: np.ndarray,
    window: float,
    threshold: float,
    duration: float | None,
    post: Postprocessing,
) -> list[Detection]:
    centres, track, raw = score_track(starts, probabilities, window, post.smooth)
    if len(centres) == 0:
        return []
    end_of_file = float(duration) if duration is not None else float(centres[-1] + window / 2)
    half = median_hop(centres, window) / 2.0
    spans: list[list[float]] = []  # start, end, score, peak
    regions = _regions(track, threshold, threshold * post.hysteresis)
    for group in _merge_close(regions, centres, 2 * half, post.min_gap):
        # cut inside each region at its valleys, never in a gap that min_gap bridged
        i, j = group[0][0], group[-1][1]
        cuts = [c for a, b in group for c in _split(track, a, b, threshold, post.valley)]
        for a, b in itertools.pairwise([i, *cuts, j + 1]):
            last = b - 1
            best = a + int(np.argmax(raw[a : last + 1]))
            lo = centres[a] - half if a == i else centres[a]
            hi = centres[last] + half if last == j else centres[b]
            # the regions of a min_gap group inside this occurrence, each on its own
            parts = [
                (x, y)
                for x, y in ((max(a, r), min(last, q)) for r, q in group)
                if x <= y and (track[x : y + 1] >= threshold).any()
            ]
            # a sound in the file's first (last) half-window is never at a window's
            # centre: a region whose first (last) window scores as high as any of it
            # (within EDGE_SLACK) reaches the file's edge
            (x0, y0), (x1, y1) = parts[0], parts[-1]
            if a == 0 and raw[0] >= raw[x0 : y0 + 1].max() - EDGE_SLACK:
                lo = centres[0] - window / 2.0
            if last == len(centres) - 1 and raw[last] >= raw[x1 : y1 + 1].max() - EDGE_SLACK:
                hi = centres[-1] + window / 2.0
            if post.extent == "intersection":
                # (review: across a min_gap group, the silence between two sounds)
                ends = [
                    _intersection(
                        centres[x : y + 1], track[x : y + 1], threshold, window, half, lo, hi
                    )
                    for x, y in parts
                ]
                lo, hi = ends[0][0], ends[-1][1]
            # the smoothed score that made it a detection, when no raw window inside
            # reaches it (a median over neighbours): never below the threshold
            score = max(float(raw[best]), float(track[a : last + 1].max()))
            spans.append([lo, hi, score, float(centres[best])])
    _widen(spans, post.min_duration, end_of_file)
    out = []
    for lo, hi, score, peak in spans:
        lo, hi = max(0.0, lo), min(end_of_file, hi)
        out.append(Detection(lo, max(lo, hi), score, min(max(peak, lo), max(lo, hi))))
    return out


def fuse_windows(
    starts: np.ndarray,
    probabilities: np.ndarray,
    window: float,
    threshold: float,
    duration: float | None = None,
) -> list[Detection]:
    """Merge windows scoring ``>= threshold`` that overlap or touch into regions.

    The original application's rule, kept for comparison: one region covers
    every window of a run, so neighbouring occurrences fuse. Scanning uses
    :func:`audio_embed.detect.detect`.
    """
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"The 'threshold' must be in [0, 1]. Got {threshold!r} instead.")
    order = np.argsort(starts, kind="stable")
    detections: list[Detection] = []
    cur: list[float] | None = None  # start, end, score, peak
    for i in order:
        p = float(probabilities[i])
        if p < threshold:
            continue
        s = float(starts[i])
        e = s + window if duration is None else min(s + window, max(duration, s))
        centre = (s + e) / 2.0
        if cur is not None and s <= cur[1] + 1e-9:
            cur[1] = max(cur[1], e)
            if p > cur[2]:
                cur[2], cur[3] = p, centre
        else:
            if cur is not None:
                detections.append(Detection(*cur))
            cur = [s, e, p, centre]
    if cur is not None:
        detections.append(Detection(*cur))
    return detections


def _intersection(
    centres: np.ndarray,
    track: np.ndarray,
    threshold: float,
    window: float,
    half: float,
    lo: float,
    hi: float,
) -> tuple[float, float]:
    """The common part of the windows (centres ``centres``) whose score reaches
    ``threshold``, at least one hop long, inside ``[lo, hi]``."""
    above = centres[track >= threshold]
    if len(above) == 0:
        return lo, hi
    first, final = float(above[0]), float(above[-1])
    middle = (first + final) / 2.0
    length = min(max(window - (final - first), 2.0 * half), hi - lo)
    start = min(max(lo, middle - length / 2.0), hi - length)
    return start, start + length


def _merge_close(
    regions: list[tuple[int, int]], centres: np.ndarray, hop: float, gap: float
) -> list[list[tuple[int, int]]]:
    """Regions in groups: those whose silence between them (in seconds) is shorter
    than ``gap`` are one group, one occurrence."""
    out: list[list[tuple[int, int]]] = []
    for i, j in regions:
        if out and gap > 0 and centres[i] - centres[out[-1][-1][1]] - hop < gap - 1e-9:
            out[-1].append((i, j))
        else:
            out.append([(i, j)])
    return out


def _widen(spans: list[list[float]], min_duration: float, end_of_file: float) -> None:
    """Widen short spans around their middle, never over a neighbour or the file's ends."""
    if min_duration <= 0:
        return
    for k, s in enumerate(spans):
        missing = min_duration - (s[1] - s[0])
        if missing <= 0:
            continue
        left_room = s[0] - (spans[k - 1][1] if k > 0 else 0.0)
        right_room = (spans[k + 1][0] if k + 1 < len(spans) else end_of_file) - s[1]
        grow_left = min(max(left_room, 0.0), missing / 2.0)
        grow_right = min(max(right_room, 0.0), missing - grow_left)
        grow_left = min(max(left_room, 0.0), missing - grow_right)
        s[0] -= grow_left
        s[1] += grow_right


# Matching detections to events (used by evaluate and threshold).


def as_spans(spans: Sequence[tuple[float, float]]) -> np.ndarray:
    return np.asarray(spans, dtype=np.float64).reshape(-1, 2)


def max_matching(allowed: np.ndarray, preference: np.ndarray) -> int:
    """Size of a maximum one-to-one matching among ``allowed`` pairs.

    Among maximum matchings, ``preference`` (larger is better) breaks ties; it
    can never trade a pair away (its total weight stays below one pair).
    """
    if allowed.size == 0 or not allowed.any():
        return 0
    from scipy.optimize import linear_sum_assignment

    pref = np.asarray(preference, dtype=np.float64)
    span = float(np.ptp(pref[allowed])) or 1.0
    tie = (pref - pref[allowed].min()) / span  # in [0, 1] on allowed pairs
    weight = np.where(allowed, 1.0 + tie / (2.0 * max(allowed.shape)), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return int(allowed[rows, cols].sum())


def iou_matrix(
    events: Sequence[tuple[float, float]], detections: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Intersection over union of every (event, detection) pair, ``[n_events, n_detections]``."""
    ref, est = as_spans(events), as_spans(detections)
    inter = np.clip(
        np.minimum(ref[:, None, 1], est[None, :, 1]) - np.maximum(ref[:, None, 0], est[None, :, 0]),
        0.0,
        None,
    )
    union = (ref[:, 1] - ref[:, 0])[:, None] + (est[:, 1] - est[:, 0])[None, :] - inter
    out: np.ndarray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def flagged_share(detections: Sequence[Detection], duration: float) -> float:
    """The share of ``duration`` seconds that ``detections`` (not overlapping) cover."""
    if duration <= 0:
        return 0.0
    return min(sum(d.end - d.start for d in detections) / duration, 1.0)


#: A scanner that normalises each recording by its own windows (the default) takes
#: the statistics of a file shorter than this from little more than the target sound,
#: and often misses it (README, "Errors and limits": demo horns centred in clips of
#: 1.5-3 s found in 1 of 6, from 10 s in all): scans of such files are reported.
SHORT_FILE_SECONDS = 10.0


def short_file_advice(n_short: int, n_files: int, example: str, seconds: float) -> str:
    """The warning for scans of files shorter than :data:`SHORT_FILE_SECONDS`."""
    which = (
        f"{n_short} of the {n_files} file(s) scanned are shorter than {SHORT_FILE_SECONDS:g} s "
        f"(e.g. {example}, {seconds:.1f} s)"
        if n_files > 1
        else f"{example} is {seconds:.1f} s long, shorter than {SHORT_FILE_SECONDS:g} s"
    )
    return (
        f"{which}: the "
        "scanner normalises each recording by its own windows, and in a file that short the "
        "target sound dominates them and is often missed. For short clips train with "
        "normalization='none' (--normalization none) and scan clips of a loudness like the "
        "training recordings', or join the clips into one file."
    )


def short_training_advice(n_short: int, n_files: int, example: str, seconds: float) -> str:
    """The warning for training recordings shorter than two windows (normalised by
    their own few windows: a clip of one window becomes a vector of zeros, the mean
    that every recording's background lies near; README, "Errors and limits")."""
    return (
        f"{n_short} of the {n_files} training recording(s) are shorter than two windows "
        f"(e.g. {example}, {seconds:.1f} s): the scanner normalises each recording by its own "
        "windows, which in a clip that short are little more than the marked sound, so they "
        "teach the scanner little of it (a clip of one window: nothing, its normalised "
        "window is all zeros, which every recording's background lies near). Cut clips of "
        "3 s or more, with some of what surrounds the sound, or mark the sound in the "
        "recordings they were cut from."
    )

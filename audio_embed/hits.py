"""Search-by-example values: the :class:`Example` asked for and the :class:`Hit` found,
and how candidate windows become hits (torch-free)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from attrs import field, frozen

from audio_embed.detect import median_hop
from audio_embed.errors import InvalidInputError
from audio_embed.types import time_repr

__all__ = ["HIT_LEVEL", "Example", "Hit", "hit_extent", "merge_windows", "nearest_centre"]

_EPS = 1e-6


def _example_time(value: object) -> float:
    """Seconds, from a number or a text as :meth:`Example.parse` reads it (``"12.5"``,
    a clock time ``"1:23.5"``; before: ``TypeError: must be real number, not str``
    when the search began)."""
    from audio_embed.formats import clock_seconds

    try:
        t = clock_seconds(value) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        t = math.nan
    if not math.isfinite(t) or t < 0:
        raise InvalidInputError(
            "An example's time is seconds from the start of its file (12.5) or a clock time "
            f"('1:23.5'). Got {value!r} instead."
        )
    return t


@frozen
class Example:
    """A moment to search for: ``time`` seconds into ``source``.

    The example is the sliding window whose centre is nearest ``time`` (a number,
    or a text: ``"12.5"``, a clock time ``"1:23.5"``).
    """

    source: str = field(converter=os.fspath)
    time: float = field(converter=_example_time)

    @classmethod
    def parse(cls, text: str) -> Example:
        """``"rec.wav:12.5"`` → ``Example("rec.wav", 12.5)`` (the last colon splits);
        a clock time as a player shows it, ``film.mp4:1:23.5`` or ``film.mp4:0:01:23.5``,
        when the file before it exists."""
        import os

        from audio_embed.formats import clock_seconds

        parts = text.split(":")
        for k in (3, 2):  # H:MM:SS.s, M:SS.s: only where the name before them is a file
            if len(parts) > k and os.path.isfile(":".join(parts[:-k])):
                try:
                    clock = clock_seconds(":".join(parts[-k:]))
                except ValueError:
                    continue
                return cls(":".join(parts[:-k]), clock)
        if len(parts) > 4 and all(p.strip().isdigit() for p in parts[-4:]):
            # an editor's timecode HH:MM:SS:FF (before: "film.mp4:01:00:03: no such
            # file", its last field taken for seconds); checked after a file named
            # "take:01" with a clock time "0:00:05" (review)
            try:
                clock_seconds(":".join(parts[-4:]))
            except ValueError as exc:
                raise InvalidInputError(f"{text!r}: {exc}.") from exc
        path, sep, t = text.rpartition(":")
        try:
            value = float(t)
        except ValueError:
            value = math.nan
        if not sep or not path or not math.isfinite(value) or value < 0:
            comma = " (seconds with a decimal point: 12.5, not 12,5)" if "," in t else ""
            raise InvalidInputError(
                f"An example is FILE:SECONDS, e.g. rec.wav:12.5 (or rec.wav:1:23.5). Got {text!r} "
                f"instead{comma}."
            )
        return cls(path, value)


@frozen
class Hit:
    """One search result: one occurrence, around its best window.

    ``start``/``end`` in seconds (see :func:`hit_extent`); ``peak`` the centre of the best window,
    ``score`` its similarity to the query; ``row`` that window's row. The repr shows the
    times to the microsecond, as a :class:`~audio_embed.types.Detection`'s (``start=12.15``,
    not ``start=12.150000000000002``).
    """

    file: str
    start: float = field(repr=time_repr)
    end: float = field(repr=time_repr)
    peak: float = field(repr=time_repr)
    score: float
    row: int


#: How far a hit reaches from its best window: over the windows around it whose
#: score stays at or above this share of the best's ("half maximum": a
#: recording's windows score about 0 on average, being normalised by its mean).
HIT_LEVEL = 0.5


def hit_extent(
    starts: np.ndarray,
    scores: np.ndarray,
    best: int,
    window: float,
    duration: float,
    level: float = HIT_LEVEL,
) -> tuple[float, float]:
    """Start and end of the hit whose best window is ``starts[best]``.

    ``starts``/``scores``: windows of one file in time order, around the best. The
    hit reaches from the best window over its neighbours, both ways, while their
    score stays at or above ``level`` times the best's (only the best window when
    its score is not above 0). Each window stands for the moment at its centre, as
    in :func:`audio_embed.detect.detect`'s track: the hit spans from half a hop
    before the first centre to half a hop after the last, clipped to the file.
    """
    starts = np.asarray(starts, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    peak = float(scores[best])
    low = level * peak if peak > 0 else math.inf  # (review: a peak <= 0 took neighbours)
    i = j = best
    while i > 0 and scores[i - 1] >= low:
        i -= 1
    while j + 1 < len(scores) and scores[j + 1] >= low:
        j += 1
    half = median_hop(starts, window) / 2.0
    centre = starts + window / 2.0
    lo = max(0.0, float(centre[i]) - half)
    hi = min(max(duration, lo), float(centre[j]) + half)
    return lo, hi


def merge_windows(
    files: Sequence[str],
    starts: np.ndarray,
    scores: np.ndarray,
    rows: np.ndarray,
    window: float,
    durations: Sequence[float],
    extent: Callable[[int], tuple[float, float]] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Candidate windows → one hit per occurrence, best first (non-maximum suppression);
    the first ``limit`` hits only, when given (hits are made in order of score, and a
    later one never changes an earlier one, so these are the first of all of them).

    In order of score, a window that overlaps the best window of no hit of its
    file starts a new hit; any other is dropped. The hit's start and end are
    ``extent(i)`` for candidate ``i`` (:func:`hit_extent` over the file's stored
    windows around it; the best window alone when None), cut where an earlier
    hit of its file is: hits of one file never overlap. A hit's extent never
    depends on the other candidates, so asking for more hits changes none of the
    first ones (before: a hit widened over the neighbouring windows that happened
    to be candidates, so a larger ``top`` made the same hits longer).
    """
    per_file: dict[str, list[list[Any]]] = {}  # start, end, peak, score, row, best start
    made = 0
    # best first; ties by file and start, the order of the hits returned, so the first
    # `limit` are the first of all (review: ties came in candidate order)
    for i in np.lexsort((np.asarray(starts), np.asarray(files), -np.asarray(scores))):
        if made == limit:
            break
        f, s = files[i], float(starts[i])
        e = min(s + window, max(float(durations[i]), s))
        hits = per_file.setdefault(f, [])
        if any(abs(s - h[5]) < window - _EPS for h in hits):
            continue
        peak = (s + e) / 2.0
        if any(h[0] + _EPS < peak < h[1] - _EPS for h in hits):
            continue  # an earlier hit reaches over its centre
        lo, hi = (s, e) if extent is None else extent(int(i))
        for h in hits:  # an earlier hit keeps the moments both would reach
            lo, hi = (max(lo, h[1]), hi) if h[2] < peak else (lo, min(hi, h[0]))
        hits.append([lo, hi, peak, float(scores[i]), int(rows[i]), s])
        made += 1
    out = [Hit(f, *h[:5]) for f, hits in per_file.items() for h in hits]
    out.sort(key=lambda h: (-h.score, h.file, h.start))
    return out


def nearest_centre(
    starts: np.ndarray, window: float, duration: float, time: float, label: str
) -> int:
    """The index of the window (of ``window`` s at ``starts``) whose centre is nearest ``time``."""
    if not math.isfinite(time) or time < 0 or time > duration + _EPS:
        raise InvalidInputError(
            f"{label}: the example time {time!r} s lies outside the recording "
            f"(0 to {duration:.3f} s)."
        )
    ends = np.minimum(starts + window, max(duration, 0.0))
    centres = (starts + np.maximum(ends, starts)) / 2.0
    return int(np.argmin(np.abs(centres - time)))

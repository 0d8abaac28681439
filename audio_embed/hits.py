"""Search-by-example values: the :class:`Example` asked for and the :class:`Hit` found,
and how candidate windows become hits (torch-free)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from attrs import field, frozen

from audio_embed.errors import InvalidInputError

__all__ = ["Example", "Hit", "merge_windows", "nearest_centre"]

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

        for k in (3, 2):  # H:MM:SS.s, M:SS.s: only where the name before them is a file
            parts = text.split(":")
            if len(parts) > k and os.path.isfile(":".join(parts[:-k])):
                try:
                    clock = clock_seconds(":".join(parts[-k:]))
                except ValueError:
                    continue
                return cls(":".join(parts[:-k]), clock)
        path, sep, t = text.rpartition(":")
        try:
            value = float(t)
        except ValueError:
            value = math.nan
        if not sep or not path or not math.isfinite(value) or value < 0:
            raise InvalidInputError(
                f"An example is FILE:SECONDS, e.g. rec.wav:12.5 (or rec.wav:1:23.5). Got {text!r} "
                "instead."
            )
        return cls(path, value)


@frozen
class Hit:
    """One search result: neighbouring windows of one occurrence, merged.

    ``start``/``end`` in seconds; ``peak`` the centre of the best window,
    ``score`` its similarity to the query; ``row`` that window's row.
    """

    file: str
    start: float
    end: float
    peak: float
    score: float
    row: int


def merge_windows(
    files: Sequence[str],
    starts: np.ndarray,
    scores: np.ndarray,
    rows: np.ndarray,
    window: float,
    durations: Sequence[float],
) -> list[Hit]:
    """Candidate windows → one hit per occurrence, best first (non-maximum suppression).

    In order of score, a window that overlaps no hit of its file starts a new
    hit; one that overlaps the best window of exactly one hit widens that hit
    (unless the widened hit would overlap another); any other is dropped. Hits
    of one file never overlap, and a hit spans at most its best window plus
    the overlapping windows around it, whatever the number of candidates.
    """
    per_file: dict[str, list[list[Any]]] = {}  # start, end, peak, score, row, best start
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        f, s = files[i], float(starts[i])
        e = min(s + window, max(float(durations[i]), s))
        hits = per_file.setdefault(f, [])
        owners = [h for h in hits if s < h[1] - _EPS and e > h[0] + _EPS]
        if not owners:
            hits.append([s, e, (s + e) / 2.0, float(scores[i]), int(rows[i]), s])
            continue
        h = owners[0]
        if len(owners) > 1 or abs(s - h[5]) >= window - _EPS:
            continue
        lo, hi = min(h[0], s), max(h[1], e)
        if not any(o is not h and lo < o[1] - _EPS and hi > o[0] + _EPS for o in hits):
            h[0], h[1] = lo, hi
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

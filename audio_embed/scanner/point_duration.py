"""How long is the sound a point marker marks? An estimate from the training recording.

A point marker (a click at a sound's onset) says where a sound starts, not how long
it lasts. Selections give :func:`~audio_embed.scanner.defaults.span_postprocessing`
the marked durations; for points, :meth:`Scanner.fit
<audio_embed.scanner.Scanner.fit>` estimates each marked sound's duration from the
recording's window embeddings after its marker
(:func:`embedding_run_durations`: how long the windows stay like the window
starting at the marker) and, when their median says the sound is long,
sizes the post-processing from it as from selections
(:func:`~audio_embed.scanner.defaults.point_postprocessing`;
``Scanner(postprocessing_from_points=False)`` turns it off). It needs no audio and
no classifier: the sliding-window embeddings fit has already computed.

Chosen leaving one training recording out on the horn and wolf benchmarks (README,
"A second benchmark: horns"): the first estimate is short of the truth for 4 s horns
(2.4–2.7 s for 3.7–4.1 s) and long for 1 s wolf calls (1.3–1.5 s for 0.94 s),
which is why only long estimates change anything, and why long sounds are sized
from a second estimate (:func:`point_durations`: 3.5–3.9 s for those horns).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "BACKGROUND_SECONDS",
    "POINT_SIMILARITY_FRACTION",
    "embedding_run_durations",
    "point_durations",
]

#: The background of a marked sound: the windows ending this many seconds before it.
BACKGROUND_SECONDS = 5.0

#: A marked sound lasts while its windows' similarity to the window starting at the
#: marker stays at least this share of the way from the recording's median similarity
#: up to that window's (chosen on the training splits, README "A second benchmark:
#: horns").
POINT_SIMILARITY_FRACTION = 0.3


def embedding_run_durations(
    starts: np.ndarray,
    embeddings: np.ndarray,
    window: float,
    times: Sequence[float],
    *,
    smooth: float = 0.0,
    fraction: float = POINT_SIMILARITY_FRACTION,
    reference: float = 0.0,
) -> list[float]:
    """Estimated seconds of the sound marked at each of ``times`` (its onset), from
    how long the recording's window embeddings stay like the window starting there.

    ``embeddings``: the recording's sliding windows, normalised, in time order. The
    cosine similarity of every window to the window starting nearest the marker is
    median-smoothed over ``smooth`` seconds; the sound lasts while it stays at least
    ``fraction`` of the way from the background's similarity up to the marker
    window's, the background being the median over the windows that end within
    ``BACKGROUND_SECONDS`` before the marker (or over the recording, if higher).
    The end is the centre of the last such window (a window half in the sound);
    one value per marker, 0 where there is no estimate.

    ``reference`` (seconds): when longer than a window, the similarity is to the
    mean of the windows lying wholly within that many seconds from the marker, not
    to the marker's window alone (a long sound whose timbre drifts away from its
    first window stays like its first seconds; :func:`point_durations`).
    """
    from scipy.ndimage import median_filter

    starts = np.asarray(starts, dtype=np.float64)
    if len(starts) == 0:
        return [0.0] * len(times)
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    hop = float(np.median(np.diff(starts))) if len(starts) > 1 else window
    size = max(1, round(smooth / hop)) if smooth > 0 else 1
    size += 1 - size % 2
    centres = starts + window / 2
    out = []
    for t in times:
        anchor = int(np.argmin(np.abs(starts - t)))
        within = (starts >= starts[anchor]) & (starts + window <= starts[anchor] + reference + 1e-9)
        within[anchor] = True
        ref = x[within].mean(axis=0)
        sim = x @ (ref / max(float(np.linalg.norm(ref)), 1e-12))
        if size > 1:
            sim = median_filter(sim, size=size, mode="nearest")
        # the background: the windows that end in the few seconds before the marker
        # (the recording's median when there are none, or when it is higher)
        before = (starts + window <= t + 1e-9) & (starts + window >= t - BACKGROUND_SECONDS)
        base = float(np.median(sim))
        if before.any():
            base = max(base, float(np.median(sim[before])))
        top = float(sim[anchor])
        if top <= base:
            out.append(0.0)
            continue
        low = base + fraction * (top - base)
        j = anchor
        while j + 1 < len(sim) and sim[j + 1] >= low:
            j += 1
        out.append(max(float(centres[j]) - float(t) + hop / 2, hop))
    return out


def point_durations(
    recordings: Iterable[tuple[Sequence[float], np.ndarray, np.ndarray]],
    window: float,
    *,
    smooth: float = 0.0,
) -> tuple[list[float], list[float]]:
    """The marked sounds' durations, estimated twice, for
    :func:`~audio_embed.scanner.defaults.point_postprocessing`: each recording is
    (its positive points, its window starts, its window embeddings).

    First, like the window starting at each marker (:func:`embedding_run_durations`):
    their median says whether the sound is long. Long sounds' timbre drifts away from
    their first window, so this runs short (horn benchmark: 2.4–2.7 s for 3.7–4.1 s
    horns); the second estimate, which sizes the post-processing, compares each
    window with the mean of the windows lying wholly within that median from the
    marker (``reference``) and reached 3.5–3.9 s there (README, "A second benchmark:
    horns"). Both are one value per point, in the order given (0 = no estimate).
    """
    recs = [(list(times), starts, x) for times, starts, x in recordings if len(times)]
    first = [
        d
        for times, starts, x in recs
        for d in embedding_run_durations(starts, x, window, times, smooth=smooth)
    ]
    valid = [d for d in first if d > 0]
    if not valid:
        return first, list(first)
    reference = statistics.median(valid)
    sized = [
        d
        for times, starts, x in recs
        for d in embedding_run_durations(
            starts, x, window, times, smooth=smooth, reference=reference
        )
    ]
    return first, sized

"""What a scanner uses for each setting the caller leaves unset: the model's own
scan defaults (:meth:`Embedder.scan_defaults`), else the library's.

The library's defaults were chosen on the wolf benchmark (README, "How the
defaults were chosen").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.detect import Postprocessing
from audio_embed.embedders.base import Embedder
from audio_embed.windows import SlidingWindows

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_POSTPROCESSING",
    "LONG_SOUND_HYSTERESIS",
    "LONG_SOUND_WINDOWS",
    "MIN_POINT_MARKERS",
    "SPAN_MIN_DURATION",
    "model_classifier",
    "model_context",
    "model_postprocessing",
    "model_scan_windows",
    "point_postprocessing",
    "span_postprocessing",
]

#: Chosen on the wolf benchmark (README): light smoothing, a region extends while its
#: smoothed score stays above 3/4 of the threshold, split at valleys.
DEFAULT_POSTPROCESSING = Postprocessing(smooth=0.5, hysteresis=0.75, valley=0.5)
#: With selections (positive markers that carry a start and an end), detections shorter
#: than this share of the median marked duration are widened to it (``min_duration``),
#: around their middle (chosen leaving one training recording out on the wolf and horn
#: benchmarks, README "A second benchmark: horns").
SPAN_MIN_DURATION = 1.0
#: Selections whose median is at least this many scan windows long are long sounds: a
#: region then extends while the smoothed score stays above this share of the threshold
#: (``hysteresis``), as long sounds' scores dip inside them (horn benchmark, README).
LONG_SOUND_WINDOWS = 2.0
LONG_SOUND_HYSTERESIS = 0.5
#: Point markers size the post-processing from their estimated durations only when
#: there are at least this many: one estimate can be several times the sound (wolf
#: benchmark: single 1 s calls measured at 3-4 s; five markers of one recording gave
#: a median of 2.68 s), and with two markers of horns the sized post-processing let
#: the threshold's cross-validation flag most of the audio (README "A second
#: benchmark: horns"; rechecked with the second estimate: with a guard of 3 or 5, that
#: wolf recording's markers are still sized as a long sound).
MIN_POINT_MARKERS = 10
#: Seconds of context around each window (see Scanner), unless the model says otherwise.
DEFAULT_CONTEXT = 4.0


def model_classifier(embedder: Embedder, **kwargs: Any) -> CalibratedClassifier:
    """An unfitted classifier on the model's estimator (its ``scan_defaults()``),
    else the automatic choice, keeping every negative window when the model says
    so (``all_negatives``); ``kwargs`` go to :class:`CalibratedClassifier` and win."""
    own = embedder.scan_defaults()
    if own.all_negatives:
        kwargs = {"max_neg_ratio": None, **kwargs}
    if own.classifier is None:
        return CalibratedClassifier(**kwargs)
    return CalibratedClassifier(make_base_estimator(own.classifier), **kwargs)


def model_scan_windows(
    embedder: Embedder,
    window: float | None = None,
    hop: float | None = None,
    encoding: Literal["per_window", "shared"] | None = None,
) -> SlidingWindows:
    """Sliding windows: each of ``window``, ``hop``, ``encoding`` when given,
    else the model's (``scan_defaults()``), else the library's."""
    generic, own = SlidingWindows(), embedder.scan_defaults()
    return SlidingWindows(
        window if window is not None else own.window or generic.window,
        hop if hop is not None else own.hop or generic.hop,
        encoding or generic.encoding,
    )


def model_context(embedder: Embedder) -> float:
    own = embedder.scan_defaults().context
    return DEFAULT_CONTEXT if own is None else own


def model_postprocessing(embedder: Embedder) -> Postprocessing:
    own = embedder.scan_defaults().extent
    return (
        DEFAULT_POSTPROCESSING if own is None else attrs.evolve(DEFAULT_POSTPROCESSING, extent=own)
    )


def span_postprocessing(
    base: Postprocessing, durations: Sequence[float], window: float, *, estimated: bool = False
) -> tuple[Postprocessing, dict[str, Any]]:
    """The post-processing sized from the marked selections' ``durations`` (seconds),
    and a summary of what was derived from what (``Scanner.fit`` puts it in
    ``training_summary["postprocessing"]``).

    With no durations (point markers) ``base`` is returned unchanged. Otherwise, with
    ``D`` the median duration: ``min_duration`` at least ``SPAN_MIN_DURATION * D``; and
    when ``D`` is at least ``LONG_SOUND_WINDOWS`` scan windows (``window`` seconds),
    ``hysteresis`` at most ``LONG_SOUND_HYSTERESIS``. A setting of ``base`` that already
    goes further (a longer ``min_duration``, a lower ``hysteresis``) is kept.

    ``estimated``: the durations were estimated from point markers
    (:mod:`audio_embed.scanner.point_duration`), not marked; the summary says so
    (``source`` ``"points (estimated)"``).
    """
    spans = [float(d) for d in durations if float(d) > 0]
    if not spans:
        return base, {
            "source": "points",
            "reason": "no marked selection (points only): the scanner's post-processing",
            "postprocessing": base.as_dict(),
        }
    median = statistics.median(spans)
    changes: dict[str, Any] = {
        "min_duration": max(base.min_duration, round(SPAN_MIN_DURATION * median, 3))
    }
    long_sound = median >= LONG_SOUND_WINDOWS * window
    if long_sound:
        changes["hysteresis"] = min(base.hysteresis, LONG_SOUND_HYSTERESIS)
    post = attrs.evolve(base, **changes)
    derived = [
        f"{k} {getattr(base, k):g} -> {v:g}" for k, v in changes.items() if v != getattr(base, k)
    ]
    what = (
        f"estimated from {len(spans)} point marker(s) (how long the windows after each "
        "stay like its first ones)"
        if estimated
        else f"from {len(spans)} marked selection(s)"
    )
    reason = (
        f"{what}, median {median:.2f} s: "
        f"detections widened to at least {post.min_duration:g} s ("
        + ("the median" if SPAN_MIN_DURATION == 1 else f"{SPAN_MIN_DURATION:g} x the median")
        + ")"
        + (
            f"; a long sound (at least {LONG_SOUND_WINDOWS:g} windows of {window:g} s), so "
            f"hysteresis at most {LONG_SOUND_HYSTERESIS:g}"
            if long_sound
            else f"; shorter than {LONG_SOUND_WINDOWS:g} windows of {window:g} s, hysteresis kept"
        )
    )
    return post, {
        "source": "points (estimated)" if estimated else "selections",
        ("points" if estimated else "selections"): len(spans),
        "median_duration": round(median, 3),
        "long_sound": long_sound,
        "changed": derived,
        "reason": reason,
        "postprocessing": post.as_dict(),
    }


def point_postprocessing(
    base: Postprocessing,
    estimates: Sequence[float],
    window: float,
    sizes: Sequence[float] | None = None,
) -> tuple[Postprocessing, dict[str, Any]]:
    """The post-processing for point markers, from the estimated durations of the marked
    sounds (:mod:`audio_embed.scanner.point_duration`; seconds, 0 = no estimate), and a
    summary as :func:`span_postprocessing` gives.

    Only a long sound, estimated from enough markers, changes anything: with at
    least ``MIN_POINT_MARKERS`` estimates whose median ``D`` is at least
    ``LONG_SOUND_WINDOWS`` scan windows, the post-processing is sized from it as from
    selections of that median (``min_duration`` ``D``, ``hysteresis`` 0.5; ``source``
    ``"points (estimated)"``); otherwise ``base`` is returned unchanged (``source``
    ``"points"``, with ``estimated_duration``). The estimates run long for sounds
    shorter than the window (wolf benchmark: 1.3–1.5 s for 0.94 s calls), so widening
    short sounds to them cost event F1 there (README, "A second benchmark: horns").

    ``sizes``: the durations a long sound is sized from, when they differ from the
    ``estimates`` that decide it is long (the second estimate of
    :func:`~audio_embed.scanner.point_duration.point_durations`); the summary then
    gives the first median as ``estimated_duration``.
    """
    valid = [float(d) for d in estimates if float(d) > 0]
    enough = len(valid) >= MIN_POINT_MARKERS
    if enough and statistics.median(valid) >= LONG_SOUND_WINDOWS * window:
        sized = valid if sizes is None else [float(d) for d in sizes if float(d) > 0]
        post, long_summary = span_postprocessing(base, sized or valid, window, estimated=True)
        if sizes is not None:
            first = statistics.median(valid)
            long_summary["estimated_duration"] = round(first, 3)
            long_summary["reason"] += (
                f"; the first estimate (like the marker's window alone), median {first:.2f} s, "
                "decided it is long"
            )
        return post, long_summary
    summary: dict[str, Any] = {
        "source": "points",
        "reason": "no marked selection (points only): the scanner's post-processing",
        "postprocessing": base.as_dict(),
    }
    if valid:
        median = statistics.median(valid)
        summary.update(
            points=len(valid),
            estimated_duration=round(median, 3),
            reason=(
                f"points only; the marked sounds are estimated at {median:.2f} s (median of "
                f"{len(valid)}), "
                + (
                    f"shorter than {LONG_SOUND_WINDOWS:g} windows of {window:g} s"
                    if enough
                    else f"fewer than {MIN_POINT_MARKERS} estimates, too few to size from"
                )
                + ": the scanner's post-processing"
            ),
        )
    return base, summary

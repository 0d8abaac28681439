"""What a scanner uses for each setting the caller leaves unset: the model's own
scan defaults (:meth:`Embedder.scan_defaults`), else the library's.

The library's defaults were chosen on the wolf benchmark (README, "How the
defaults were chosen").
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.detect import Postprocessing
from audio_embed.embedders.base import Embedder
from audio_embed.windows import SlidingWindows

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_POSTPROCESSING",
    "model_classifier",
    "model_context",
    "model_postprocessing",
    "model_scan_windows",
]

#: Chosen on the wolf benchmark (README): light smoothing, a region extends while its
#: smoothed score stays above 3/4 of the threshold, split at valleys.
DEFAULT_POSTPROCESSING = Postprocessing(smooth=0.5, hysteresis=0.75, valley=0.5)
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

"""The :class:`Scanner`: embedder + window strategies + calibrated classifier.

``fit`` learns from recordings with marked moments; ``scan`` scores every
sliding window of a new recording and fuses the windows above a threshold into
:class:`Detection` regions. Nothing here knows which model it is talking to.

Modules: :mod:`~audio_embed.scanner.core` (Scanner: compose, fit, scan;
ScanResult, Recording), :mod:`~audio_embed.scanner.streaming` (sliding-window
embeddings: block decoding, the cache, streaming) and
:mod:`~audio_embed.scanner.persistence` (saved scanner files),
:mod:`~audio_embed.scanner.defaults` (the model's or the library's settings for
what the caller leaves unset), :mod:`~audio_embed.scanner.crossval` (the
automatic threshold), :mod:`~audio_embed.scanner.adapt` (self-training) and
:mod:`~audio_embed.scanner.augmented` (mixing augmentation into training).
Post-processing from window scores to detections is :mod:`audio_embed.detect`.
"""

from __future__ import annotations

from audio_embed.detect import Detection, Postprocessing, fuse_windows
from audio_embed.scanner.core import STD_FLOOR, Normalization, Recording, Scanner, ScanResult
from audio_embed.scanner.defaults import (
    DEFAULT_CONTEXT,
    DEFAULT_POSTPROCESSING,
    model_classifier,
    model_scan_windows,
)
from audio_embed.scanner.persistence import (
    MAX_SCANNER_BYTES,
    SCANNER_FORMAT,
    SCANNER_FORMAT_VERSION,
    TRUSTED_MODULE_PREFIXES,
)
from audio_embed.scanner.streaming import BLOCK_SECONDS, Source

__all__ = [
    "BLOCK_SECONDS",
    "DEFAULT_CONTEXT",
    "DEFAULT_POSTPROCESSING",
    "MAX_SCANNER_BYTES",
    "SCANNER_FORMAT",
    "SCANNER_FORMAT_VERSION",
    "STD_FLOOR",
    "TRUSTED_MODULE_PREFIXES",
    "Detection",
    "Normalization",
    "Postprocessing",
    "Recording",
    "ScanResult",
    "Scanner",
    "Source",
    "fuse_windows",
    "model_classifier",
    "model_scan_windows",
]

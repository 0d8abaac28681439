"""The :class:`Scanner`: embedder + window strategies + calibrated classifier.

``fit`` learns from recordings with marked moments; ``scan`` scores every
sliding window of a new recording and fuses the windows above a threshold into
:class:`Detection` regions. Nothing here knows which model it is talking to.

Modules: :mod:`~audio_embed.scanner.core` (Scanner: compose, fit, scan;
ScanResult, Recording), :mod:`~audio_embed.scanner.streaming` (sliding-window
embeddings: block decoding, the cache, streaming) and
:mod:`~audio_embed.scanner.persistence` (saved scanner files).
"""

from __future__ import annotations

from audio_embed.scanner.core import (
    DEFAULT_POSTPROCESSING,
    STD_FLOOR,
    Detection,
    Normalization,
    Postprocessing,
    Recording,
    Scanner,
    ScanResult,
    fuse_windows,
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

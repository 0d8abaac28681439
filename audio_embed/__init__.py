"""audio_embed: find a target sound in long recordings from a few marked moments."""

from __future__ import annotations

from audio_embed.audio import (
    AudioInfo,
    load_audio,
    probe_audio,
    resample,
    stream_audio,
)
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.embedders import (
    Embedder,
    LayeredEmbedder,
    LogMelEmbedder,
    MultiLayerEmbedder,
    TorchaudioEmbedder,
)
from audio_embed.errors import (
    AudioDecodeError,
    AudioEmbedError,
    AudioFileNotFoundError,
    Cancelled,
    CheckpointError,
    CorruptAudioError,
    EmptyAudioError,
    InvalidInputError,
    MarkerError,
    NoAudioStreamError,
    ScannerFileError,
    TrainingDataError,
    UnknownEmbedderError,
)
from audio_embed.formats import read_markers, write_detections
from audio_embed.progress import CancelToken, ProgressEvent
from audio_embed.registry import (
    EmbedderSpec,
    create_embedder,
    embed_dim,
    get_spec,
    list_embedders,
    register_embedder,
)
from audio_embed.scanner import Detection, Recording, Scanner, ScanResult
from audio_embed.store import ScannerStore
from audio_embed.windows import Markers, SlidingWindows, TargetedWindows

__version__ = "0.1.0"

_LAZY = {
    "ASTEmbedder": "audio_embed.embedders.ast",
    "BEATsEmbedder": "audio_embed.embedders.beats",
    "EATEmbedder": "audio_embed.embedders.eat",
}


def __getattr__(name: str) -> object:
    """Import the heavy model backends (transformers…) only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audio_embed' has no attribute {name!r}")


__all__ = [
    "ASTEmbedder",
    "AudioDecodeError",
    "AudioEmbedError",
    "AudioFileNotFoundError",
    "AudioInfo",
    "BEATsEmbedder",
    "CalibratedClassifier",
    "CancelToken",
    "Cancelled",
    "CheckpointError",
    "CorruptAudioError",
    "Detection",
    "EATEmbedder",
    "Embedder",
    "EmbedderSpec",
    "EmbeddingCache",
    "EmptyAudioError",
    "InvalidInputError",
    "LayeredEmbedder",
    "LogMelEmbedder",
    "MarkerError",
    "Markers",
    "MultiLayerEmbedder",
    "NoAudioStreamError",
    "ProgressEvent",
    "Recording",
    "ScanResult",
    "Scanner",
    "ScannerFileError",
    "ScannerStore",
    "SlidingWindows",
    "TargetedWindows",
    "TorchaudioEmbedder",
    "TrainingDataError",
    "UnknownEmbedderError",
    "__version__",
    "create_embedder",
    "embed_dim",
    "get_spec",
    "list_embedders",
    "load_audio",
    "probe_audio",
    "read_markers",
    "register_embedder",
    "resample",
    "stream_audio",
    "write_detections",
]

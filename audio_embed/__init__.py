"""audio_embed: find a target sound in long recordings from a few marked moments."""

from __future__ import annotations

from audio_embed.audio import (
    AudioInfo,
    load_audio,
    probe_audio,
    resample,
    stream_audio,
)
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
from audio_embed.registry import (
    EmbedderSpec,
    create_embedder,
    embed_dim,
    get_spec,
    list_embedders,
    register_embedder,
)

__version__ = "0.1.0"

__all__ = [
    "AudioDecodeError",
    "AudioEmbedError",
    "AudioFileNotFoundError",
    "AudioInfo",
    "Cancelled",
    "CheckpointError",
    "CorruptAudioError",
    "Embedder",
    "EmbedderSpec",
    "EmptyAudioError",
    "InvalidInputError",
    "LayeredEmbedder",
    "LogMelEmbedder",
    "MarkerError",
    "MultiLayerEmbedder",
    "NoAudioStreamError",
    "ScannerFileError",
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
    "register_embedder",
    "resample",
    "stream_audio",
]

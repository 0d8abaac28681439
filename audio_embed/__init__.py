"""audio_embed: find a target sound in long recordings from a few marked moments.

Mark a few moments of the sound (a ``file,time,kind`` CSV, Audacity labels or
Raven selections), train a scanner and scan other files::

    from audio_embed import Recording, Scanner, read_markers

    scanner = Scanner.from_name("LOGMEL")  # weight-free; list_embedders() for the others
    markers = read_markers("markers.csv")  # file,time,kind (positive|soft|negative)
    scanner.fit([Recording(path, m) for path, m in markers.items()])
    print(scanner.describe())  # windows, classifier, threshold: what train prints
    result = scanner.scan("long_video.mp4")  # any audio or video file FFmpeg reads
    for d in result.detections():  # at the threshold fit chose (scanner.threshold_)
        print(d.start, d.end, d.score)
    scanner.save("horn.scanner")  # Scanner.load("horn.scanner") later

Then ``audio_embed.plot.plot_result("a.png", result)`` draws the scores, and
``audio_embed.batch.scan_to_folder`` scans folders into result files. The same
from a shell: ``audio-embed demo``, ``audio-embed train``, ``audio-embed scan``
(``audio-embed --help``). The README has the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audio_embed.errors import (
    AudioDecodeError,
    AudioEmbedError,
    AudioFileNotFoundError,
    Cancelled,
    CheckpointError,
    CorruptAudioError,
    EmptyAudioError,
    IndexFileError,
    InvalidInputError,
    MarkerError,
    NoAudioStreamError,
    ScannerFileError,
    TrainingDataError,
    UnknownEmbedderError,
)
from audio_embed.progress import CancelToken, ProgressEvent

if TYPE_CHECKING:  # imported on first use (see __getattr__), so the CLI starts fast
    from audio_embed.audio import (
        AudioInfo,
        describe_audio_streams,
        load_audio,
        probe_audio,
        resample,
        stream_audio,
    )
    from audio_embed.cache import EmbeddingCache
    from audio_embed.classifier import CalibratedClassifier
    from audio_embed.detect import Postprocessing
    from audio_embed.embedders import (
        Embedder,
        LayeredEmbedder,
        LogMelEmbedder,
        MultiLayerEmbedder,
        TorchaudioEmbedder,
    )
    from audio_embed.embedders.ast import ASTEmbedder
    from audio_embed.embedders.beats import BEATsEmbedder
    from audio_embed.embedders.eat import EATEmbedder
    from audio_embed.embedders.shared import FrameGeometry
    from audio_embed.formats import read_markers, register_format, write_detections
    from audio_embed.index import EmbeddingIndex, Example, Hit
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

#: The modules behind the lazily imported names: torch, scikit-learn and the model
#: backends load on first use of a name that needs them, not on ``import audio_embed``.
_LAZY_MODULES = {
    "audio_embed.audio": (
        "AudioInfo",
        "describe_audio_streams",
        "load_audio",
        "probe_audio",
        "resample",
        "stream_audio",
    ),
    "audio_embed.cache": ("EmbeddingCache",),
    "audio_embed.classifier": ("CalibratedClassifier",),
    "audio_embed.detect": ("Postprocessing",),
    "audio_embed.embedders": (
        "Embedder",
        "LayeredEmbedder",
        "LogMelEmbedder",
        "MultiLayerEmbedder",
        "TorchaudioEmbedder",
    ),
    "audio_embed.embedders.ast": ("ASTEmbedder",),
    "audio_embed.embedders.beats": ("BEATsEmbedder",),
    "audio_embed.embedders.eat": ("EATEmbedder",),
    "audio_embed.embedders.shared": ("FrameGeometry",),
    "audio_embed.formats": ("read_markers", "register_format", "write_detections"),
    "audio_embed.index": ("EmbeddingIndex", "Example", "Hit"),
    "audio_embed.registry": (
        "EmbedderSpec",
        "create_embedder",
        "embed_dim",
        "get_spec",
        "list_embedders",
        "register_embedder",
    ),
    "audio_embed.scanner": ("Detection", "Recording", "Scanner", "ScanResult"),
    "audio_embed.store": ("ScannerStore",),
    "audio_embed.windows": ("Markers", "SlidingWindows", "TargetedWindows"),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}


def __getattr__(name: str) -> object:
    """Import a public name's module on first use (PEP 562) and keep the name."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'audio_embed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "EmbeddingIndex",
    "EmptyAudioError",
    "Example",
    "FrameGeometry",
    "Hit",
    "IndexFileError",
    "InvalidInputError",
    "LayeredEmbedder",
    "LogMelEmbedder",
    "MarkerError",
    "Markers",
    "MultiLayerEmbedder",
    "NoAudioStreamError",
    "Postprocessing",
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
    "describe_audio_streams",
    "embed_dim",
    "get_spec",
    "list_embedders",
    "load_audio",
    "probe_audio",
    "read_markers",
    "register_embedder",
    "register_format",
    "resample",
    "stream_audio",
    "write_detections",
]

"""One exception hierarchy for the whole library.

Every error the library raises on purpose is an :class:`AudioEmbedError`, so a
caller (and the CLI) can catch the library's mistakes apart from bugs. Where a
built-in exception type fits too (``ValueError``, ``FileNotFoundError``…), the
class derives from both so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AudioDecodeError",
    "AudioEmbedError",
    "AudioFileNotFoundError",
    "Cancelled",
    "CheckpointError",
    "CorruptAudioError",
    "EmptyAudioError",
    "IndexFileError",
    "InvalidInputError",
    "MarkerError",
    "NoAudioStreamError",
    "ResultFileError",
    "ScannerFileError",
    "TrainingDataError",
    "UnknownEmbedderError",
    "describe_error",
]


class AudioEmbedError(Exception):
    """Base class of every error audio_embed raises on purpose."""


class InvalidInputError(AudioEmbedError, ValueError):
    """An argument or array has the wrong shape, type, rate or values."""


class AudioDecodeError(AudioEmbedError):
    """An audio or video file could not be read. ``path`` names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AudioFileNotFoundError(AudioDecodeError, FileNotFoundError):
    """The file does not exist (or is not a regular file)."""


class NoAudioStreamError(AudioDecodeError):
    """The container opened but holds no audio stream (a silent video, an image…)."""


class CorruptAudioError(AudioDecodeError):
    """The data is not a container FFmpeg can read, decoding broke off, or what it holds
    cannot be sound (NaN samples, a sample rate below ``audio.MIN_SAMPLE_RATE``)."""


class EmptyAudioError(AudioDecodeError):
    """The file decoded to zero samples."""


class UnknownEmbedderError(AudioEmbedError, KeyError):
    """No embedder is registered under that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(AudioEmbedError):
    """Weights could not be found, loaded, or do not fit the architecture."""


class MarkerError(AudioEmbedError, ValueError):
    """Markers are malformed: bad time, unknown kind, unreadable file."""


class TrainingDataError(AudioEmbedError, ValueError):
    """The marked windows cannot train a classifier (one class only, none at all)."""


class ScannerFileError(AudioEmbedError):
    """A saved scanner is unreadable, unsafe, or made for another embedder."""


class Cancelled(AudioEmbedError):
    """A long call stopped because its cancellation token was set."""


class ResultFileError(AudioEmbedError, ValueError):
    """A result file (CSV, JSON, Audacity labels, Raven table, subtitles) cannot be read back."""


def describe_error(exc: BaseException) -> str:
    """One line for a person: the message of a library error, ``strerror: filename``
    of an OS error, ``TypeName: message`` of anything else."""
    if isinstance(exc, OSError) and not isinstance(exc, AudioEmbedError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, AudioEmbedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class IndexFileError(AudioEmbedError):
    """An embedding index is unreadable, damaged, of another format, or made with
    another embedder."""

"""An on-disk cache of sliding-window embeddings, so a re-scan never decodes.

An entry is keyed by the file's identity (resolved path, size, mtime in ns),
the audio stream decoded (track 0 and track 1 of a file never share an entry),
the embedder's :meth:`~audio_embed.Embedder.cache_id`, the window settings and
the cache format version. Entries are ``.npz`` files written atomically
(temporary file, then rename): a crash or a full disk never leaves a partial
entry under a real name. An unreadable or corrupt entry is recomputed with a
warning; an unwritable cache directory only costs a warning.

Location: ``$AUDIO_EMBED_CACHE_DIR`` when set, else the platform's user cache
directory (``~/.cache/audio_embed/embeddings`` on Linux), or the ``directory``
argument.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from audio_embed._io import atomic_writer
from audio_embed._media import AUDIO_EXTENSIONS

__all__ = ["CACHE_ENV", "CACHE_FORMAT_VERSION", "CachedEmbeddings", "EmbeddingCache"]

log = logging.getLogger(__name__)

CACHE_ENV = "AUDIO_EMBED_CACHE_DIR"
CACHE_FORMAT_VERSION = 1


@frozen
class CachedEmbeddings:
    """Sliding-window embeddings of one file; ``band_edge``: its upper band edge in Hz
    (:mod:`audio_embed.bandwidth`), None when unknown (silence; an entry cached before
    the estimate existed); ``peak``: its largest absolute sample as decoded, None when
    unknown (an entry cached before it was kept: then no silence warning)."""

    starts: np.ndarray
    embeddings: np.ndarray
    duration: float
    band_edge: float | None = None
    peak: float | None = None

    def arrays(self, prefix: str = "") -> dict[str, Any]:
        """The arrays an ``.npz`` holds for it, each name after ``prefix``; ``band_edge``
        and ``peak`` only when known (:func:`read_entry` reads them back as None)."""
        arrays: dict[str, Any] = {
            "starts": np.asarray(self.starts, dtype=np.float64),
            "embeddings": np.asarray(self.embeddings, dtype=np.float32),
            "duration": np.float64(self.duration),
        }
        if self.band_edge is not None:
            arrays["band_edge"] = np.float64(self.band_edge)
        if self.peak is not None:
            arrays["peak"] = np.float64(self.peak)
        return {prefix + k: v for k, v in arrays.items()}


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("audio_embed")) / "embeddings"


#: What reading an entry that is not one raises (TypeError: a 'duration' of several values).
ENTRY_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


def read_entry(path: Path) -> tuple[CachedEmbeddings, str | None]:
    """The embeddings in an ``.npz`` written as the cache writes them (``embed`` and
    ``embed_dataset`` too), their shapes checked, and its ``settings`` text when it holds
    one. Raises one of :data:`ENTRY_ERRORS` when it is not such a file."""
    with np.load(path, allow_pickle=False) as data:
        entry = CachedEmbeddings(
            starts=np.asarray(data["starts"], dtype=np.float64),
            embeddings=np.asarray(data["embeddings"], dtype=np.float32),
            duration=float(data["duration"]),
            band_edge=float(data["band_edge"]) if "band_edge" in data.files else None,
            peak=float(data["peak"]) if "peak" in data.files else None,
        )
        settings = str(data["settings"]) if "settings" in data.files else None
    shapes_ok = entry.embeddings.ndim == 2 and entry.starts.ndim == 1
    if not shapes_ok or len(entry.starts) != len(entry.embeddings):
        raise ValueError("inconsistent shapes")
    return entry, settings


class EmbeddingCache:
    """Sliding-window embeddings on disk, one ``.npz`` per (file, settings)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self._warned_unwritable = False

    def key(
        self,
        path: str | os.PathLike[str],
        settings: dict[str, object],
        *,
        audio_stream: int | str = 0,
    ) -> str | None:
        """The entry name for ``path`` with ``settings``, or None if the file is gone.

        ``audio_stream``: the position of the decoded stream among the file's audio
        streams (0, the first, keeps the keys of entries made before the choice)."""
        try:
            p = Path(path).resolve()
            st = p.stat()
        except OSError:
            return None
        identity = {
            "path": str(p),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "format": CACHE_FORMAT_VERSION,
            **settings,
        }
        if p.suffix.lower() not in AUDIO_EXTENSIONS:
            # a video's times follow the container's clock since a late-starting sound
            # is preceded by silence: entries made before that are not reused
            identity["timeline"] = "container"
        if audio_stream:
            identity["audio_stream"] = audio_stream
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def _file(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def has(self, key: str | None) -> bool:
        """Whether an entry is stored under ``key`` (not read: :meth:`get` may still
        find it unreadable)."""
        return key is not None and self._file(key).exists()

    def get(self, key: str | None) -> CachedEmbeddings | None:
        """The cached entry, or None (missing, unreadable or corrupt: with a warning)."""
        if key is None:
            return None
        path = self._file(key)
        if not path.exists():
            return None
        try:
            return read_entry(path)[0]
        except ENTRY_ERRORS as exc:
            log.warning("Embedding cache entry %s is unreadable (%s); recomputing it.", path, exc)
            return None

    def put(self, key: str | None, entry: CachedEmbeddings) -> bool:
        """Store ``entry`` atomically. Returns False (and warns once) when it cannot."""
        if key is None:
            return False
        try:
            with atomic_writer(self._file(key)) as fh:
                np.savez(fh, **entry.arrays())
            return True
        except OSError as exc:
            if not self._warned_unwritable:
                log.warning(
                    "Cannot write the embedding cache in %s (%s); continuing without it.",
                    self.directory,
                    exc,
                )
                self._warned_unwritable = True
            return False

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        n = 0
        for f in self.directory.glob("*.npz"):
            f.unlink(missing_ok=True)
            n += 1
        return n

"""Files of an :class:`~audio_embed.index.EmbeddingIndex`: manifest, file table, arrays.

The manifest is JSON, the file table SQLite (stdlib), the arrays ``.npy`` read
with ``allow_pickle=False``; each reader checks what it reads and raises
:class:`~audio_embed.errors.IndexFileError` with what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from attrs import define, field, frozen

from audio_embed.errors import IndexFileError

__all__ = [
    "FIRST_STREAM_INDEX_VERSION",
    "INDEX_FORMAT",
    "INDEX_FORMAT_VERSION",
    "MANIFEST",
    "AddReport",
    "IndexedFile",
    "file_identity",
    "file_sha256",
    "read_manifest",
    "read_npy",
    "read_sqlite",
    "unit_rows",
    "write_sqlite",
]

INDEX_FORMAT = "audio_embed.index"
#: 2: the files are decoded from another audio stream than the first (``audio_stream``);
#: written only then, so that a release before it refuses the index instead of adding
#: files from the first stream (other indexes stay 1).
INDEX_FORMAT_VERSION = 2
FIRST_STREAM_INDEX_VERSION = 1
MANIFEST = "index.json"
LOCK = ".lock"  # writers take turns (EmbeddingIndex._apply)


@frozen
class IndexedFile:
    """One recording in an index: identity, duration and its rows; ``band_edge`` and
    ``peak`` as :class:`~audio_embed.cache.CachedEmbeddings` has them (None in an
    index written before they were kept, or when unknown)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    duration: float
    first_row: int
    n_rows: int
    band_edge: float | None = None
    peak: float | None = None


def file_identity(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(p: Path) -> dict[str, Any]:
    if not p.exists():
        raise IndexFileError(f"Index not found: {p}")
    if not p.is_dir() or not (p / MANIFEST).is_file():
        raise IndexFileError(
            f"{p} is not an audio_embed index (an index is a directory holding {MANIFEST}; "
            "make one with `audio-embed index` or EmbeddingIndex.create)."
        )
    try:
        manifest = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IndexFileError(
            f"{p}: {MANIFEST} is unreadable ({exc}); the index is damaged."
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
        raise IndexFileError(f"{p} is not an audio_embed index ({MANIFEST} is of another format).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > INDEX_FORMAT_VERSION:
        raise IndexFileError(
            f"{p} was written by a newer audio_embed ({manifest.get('library_version')}); upgrade."
        )
    for key in ("generation", "embedder", "windows", "vector_dtype", "count", "n_files", "ann"):
        if key not in manifest:
            raise IndexFileError(f"{p}: {MANIFEST} lacks the {key!r} field; the index is damaged.")
    return manifest


def read_npy(path: Path, ndim: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexFileError(f"{path} is missing or damaged ({exc}).") from exc
    if not isinstance(arr, np.ndarray) or arr.ndim != ndim or arr.dtype.kind != "f":
        raise IndexFileError(f"{path} does not hold the expected float array; damaged.")
    return arr


_SCHEMA = (
    "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER, "
    "mtime_ns INTEGER, sha256 TEXT, duration REAL, first_row INTEGER, n_rows INTEGER, "
    "starts BLOB, band_edge REAL, peak REAL)"
)
#: the file table's columns as read; ``band_edge`` and ``peak`` are absent from
#: indexes written before them (read as None; a release before them reads these
#: columns by name and ignores the new ones)
_COLUMNS = ("path", "size", "mtime_ns", "sha256", "duration", "first_row", "n_rows", "starts")
_OPTIONAL = ("band_edge", "peak")


def write_sqlite(path: Path, files: list[IndexedFile], starts: list[np.ndarray]) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    tmp.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(tmp)
        try:
            with con:
                con.execute(_SCHEMA)
                con.executemany(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            i,
                            f.path,
                            f.size,
                            f.mtime_ns,
                            f.sha256,
                            f.duration,
                            f.first_row,
                            f.n_rows,
                            s.astype("<f8").tobytes(),
                            f.band_edge,
                            f.peak,
                        )
                        for i, (f, s) in enumerate(zip(files, starts, strict=True))
                    ],
                )
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_sqlite(path: Path) -> tuple[list[IndexedFile], list[np.ndarray]]:
    if not path.is_file():
        raise IndexFileError(f"{path} is missing; the index is damaged.")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            have = {row[1] for row in con.execute("PRAGMA table_info(files)")}
            columns = [*_COLUMNS, *(c if c in have else "NULL" for c in _OPTIONAL)]
            rows = con.execute(
                f"SELECT {', '.join(columns)} FROM files ORDER BY first_row"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise IndexFileError(f"{path} is not a readable file table ({exc}); damaged.") from exc
    files, starts = [], []
    expected = 0
    for path_, size, mtime, sha, dur, first, n, blob, edge, peak in rows:
        s = np.frombuffer(blob, dtype="<f8").astype(np.float64)
        if first != expected or len(s) != n:
            raise IndexFileError(f"{path}: the file table is inconsistent; damaged.")
        files.append(
            IndexedFile(
                str(path_),
                int(size),
                int(mtime),
                str(sha),
                float(dur),
                first,
                n,
                None if edge is None else float(edge),
                None if peak is None else float(peak),
            )
        )
        starts.append(s)
        expected += n
    return files, starts


@define
class AddReport:
    """What :meth:`EmbeddingIndex.add` did."""

    added: list[str] = field(factory=list)
    updated: list[str] = field(factory=list)
    unchanged: list[str] = field(factory=list)
    failed: list[tuple[str, str]] = field(factory=list)
    windows_added: int = 0
    moved: list[tuple[str, str]] = field(factory=list)
    """(old path, new path): an indexed file no longer there, found again under a new
    name with the same content; its windows were kept, not embedded again."""
    warnings: list[str] = field(factory=list)
    """Said of the files added (a silent one: :func:`~audio_embed.bandwidth.silence_warning`),
    also logged."""


def unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length (zero rows stay zero) and their lengths."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1).astype(np.float32)
    safe = np.where(norms > 1e-12, norms, 1.0)
    return (x / safe[:, None]).astype(np.float32), norms

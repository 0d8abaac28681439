"""A searchable archive of sliding-window embeddings: :class:`EmbeddingIndex`.

An index holds, for every sliding window of every file added to it, the
window's vector (after the scanner's per-recording normalisation), its file
and start time, together with the embedder that made the vectors and the
window settings. It answers "what sounds like this moment?" (search by
example) without decoding anything again, and its vectors train a scanner
directly (:func:`audio_embed.review.fit_from_index`).

Layout of ``ARCHIVE.idx`` (a directory)::

    index.json           format, version, embedder, windows, counts, generation g
    meta-g.sqlite        one row per file: path, size, mtime, sha256, duration,
                         first row, window count, window starts (float64 blob)
    vectors-g.npy        unit vectors, float16 [windows, dim] (no pickle)
    norms-g.npy          their lengths before unit scaling, float32 [windows]
    ann-g.faiss          the nearest-neighbour index (FAISS's own format, see _ann.py)

A vector is the window's embedding z-scored with the mean and standard
deviation of all the windows of its recording (exactly what a scanner with
``normalization="recording"`` trains and scans on), then scaled to unit
length; ``unit * norm`` gives the z-scored vector back. Every change writes a
new generation of files and then replaces ``index.json`` in one rename: an
interrupted ``add`` leaves the previous archive intact.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from audio_embed._ann import ANN_LIBRARY, AnnIndex
from audio_embed._index_store import (
    FIRST_STREAM_INDEX_VERSION,
    INDEX_FORMAT,
    INDEX_FORMAT_VERSION,
    LOCK,
    MANIFEST,
    AddReport,
    IndexedFile,
    file_identity,
    file_sha256,
    read_manifest,
    read_npy,
    read_sqlite,
    unit_rows,
    write_sqlite,
)
from audio_embed._io import atomic_writer
from audio_embed._media import path_list
from audio_embed.audio import AudioStream, check_audio_stream, saved_audio_stream
from audio_embed.bandwidth import recording_silence_warning
from audio_embed.cache import CachedEmbeddings, EmbeddingCache
from audio_embed.embedders.base import Embedder
from audio_embed.errors import AudioEmbedError, IndexFileError, InvalidInputError
from audio_embed.hits import Example, Hit, hit_extent, merge_windows, nearest_centre
from audio_embed.progress import CancelToken, ProgressCallback
from audio_embed.scanner import STD_FLOOR, Scanner
from audio_embed.scanner.defaults import model_scan_windows
from audio_embed.windows import SlidingWindows, TargetedWindows

__all__ = [
    "INDEX_FORMAT",
    "INDEX_FORMAT_VERSION",
    "AddReport",
    "EmbeddingIndex",
    "Example",
    "Hit",
    "IndexedFile",
    "merge_windows",
]

log = logging.getLogger(__name__)

_EPS = 1e-6
#: An example from a shorter recording (a clip of the sound) is normalised by the index's
#: statistics, not its own (:meth:`EmbeddingIndex.example_vector`).
SHORT_EXAMPLE_SECONDS = 30.0
#: The share of the windows whose files' statistics must be known to normalise a clip.
STATS_COVERAGE = 0.9
_RELOADS = 3  # newer generations a reader follows before it gives up


def recording_zscore(embeddings: np.ndarray) -> np.ndarray:
    """The scanner's per-recording normalisation: z-score over all of the recording's windows."""
    mean, std = recording_stats(embeddings)
    out: np.ndarray = ((embeddings - mean) / std).astype(np.float32)
    return out


def recording_stats(embeddings: np.ndarray) -> np.ndarray:
    """A recording's mean and standard deviation over its windows (the deviation
    floored at ``STD_FLOOR``), as ``[2, dim]``."""
    return np.stack([embeddings.mean(axis=0), np.maximum(embeddings.std(axis=0), STD_FLOOR)])


class EmbeddingIndex:
    """Sliding-window vectors of many recordings, searchable by example.

    Make one with :meth:`create`, open one with :meth:`open`; :meth:`add`
    files (unchanged ones are skipped), :meth:`search` by example.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        *,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.cache = cache
        self.batch_size = batch_size
        self._embedder = embedder
        self._files: list[IndexedFile] = []
        self._starts: list[np.ndarray] = []
        self._unit: np.ndarray = np.zeros((0, self.dim), np.float16)
        self._norms: np.ndarray = np.zeros(0, np.float32)
        # each file's raw mean and standard deviation ([files, 2, dim], NaN: unknown);
        # None: an index written before they were kept
        self._stats: np.ndarray | None = None
        self._ann: AnnIndex | None = None
        self._load_newest()

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        embedder: Embedder,
        *,
        windows: SlidingWindows | None = None,
        dtype: str = "float16",
        cache: EmbeddingCache | None = None,
        batch_size: int | None = None,
        ann_params: dict[str, int] | None = None,
        audio_stream: AudioStream | None = None,
    ) -> EmbeddingIndex:
        """A new, empty index at ``path`` (a directory that must not exist or be empty).

        ``windows``: None (default) takes the embedder's scan windows, the ones a
        :class:`~audio_embed.Scanner` of that model scans with, so a scanner trained
        from the index (``review.fit_from_index``) places detections as one trained
        from the files would.
        ``audio_stream``: the audio stream every file added is decoded from (its
        position among a file's audio streams, 0-based; None: the first, see
        :func:`~audio_embed.audio.stream_audio`); recorded in the manifest, so
        later additions and examples embedded from files use it too."""
        p = Path(path)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise InvalidInputError(
                f"{p} already exists; open it with EmbeddingIndex.open() to add files, or "
                "choose a new path."
            )
        if dtype not in ("float16", "float32"):
            raise InvalidInputError(
                f"The 'dtype' of an index must be 'float16' or 'float32'. Got {dtype!r} instead."
            )
        from audio_embed import __version__
        from audio_embed._ann import DEFAULT_ANN_PARAMS

        sw = windows or model_scan_windows(embedder)
        if audio_stream is not None:
            audio_stream = check_audio_stream(audio_stream, "audio_stream of an index")
        manifest: dict[str, Any] = {
            "format": INDEX_FORMAT,
            "format_version": INDEX_FORMAT_VERSION
            if audio_stream not in (None, 0)
            else FIRST_STREAM_INDEX_VERSION,
            "library_version": __version__,
            "generation": 0,
            "embedder": {
                "name": embedder.name,
                "dim": embedder.dim,
                "cache_id": embedder.cache_id(),
                "config": embedder.config(),
            },
            "windows": {"window": sw.window, "hop": sw.hop, "encoding": sw.encoding},
            "normalization": "recording",
            "audio_stream": audio_stream,
            "vector_dtype": dtype,
            "count": 0,
            "n_files": 0,
            "ann": {"library": ANN_LIBRARY, "params": {**DEFAULT_ANN_PARAMS, **(ann_params or {})}},
        }
        p.mkdir(parents=True, exist_ok=True)
        index = cls(p, manifest, embedder=embedder, cache=cache, batch_size=batch_size)
        stats = np.zeros((0, 2, index.dim), np.float32)
        index._commit(index._files, index._starts, index._unit, index._norms, stats, None)
        return index

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
        batch_size: int | None = None,
    ) -> EmbeddingIndex:
        """Open an index made by :meth:`create`.

        ``embedder`` (optional) must produce the index's vectors (same name,
        dimension and weights fingerprint); by default it is created from the
        registry when first needed (to embed examples or new files).

        Raises:
            IndexFileError: not an index, damaged, or from a newer version.
        """
        p = Path(path)
        manifest = read_manifest(p)
        index = cls(p, manifest, embedder=None, cache=cache, batch_size=batch_size)
        if embedder is not None:
            index._check_embedder(embedder)
            index._embedder = embedder
        return index

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return int(self.manifest["embedder"]["dim"])

    @property
    def embedder_name(self) -> str:
        return str(self.manifest["embedder"]["name"])

    @property
    def windows(self) -> SlidingWindows:
        w = self.manifest["windows"]
        return SlidingWindows(float(w["window"]), float(w["hop"]), w["encoding"])

    @property
    def audio_stream(self) -> AudioStream | None:
        """The audio stream the index's files are decoded from (None: the first;
        indexes made before the choice existed have none)."""
        return saved_audio_stream(self.manifest.get("audio_stream"), self.path, IndexFileError)

    @property
    def files(self) -> tuple[IndexedFile, ...]:
        return tuple(self._files)

    def __len__(self) -> int:
        return len(self._norms)

    def __repr__(self) -> str:
        return (
            f"EmbeddingIndex({str(self.path)!r}, {self.embedder_name}, {len(self._files)} files, "
            f"{len(self)} windows)"
        )

    def embedder(self) -> Embedder:
        """The embedder of the index's vectors (created from the registry on first use)."""
        if self._embedder is None:
            from audio_embed.registry import create_embedder, embedder_from_config

            saved = self.manifest["embedder"].get("config")
            # the embedder the index was built with: name, settings, layers, weight source
            emb = (
                embedder_from_config(saved, where=str(self.path))
                if saved
                else create_embedder(self.embedder_name)
            )
            self._check_embedder(emb)
            self._embedder = emb
        return self._embedder

    def _check_embedder(self, emb: Embedder) -> None:
        from audio_embed.embedders.base import setting_differences

        want = self.manifest["embedder"]

        def named() -> str:
            # the same model with other settings names them (before: "LOGMEL (256 dims)
            # … LOGMEL (128 dims)", or a fingerprint alone); only for an error (review)
            settings = setting_differences(want.get("config"), emb)
            return f" Settings that differ: {'; '.join(settings)}." if settings else ""

        if emb.name != want["name"] or emb.dim != int(want["dim"]):
            raise IndexFileError(
                f"{self.path} holds {want['name']} vectors ({want['dim']} dims); the embedder "
                f"given is {emb.name} ({emb.dim} dims).{named()} Use the index's embedder."
            )
        if emb.cache_id() != want["cache_id"]:
            raise IndexFileError(
                f"{self.path} was built with other weights or settings of {want['name']} "
                f"(fingerprint {want['cache_id']}; this embedder's is {emb.cache_id()})."
                f"{named()} Load the checkpoint it was built with, or build a new index."
            )

    def scanner(self) -> Scanner:
        """A scanner (untrained) over the index's embedder and windows: the embedding path."""
        sw = self.windows
        return Scanner(
            self.embedder(),
            scan_windows=sw,
            train_windows=TargetedWindows(sw.window, hop=sw.hop),
            cache=self.cache,
            batch_size=self.batch_size,
            audio_stream=self.audio_stream,
        )

    # ------------------------------------------------------------------ rows

    def file(self, path: str | os.PathLike[str]) -> IndexedFile | None:
        """The entry of ``path`` (resolved), or None when it is not in the index."""
        key = str(Path(path).resolve())
        for f in self._files:
            if f.path == key:
                return f
        return None

    def starts(self, file: IndexedFile) -> np.ndarray:
        """Window start times (seconds) of ``file``'s rows."""
        return self._starts[self._files.index(file)]

    def vectors(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """The z-scored vectors (float32) of ``rows`` (all by default), as a scanner sees them."""
        sel = slice(None) if rows is None else rows
        out: np.ndarray = self._unit[sel].astype(np.float32) * self._norms[sel, None]
        return out

    def unit_vectors(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """The stored unit vectors (float32) of ``rows``."""
        sel = slice(None) if rows is None else rows
        out: np.ndarray = self._unit[sel].astype(np.float32)
        return out

    def locate(self, rows: np.ndarray) -> tuple[list[str], np.ndarray, list[float]]:
        """File, start and file duration of each row."""
        return self._locate(rows)[:3]

    def _locate(self, rows: np.ndarray) -> tuple[list[str], np.ndarray, list[float], np.ndarray]:
        """:meth:`locate`, and the position of each row's file among the files."""
        rows = np.asarray(rows, dtype=np.int64)
        which = self._file_positions(rows)
        files = [self._files[i].path for i in which]
        starts = np.array(
            [
                self._starts[i][r - self._files[i].first_row]
                for i, r in zip(which, rows, strict=True)
            ],
            dtype=np.float64,
        )
        return files, starts, [self._files[i].duration for i in which], which

    def nearest_row(self, file: IndexedFile, time: float) -> int:
        """The row of ``file`` whose window centre is nearest ``time``."""
        return file.first_row + nearest_centre(
            self.starts(file), self.windows.window, file.duration, time, file.path
        )

    def _file_positions(self, rows: np.ndarray) -> np.ndarray:
        """The position among the files of each row's file."""
        firsts = np.array([f.first_row for f in self._files], dtype=np.int64)
        out: np.ndarray = np.searchsorted(firsts, np.asarray(rows, np.int64), side="right") - 1
        return out

    def hit_extent(self, row: int, query: np.ndarray) -> tuple[float, float]:
        """Start and end of a search hit whose best window is ``row``: from the windows
        of its file that overlap it, scored against ``query``
        (:func:`~audio_embed.hits.hit_extent`)."""
        return self._hit_extent(int(self._file_positions(np.array([row]))[0]), row, query)

    def _hit_extent(self, k: int, row: int, query: np.ndarray) -> tuple[float, float]:
        """:meth:`hit_extent` of a row of the ``k``-th file."""
        entry, grid = self._files[k], self._starts[k]
        best, window = int(row) - entry.first_row, self.windows.window
        a = int(np.searchsorted(grid, grid[best] - window + _EPS))
        z = int(np.searchsorted(grid, grid[best] + window - _EPS))
        unit = self._unit[entry.first_row + a : entry.first_row + z].astype(np.float32)
        q = np.asarray(query, dtype=np.float32)
        return hit_extent(grid[a:z], unit @ q, best - a, window, entry.duration)

    # ------------------------------------------------------------------ adding

    def add(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        many: Callable[..., Iterator[tuple[str, CachedEmbeddings | AudioEmbedError]]] | None = None,
    ) -> AddReport:
        """Embed and add files; files already there and unchanged are skipped.

        A file is unchanged when its size and modification time are the ones
        recorded, or when its size and content hash are (a copy, a ``touch``).
        A changed file's windows are replaced. A new path with the content of an
        indexed file that is no longer there is that file moved: its windows are
        renamed (:attr:`AddReport.moved`), not embedded again or kept twice.
        Files that cannot be decoded are reported in :attr:`AddReport.failed`;
        the others are still added.
        Embeddings go through the scanner's streaming, cached path, or through
        ``many``: a runner with :meth:`Scanner.sliding_embeddings_many`'s
        signature that yields in input order with this index's embedder,
        windows and :attr:`audio_stream` (e.g. ``RayScanner.for_embedding(...,
        ordered=True, audio_stream=index.audio_stream)``). Nothing is written
        until every file is embedded; a cancel leaves the index as it was.
        """
        paths = path_list(paths, "EmbeddingIndex.add")
        report = AddReport()
        todo: list[tuple[Path, str, int, int, str]] = []  # path, key, size, mtime, sha
        known = {f.path: f for f in self._files}
        gone = {(f.size, f.sha256): f.path for f in self._files if not Path(f.path).exists()}
        seen: set[str] = set()
        touched: dict[str, int] = {}
        renamed: dict[str, tuple[str, int]] = {}  # old path: (new path, mtime)
        for raw in paths:
            p = Path(raw)
            try:
                key, size, mtime = file_identity(p)
            except OSError as exc:
                report.failed.append((str(raw), f"cannot read it ({exc.strerror or exc})"))
                continue
            if key in seen:
                continue
            seen.add(key)
            old = known.get(key)
            if old is not None and old.size == size and old.mtime_ns == mtime:
                report.unchanged.append(key)
                continue
            sha = file_sha256(p)
            if old is not None and old.size == size and old.sha256 == sha:
                report.unchanged.append(key)
                touched[key] = mtime
                continue
            was = gone.pop((size, sha), None) if old is None else None
            if was is not None:
                report.moved.append((was, key))
                renamed[was] = (key, mtime)
                continue
            todo.append((p, key, size, mtime, sha))
        new: list[tuple[IndexedFile, CachedEmbeddings]] = []
        if todo:
            if many is not None:
                self._check_runner(many)
            runner = self.scanner().sliding_embeddings_many if many is None else many
            embedded = runner([t[0] for t in todo], progress=progress, cancel=cancel)
            for (p, key, size, mtime, sha), (path, entry) in zip(todo, embedded, strict=True):
                if str(path) != str(p):
                    raise InvalidInputError(
                        f"The embedding runner yielded {path} where {p} was due: it must "
                        "yield in input order (a RayScanner needs ordered=True)."
                    )
                if isinstance(entry, Exception):
                    report.failed.append((key, str(entry)))
                    continue
                (report.updated if key in known else report.added).append(key)
                info = IndexedFile(
                    key,
                    size,
                    mtime,
                    sha,
                    entry.duration,
                    0,
                    len(entry.starts),
                    entry.band_edge,
                    entry.peak,
                )
                silent = recording_silence_warning(
                    key, entry.peak, self.audio_stream, "a search finds nothing in it"
                )
                if silent is not None:
                    log.warning("%s", silent)
                    report.warnings.append(silent)
                new.append((info, entry))
        if cancel is not None:
            cancel.check()
        if new or touched or renamed:
            self._apply(new, touched, renamed)
            report.windows_added = sum(len(e.starts) for _, e in new)
        return report

    def _check_runner(self, many: Callable[..., object]) -> None:
        """A runner that says what it embeds (a :class:`~audio_embed.distributed.RayScanner`'s
        ``job``) must embed what the index holds: another model, windows or audio stream
        would add vectors that are not comparable, without a word."""
        job = getattr(getattr(many, "__self__", None), "job", None)
        if not isinstance(job, dict):
            return
        sw = self.windows
        wanted = {
            "model": self.embedder_name,
            "windows": {"window": sw.window, "hop": sw.hop, "encoding": sw.encoding},
            "audio stream": self.audio_stream or 0,
        }
        got = {
            "model": job.get("model") or self.embedder_name,  # a scanner's: checked on load
            "windows": job.get("windows") or wanted["windows"],
            "audio stream": job.get("audio_stream") or 0,
        }
        differ = [f"{k} {got[k]} (the index: {wanted[k]})" for k in wanted if got[k] != wanted[k]]
        if differ:
            raise InvalidInputError(
                f"The embedding runner does not embed what {self.path} holds: "
                + "; ".join(differ)
                + ". Build it with the index's model, windows and audio_stream."
            )

    def missing(self) -> list[str]:
        """Indexed files that are no longer where they were indexed (moved or
        deleted): their windows still come up in searches until :meth:`remove`
        drops them, or :meth:`add` finds them under a new name."""
        return [f.path for f in self._files if not Path(f.path).exists()]

    def remove(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Drop the windows of ``paths`` (as :attr:`files` names them, or any
        spelling of them); returns how many windows were dropped."""
        wanted = {str(p) for p in paths} | {str(Path(p).resolve()) for p in paths}
        gone = {f.path for f in self._files if f.path in wanted}
        if not gone:
            return 0
        dropped = sum(f.n_rows for f in self._files if f.path in gone)
        self._apply([], {}, removed=gone)
        return dropped

    def _apply(
        self,
        new: list[tuple[IndexedFile, CachedEmbeddings]],
        touched: dict[str, int],
        renamed: dict[str, tuple[str, int]] | None = None,
        removed: set[str] | None = None,
    ) -> None:
        """Commit the changes on top of the newest generation, one writer at a time:
        two ``index`` runs at once each wrote generation N+1 over the other (one's
        files lost, or a reader of the mix saw a 'damaged' graph)."""
        from audio_embed._io import writer_lock

        with writer_lock(self.path / LOCK, f"the index {self.path}"):
            latest = read_manifest(self.path)
            if latest["generation"] != self.manifest["generation"]:  # another writer's
                self.manifest, self._ann = latest, None
                self._load_data()  # the lock holds writers off: no newer one can come
            self._apply_latest(new, touched, renamed or {}, removed or set())

    def _apply_latest(
        self,
        new: list[tuple[IndexedFile, CachedEmbeddings]],
        touched: dict[str, int],
        renamed: dict[str, tuple[str, int]],
        removed: set[str],
    ) -> None:
        replaced = {info.path for info, _ in new} | removed
        keep = [i for i, f in enumerate(self._files) if f.path not in replaced]
        files: list[IndexedFile] = []
        starts: list[np.ndarray] = []
        unit_parts: list[np.ndarray] = []
        norm_parts: list[np.ndarray] = []
        stats_parts = [  # the kept files' statistics, unknown for an index before them
            np.full((len(keep), 2, self.dim), np.nan, np.float32)
            if self._stats is None
            else np.asarray(self._stats[keep])
        ]
        row = 0
        for i in keep:
            f = self._files[i]
            sl = slice(f.first_row, f.first_row + f.n_rows)
            unit_parts.append(np.asarray(self._unit[sl]))
            norm_parts.append(np.asarray(self._norms[sl]))
            path, mtime = renamed.get(f.path, (f.path, touched.get(f.path, f.mtime_ns)))
            files.append(attrs.evolve(f, path=path, mtime_ns=mtime, first_row=row))
            starts.append(self._starts[i])
            row += f.n_rows
        appended_from = row
        dtype = np.float16 if self.manifest["vector_dtype"] == "float16" else np.float32
        for info, entry in new:
            unit, norms = unit_rows(recording_zscore(entry.embeddings))
            unit_parts.append(unit.astype(dtype))
            norm_parts.append(norms)
            stats_parts.append(recording_stats(entry.embeddings)[None])
            files.append(attrs.evolve(info, first_row=row))
            starts.append(np.asarray(entry.starts, dtype=np.float64))
            row += info.n_rows
        unit_all = np.concatenate(unit_parts) if unit_parts else self._unit[:0]
        norms_all = np.concatenate(norm_parts) if norm_parts else self._norms[:0]
        stats_all = np.concatenate(stats_parts)
        only_appended = len(keep) == len(self._files)
        ann: AnnIndex | None = None
        if only_appended and len(self._files) and appended_from == len(self):
            ann = self._load_ann()
            if ann.needs_rebuild(len(unit_all)):
                ann = None
            else:
                ann.add(appended_from, unit_all[appended_from:])
        try:
            self._commit(files, starts, unit_all, norms_all, stats_all, ann)
        except BaseException:
            self._ann = None  # it may hold the vectors that were not committed
            raise

    # ------------------------------------------------------------------ storage

    def _gen_file(self, stem: str, gen: int, suffix: str) -> Path:
        return self.path / f"{stem}-{gen}{suffix}"

    def _commit(
        self,
        files: list[IndexedFile],
        starts: list[np.ndarray],
        unit: np.ndarray,
        norms: np.ndarray,
        stats: np.ndarray,
        ann: AnnIndex | None,
    ) -> None:
        """Write a new generation, then switch ``index.json`` to it in one rename."""
        old = int(self.manifest["generation"])
        gen = old + 1
        if ann is None:
            ann = AnnIndex.build(self.dim, unit, self.manifest["ann"]["params"])
        with atomic_writer(self._gen_file("vectors", gen, ".npy")) as fh:
            np.save(fh, np.ascontiguousarray(unit), allow_pickle=False)
        with atomic_writer(self._gen_file("norms", gen, ".npy")) as fh:
            np.save(fh, norms.astype(np.float32), allow_pickle=False)
        with atomic_writer(self._gen_file("stats", gen, ".npy")) as fh:
            np.save(fh, stats.astype(np.float32), allow_pickle=False)
        write_sqlite(self._gen_file("meta", gen, ".sqlite"), files, starts)
        ann_path = self._gen_file("ann", gen, ".faiss")
        tmp = ann_path.with_name(".tmp-" + ann_path.name)
        try:
            ann.save(tmp)
            os.replace(tmp, ann_path)
        finally:
            tmp.unlink(missing_ok=True)
        manifest = {
            **self.manifest,
            "generation": gen,
            "count": len(norms),
            "n_files": len(files),
            # the generation whose stats-G.npy was written (a release before it copies
            # this key forward unchanged: another generation reads as "no statistics")
            "stats_generation": gen,
        }
        manifest["ann"] = {
            **manifest["ann"],
            "file": ann_path.name,
            "size": ann_path.stat().st_size,
            "kind": ann.kind,
            "trained_on": ann.trained_on,
        }
        with atomic_writer(self.path / MANIFEST, text=True) as fh:
            fh.write(json.dumps(manifest, indent=2))
        self.manifest = manifest
        self._files, self._starts, self._unit, self._norms = files, starts, unit, norms
        self._stats, self._ann = stats, ann
        for f in self.path.iterdir():  # the previous generation, and leftovers of crashes
            stem, _, rest = f.name.partition("-")
            if stem in ("vectors", "norms", "stats", "meta", "ann") and not rest.startswith(
                f"{gen}."
            ):
                try:
                    f.unlink(missing_ok=True)
                except OSError:  # a reader holds it open (Windows): the next commit retries
                    log.debug("%s: could not delete %s yet", self.path, f.name)

    def _load_newest(self, *, ann: bool = False) -> None:
        """Read this generation's arrays (``ann``: its nearest-neighbour graph, the arrays
        being read); when a writer has switched the index to a newer generation
        meanwhile, whose commit deletes the files of the one this reader opened, read
        the newest instead, arrays and graph. Readers take no lock: a search never
        waits for an ``index`` run."""
        for attempt in range(_RELOADS + 1):
            try:
                if attempt or not ann:
                    self._load_data()
                if ann:
                    self._read_ann()
                return
            except IndexFileError:
                latest = read_manifest(self.path)
                if attempt == _RELOADS or latest["generation"] == self.manifest["generation"]:
                    raise  # damaged for real, not replaced (or replaced again and again)
                log.info("%s: a writer committed a newer generation; reading it", self.path)
                self.manifest, self._ann = latest, None

    def _load_data(self) -> None:
        gen = int(self.manifest["generation"])
        if gen == 0:
            return
        files, starts = read_sqlite(self._gen_file("meta", gen, ".sqlite"))
        unit = read_npy(self._gen_file("vectors", gen, ".npy"), 2)
        norms = read_npy(self._gen_file("norms", gen, ".npy"), 1)
        n = int(self.manifest["count"])
        if (
            unit.shape != (n, self.dim)
            or norms.shape != (n,)
            or sum(f.n_rows for f in files) != n
            or len(files) != int(self.manifest["n_files"])
        ):
            raise IndexFileError(
                f"{self.path}: the vectors, lengths and file table disagree ({unit.shape}, "
                f"{norms.shape}, {sum(f.n_rows for f in files)} rows, manifest {n}); damaged."
            )
        self._files, self._starts, self._unit, self._norms = files, starts, unit, norms
        stats_file = self._gen_file("stats", gen, ".npy")
        if self.manifest.get("stats_generation") != gen:  # written by a release before them
            self._stats = None
        else:  # missing: damaged, or deleted by a writer since (the caller reads anew)
            self._stats = read_npy(stats_file, 3)
        if self._stats is not None and self._stats.shape != (len(files), 2, self.dim):
            raise IndexFileError(f"{stats_file} does not match the file table; damaged.")

    def reference_stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The raw vectors' mean and standard deviation over the indexed files (each
        file's weighted by its windows, the deviation pooled within files): how a clip
        too short for its own statistics is normalised. None unless the files that
        have them hold :data:`STATS_COVERAGE` of the windows (files added by a release
        before they were kept have none: build the index again)."""
        if self._stats is None or not len(self._stats):
            return None
        known = ~np.isnan(self._stats[:, 0, 0])
        rows = np.array([f.n_rows for f in self._files], dtype=np.float64)
        if rows[known].sum() < STATS_COVERAGE * rows.sum() or not rows[known].sum():
            return None
        stats = np.asarray(self._stats[known], dtype=np.float64)
        weights = rows[known] / rows[known].sum()
        mean = (stats[:, 0] * weights[:, None]).sum(axis=0)
        std = np.sqrt((stats[:, 1] ** 2 * weights[:, None]).sum(axis=0))
        return mean.astype(np.float32), std.astype(np.float32)

    def _no_reference(self) -> str:
        """Why :meth:`reference_stats` is None, and what to do."""
        if self._stats is None:
            return f"{self.path} was built before the statistics that normalise a clip were kept"
        known = int((~np.isnan(self._stats[:, 0, 0])).sum())
        return (
            f"{self.path} has the statistics that normalise a clip for {known} of its "
            f"{len(self._files)} files (the others were added by an earlier release)"
        )

    def _load_ann(self) -> AnnIndex:
        if self._ann is None:
            self._load_newest(ann=True)
        assert self._ann is not None
        return self._ann

    def _read_ann(self) -> None:
        info = self.manifest["ann"]
        path = self.path / str(info.get("file", ""))
        if not path.is_file() or path.stat().st_size != int(info.get("size", -1)):
            raise IndexFileError(f"{self.path}: the nearest-neighbour graph is missing or damaged.")
        self._ann = AnnIndex.load(
            path, self.dim, len(self), info["params"], int(info.get("trained_on", 0))
        )

    # ------------------------------------------------------------------ search

    def example_vector(self, example: Example) -> np.ndarray:
        """The unit vector of ``example``: from the index when the file is there and
        unchanged (or gone), else embedded now with the index's embedder (same
        normalisation). A recording shorter than :data:`SHORT_EXAMPLE_SECONDS` (a clip
        of the sound) is normalised by the index's :meth:`reference_stats`, not its
        own mean, which would be mostly the sound itself; an indexed one from its
        stored row and statistics, without decoding it."""
        p = Path(example.source)
        entry = self.file(p)
        reference = None
        if entry is None or entry.duration < SHORT_EXAMPLE_SECONDS:
            reference = self.reference_stats()
        if entry is not None:
            try:
                _key, size, mtime = file_identity(p)
            except OSError:
                size, mtime = entry.size, entry.mtime_ns  # gone: the indexed copy still counts
            if size == entry.size and mtime == entry.mtime_ns:
                row = self.nearest_row(entry, example.time)
                stored: np.ndarray = self.unit_vectors(np.array([row]))[0]
                raw = self._raw_row(entry, row)
                if reference is not None and raw is not None:
                    unit, _ = unit_rows(((raw - reference[0]) / reference[1])[None])
                    stored, own = unit[0], False
                else:
                    own = True
                if not own or reference is None or not p.is_file():
                    return self._searchable(
                        stored, example, entry.n_rows, entry.duration, entry.peak, own=own
                    )
                # a short file whose statistics are unknown: embedded again below
        emb = self.scanner().sliding_embeddings(p)
        i = nearest_centre(emb.starts, self.windows.window, emb.duration, example.time, str(p))
        if reference is not None and emb.duration < SHORT_EXAMPLE_SECONDS:
            mean, std = reference
            unit, _ = unit_rows((emb.embeddings[i : i + 1] - mean) / std)
            return self._searchable(
                unit[0], example, len(emb.starts), emb.duration, emb.peak, own=False
            )
        unit, _ = unit_rows(recording_zscore(emb.embeddings)[i : i + 1])
        return self._searchable(unit[0], example, len(emb.starts), emb.duration, emb.peak)

    def _raw_row(self, entry: IndexedFile, row: int) -> np.ndarray | None:
        """Row ``row`` of ``entry`` as the embedder gave it (``unit × norm × std + mean``
        of its file's statistics), None when its statistics are unknown."""
        if self._stats is None:
            return None
        stats = np.asarray(self._stats[self._files.index(entry)], dtype=np.float32)
        if np.isnan(stats).any():
            return None
        z = np.asarray(self._unit[row], dtype=np.float32) * np.float32(self._norms[row])
        raw: np.ndarray = z * stats[1] + stats[0]
        return raw

    def _searchable(
        self,
        vector: np.ndarray,
        example: Example,
        n_windows: int,
        duration: float,
        peak: float | None,
        *,
        own: bool = True,
    ) -> np.ndarray:
        """``vector`` normalised by its own recording (``own``; else by the index's
        :meth:`reference_stats`): refused when it is zero, an example from a recording of
        one window (before: every hit scored 0.0000, listed in file order, without a
        word); from a recording shorter than :data:`SHORT_EXAMPLE_SECONDS`, with a
        warning. Both only where the index has no statistics (written before them). An
        example from a silent recording (``peak``) is warned of."""
        silent = recording_silence_warning(
            example.source, peak, self.audio_stream, "an example from it finds nothing of a sound"
        )
        if silent is not None:
            log.warning("%s", silent)
        if duration < self.windows.window:  # before: searched without a word
            log.warning(
                "%s is %.2f s long, shorter than the index's %g s window: the example's "
                "window is padded with silence, which the archive's windows do not hold, so "
                "the search may miss (on the wolf bench, clips of 0.6-0.8 s found about "
                "two thirds as many calls as clips of 1-1.5 s). Cut the clip %g s long or "
                "more, with some of what surrounds the sound.",
                example.source,
                duration,
                self.windows.window,
                self.windows.window,
            )
        if float(np.linalg.norm(np.asarray(vector, dtype=np.float32))) > 1e-6:
            if own and duration < SHORT_EXAMPLE_SECONDS:
                log.warning(
                    "%s is %.1f s long: its windows are normalised by its own mean, which "
                    "in a short clip is mostly the sound itself, so the search may miss "
                    "(on the wolf bench, clips of 1.5-10 s found a quarter to half as many "
                    "calls as the whole recording). %s: build it again, or take the example "
                    "from a recording of %g s or more that holds the sound.",
                    example.source,
                    duration,
                    self._no_reference(),
                    SHORT_EXAMPLE_SECONDS,
                )
            return vector
        why = (
            f"{self._no_reference()}: build it again, or take"
            if self.reference_stats() is None
            else "Take"  # a long recording of identical windows (digital silence)
        )
        raise InvalidInputError(
            f"{example.source}: the example at {example.time:g} s gives nothing to search "
            f"with: its recording ({duration:.2f} s) holds {n_windows} window(s) of "
            f"{self.windows.window:g} s, and each window is compared with the mean of its "
            "own recording's windows, which leaves nothing of a recording of one window "
            f"(or of identical ones). {why} the example from a longer recording that holds "
            "the sound."
        )

    def query_vector(
        self, examples: Sequence[ExampleLike], negatives: Sequence[ExampleLike] = ()
    ) -> np.ndarray:
        """Mean of the examples' unit vectors minus the mean of the negatives'.

        The inner product of a stored unit vector with it is the mean cosine
        similarity to the examples minus the mean cosine similarity to the
        negatives. Each example is an :class:`Example`, a ``(file, time)`` pair or a
        ``"file:time"`` text (as ``search --example`` takes it).
        """
        examples, negatives = _examples(examples), _examples(negatives)
        if not examples:
            raise InvalidInputError("A search needs at least one example (FILE:SECONDS).")
        q = np.mean([self.example_vector(e) for e in examples], axis=0)
        if negatives:
            q = q - np.mean([self.example_vector(e) for e in negatives], axis=0)
        out: np.ndarray = q.astype(np.float32)
        return out

    def nearest(
        self, query: np.ndarray, k: int, *, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores (inner products with ``query``) of the ``k`` best windows."""
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if not exact:
            return self._load_ann().search(query, k)
        q = np.asarray(query, dtype=np.float32)
        scores = np.concatenate(
            [
                self._unit[lo : lo + 65536].astype(np.float32) @ q
                for lo in range(0, len(self), 65536)
            ]
        )
        rows = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return rows.astype(np.int64), scores[rows]

    def search(
        self,
        examples: Sequence[ExampleLike],
        *,
        negatives: Sequence[ExampleLike] = (),
        top: int = 100,
        exact: bool = False,
    ) -> list[Hit]:
        """The ``top`` occurrences most like ``examples`` (and least like ``negatives``).

        Each occurrence is one :class:`Hit`: its best window, reaching over its file's
        neighbouring windows while they score at least half as high
        (:func:`~audio_embed.hits.hit_extent`), whatever ``top`` is.
        ``exact=True`` scores every window instead of using the ANN graph.
        """
        if top < 1:
            raise InvalidInputError(f"The 'top' parameter must be >= 1. Got {top!r} instead.")
        return self.search_vector(self.query_vector(examples, negatives), top=top, exact=exact)

    def search_vector(self, query: np.ndarray, *, top: int = 100, exact: bool = False) -> list[Hit]:
        """:meth:`search` with a query vector (see :meth:`query_vector`)."""
        if query.shape != (self.dim,):
            raise InvalidInputError(
                f"The query must have shape ({self.dim},). Got {query.shape} instead."
            )
        sw = self.windows
        per_hit = 2 * math.ceil(sw.window / sw.hop) + 1
        k = top * per_hit
        q = np.asarray(query, dtype=np.float32)
        while True:
            rows, scores = self.nearest(q, k, exact=exact)
            files, starts, durations, which = self._locate(rows)

            def extent(i: int, r: np.ndarray = rows, w: np.ndarray = which) -> tuple[float, float]:
                return self._hit_extent(int(w[i]), int(r[i]), q)

            # only the first `top` hits get an extent (review: every candidate's, ~30x the time)
            hits = merge_windows(files, starts, scores, rows, sw.window, durations, extent, top)
            if len(hits) >= top or k >= len(self):
                return hits
            k *= 4


#: What :meth:`EmbeddingIndex.search` takes as an example: an :class:`Example`, a
#: ``(file, time)`` pair, or a ``"file:time"`` text.
ExampleLike = Example | tuple[str | os.PathLike[str], float | str] | str


def _is_pair(given: object) -> bool:
    """``(file, time)``: a 2-tuple whose second item is a time (a number, or a text
    :func:`~audio_embed.formats.clock_seconds` reads), not two examples (before:
    ``("a.wav:8.3", "b.wav:38.3")`` was taken for a file and a time)."""
    from audio_embed.formats import clock_seconds

    if not (isinstance(given, tuple) and len(given) == 2):
        return False
    time = given[1]
    if isinstance(time, str):
        try:
            clock_seconds(time)
        except ValueError:
            return False
        return True
    return not isinstance(time, Example | tuple)


def _examples(given: Sequence[ExampleLike] | ExampleLike) -> list[Example]:
    """``given`` as Examples; one example given alone is taken as a list of one (before:
    a pair failed with AttributeError 'tuple' object has no attribute 'source')."""
    if isinstance(given, Example | str) or _is_pair(given):
        given = [given]  # type: ignore[list-item]
    out = []
    for e in given:
        if isinstance(e, Example):
            out.append(e)
        elif isinstance(e, str):
            out.append(Example.parse(e))
        elif isinstance(e, tuple | list) and len(e) == 2:
            source, time = e
            out.append(Example(os.fspath(source), time))
        else:
            raise InvalidInputError(
                "An example is an Example(file, time), a (file, time) pair or a 'file:time' "
                f"text. Got {e!r} instead."
            )
    return out

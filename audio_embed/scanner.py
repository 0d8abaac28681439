"""The :class:`Scanner`: embedder + window strategies + calibrated classifier.

``fit`` learns from recordings with marked moments; ``scan`` scores every
sliding window of a new recording and fuses the windows above a threshold into
:class:`Detection` regions. Nothing here knows which model it is talking to.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
from attrs import define, field, frozen
from sklearn.base import clone

from audio_embed._io import atomic_writer
from audio_embed.audio import load_audio, resample, stream_audio
from audio_embed.cache import CachedEmbeddings, EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.embedders.base import Embedder, as_waveform_batch, config_differences
from audio_embed.errors import (
    AudioDecodeError,
    AudioEmbedError,
    AudioFileNotFoundError,
    InvalidInputError,
    ScannerFileError,
    TrainingDataError,
)
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent, prefetch
from audio_embed.types import Detection
from audio_embed.windows import Markers, SlidingWindows, TargetedWindows

__all__ = [
    "Detection",
    "Normalization",
    "Recording",
    "ScanResult",
    "Scanner",
    "fuse_windows",
]

log = logging.getLogger(__name__)

Normalization = Literal["recording", "targeted", "none"]
SCANNER_FORMAT = "audio_embed.scanner"
#: 2: ``embedder.cache_id`` fingerprints the weights. 3: the embedder's
#: :meth:`~audio_embed.Embedder.config` is stored; load rebuilds the embedder from it
#: and refuses a mismatch. 1 and 2 are still read.
SCANNER_FORMAT_VERSION = 3
STD_FLOOR = 1e-6
#: Seconds of audio decoded per streamed block.
BLOCK_SECONDS = 120.0
#: Only these modules may appear in a saved classifier (checked before loading).
TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "audio_embed.classifier.")
MAX_SCANNER_BYTES = 512 * 1024 * 1024


def fuse_windows(
    starts: np.ndarray,
    probabilities: np.ndarray,
    window: float,
    threshold: float,
    duration: float | None = None,
) -> list[Detection]:
    """Merge windows scoring ``>= threshold`` that overlap or touch into detections."""
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"The 'threshold' must be in [0, 1]. Got {threshold!r} instead.")
    order = np.argsort(starts, kind="stable")
    detections: list[Detection] = []
    cur: list[float] | None = None  # start, end, score, peak
    for i in order:
        p = float(probabilities[i])
        if p < threshold:
            continue
        s = float(starts[i])
        e = s + window if duration is None else min(s + window, max(duration, s))
        centre = (s + e) / 2.0
        if cur is not None and s <= cur[1] + 1e-9:
            cur[1] = max(cur[1], e)
            if p > cur[2]:
                cur[2], cur[3] = p, centre
        else:
            if cur is not None:
                detections.append(Detection(*cur))
            cur = [s, e, p, centre]
    if cur is not None:
        detections.append(Detection(*cur))
    return detections


@define
class ScanResult:
    """Window start times and probabilities for one recording."""

    source: str
    starts: np.ndarray
    probabilities: np.ndarray
    window: float
    duration: float
    threshold: float = 0.3

    def detections(self, threshold: float | None = None) -> list[Detection]:
        """Windows at or above ``threshold`` (the scanner's default when None), fused."""
        t = self.threshold if threshold is None else threshold
        return fuse_windows(self.starts, self.probabilities, self.window, t, self.duration)


Source = str | os.PathLike[str] | np.ndarray


@frozen
class Recording:
    """One training recording: a file path (or an array and its rate) and its markers."""

    source: Source
    markers: Markers = field(factory=Markers)
    sample_rate: int | None = None

    @property
    def label(self) -> str:
        return "<array>" if isinstance(self.source, np.ndarray) else str(self.source)


def _as_recording(item: Recording | tuple[Source, Markers]) -> Recording:
    if isinstance(item, Recording):
        return item
    source, markers = item
    return Recording(source=source, markers=markers)


@define
class Scanner:
    """Find a target sound in recordings from a few marked moments.

    Args:
        embedder: any :class:`~audio_embed.Embedder`.
        classifier: an unfitted :class:`CalibratedClassifier`.
        scan_windows: sliding windows for scanning (and for the
            per-recording normalisation statistics).
        train_windows: labelled windows around markers for training; its
            ``window`` must equal ``scan_windows.window``; its ``hop`` (None,
            the default) becomes ``scan_windows.hop``.
        normalization: ``"recording"`` (default): z-score each recording's
            embeddings with the mean and std of *all its sliding windows*, in
            fit and in scan alike. ``"targeted"``: the original behaviour,
            training statistics over the targeted windows only (scan still
            uses the sliding windows). ``"none"``.
        cache: an :class:`EmbeddingCache`, or None for no caching.
        batch_size: windows per encoder call; None (default) sizes batches
            from the device's free memory (:meth:`Embedder.auto_batch_size`).
        threshold: default detection threshold of :meth:`ScanResult.detections`.
    """

    embedder: Embedder
    classifier: CalibratedClassifier = field(factory=CalibratedClassifier)
    scan_windows: SlidingWindows = field(factory=SlidingWindows)
    train_windows: TargetedWindows = field(factory=TargetedWindows)
    normalization: Normalization = "recording"
    cache: EmbeddingCache | None = None
    batch_size: int | None = None
    threshold: float = 0.3
    training_summary: dict[str, Any] | None = field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.train_windows.hop is None:
            self.train_windows = attrs.evolve(self.train_windows, hop=self.scan_windows.hop)
        if abs(self.train_windows.window - self.scan_windows.window) > 1e-9:
            raise InvalidInputError(
                "The training and scanning windows must have the same length. Got "
                f"{self.train_windows.window} s and {self.scan_windows.window} s."
            )
        if self.normalization not in ("recording", "targeted", "none"):
            raise InvalidInputError(
                "The 'normalization' parameter of Scanner must be 'recording', 'targeted' "
                f"or 'none'. Got {self.normalization!r} instead."
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInputError(
                f"The 'batch_size' must be >= 1, or None for automatic. Got {self.batch_size}."
            )

    @classmethod
    def from_name(
        cls, name: str, *, embedder_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Scanner:
        """A scanner over the registered embedder ``name`` (see :func:`list_embedders`)."""
        from audio_embed.registry import create_embedder

        return cls(create_embedder(name, **(embedder_kwargs or {})), **kwargs)

    # ------------------------------------------------------------------ embedding

    def _settings(self) -> dict[str, object]:
        settings: dict[str, object] = {
            "embedder": self.embedder.cache_id(),
            # floats, so that SlidingWindows(8, 1) and SlidingWindows(8.0, 1.0) share a key
            "window": float(self.scan_windows.window),
            "hop": float(self.scan_windows.hop),
            "encoding": self.scan_windows.encoding,
        }
        if self.scan_windows.encoding == "shared":
            shared = self.embedder.shared_settings()
            if shared:
                settings["shared"] = shared
        if self.embedder.autocast_dtype is not None and self.embedder.device.type == "cuda":
            settings["autocast"] = str(self.embedder.autocast_dtype)
        return settings

    def _raw_blocks(self, source: Source, sample_rate: int | None) -> Iterator[np.ndarray]:
        sr = self.embedder.sample_rate
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise InvalidInputError(
                    "Scanning an array needs its sample_rate (e.g. scan(audio, sample_rate=16000))."
                )
            audio = as_waveform_batch(source, owner="Scanner")[0].numpy()
            audio = resample(audio, int(sample_rate), sr)
            step = round(BLOCK_SECONDS * sr)
            return iter([audio[i : i + step] for i in range(0, max(len(audio), 1), step)])
        return stream_audio(source, sr, BLOCK_SECONDS)

    def _decode_all(
        self, jobs: list[tuple[int, Source, int | None]]
    ) -> Iterator[tuple[int, np.ndarray | Exception | None]]:
        """``(i, block)`` for every block of every job, ``(i, error)`` when a file
        cannot be decoded, then ``(i, None)`` at the end of each file."""
        for i, source, rate in jobs:
            try:
                for block in self._raw_blocks(source, rate):
                    yield i, block
            except (AudioDecodeError, InvalidInputError) as exc:
                yield i, exc
            yield i, None

    def cache_key(self, source: Source) -> str | None:
        """The embedding-cache entry name of ``source`` for this scanner's embedder and
        windows; None without a cache, for arrays, or when the file is gone."""
        if self.cache is None or isinstance(source, np.ndarray):
            return None
        return self.cache.key(source, self._settings())

    def _cache_key(self, source: Source) -> str | None:
        return self.cache_key(source)

    def _cached(self, key: str | None) -> CachedEmbeddings | None:
        if self.cache is None or key is None:
            return None
        hit = self.cache.get(key)
        if hit is not None and hit.embeddings.shape[1] == self.embedder.dim:
            return hit
        return None

    def _embeddings_many(
        self,
        sources: list[tuple[Source, int | None]],
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> Iterator[tuple[int, CachedEmbeddings | AudioEmbedError]]:
        """Sliding-window embeddings of several sources, in order.

        Cache hits are never decoded. The others are decoded one after the
        other in one background thread, at most two blocks ahead of the
        embedder, so the next file is already being decoded while the current
        one's last blocks are embedded; memory stays bounded by a few blocks.
        A file that cannot be decoded yields its error instead of embeddings.
        """
        keys = [self._cache_key(src) for src, _ in sources]
        hits = {i: hit for i, key in enumerate(keys) if (hit := self._cached(key)) is not None}
        jobs = [(i, src, rate) for i, (src, rate) in enumerate(sources) if i not in hits]
        items = prefetch(self._decode_all(jobs), depth=2) if jobs else iter(())

        def blocks(i: int) -> Iterator[np.ndarray]:
            for j, item in items:
                if j < i:  # what is left of a file given up on
                    continue
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item

        try:
            for i, (source, _rate) in enumerate(sources):
                if i in hits:
                    yield i, hits[i]
                    continue
                label = "<array>" if isinstance(source, np.ndarray) else str(source)
                try:
                    entry = self._stream_sliding(blocks(i), label, progress, cancel)
                except (AudioDecodeError, InvalidInputError) as exc:
                    yield i, exc
                    continue
                if self.cache is not None and keys[i] is not None:
                    self.cache.put(keys[i], entry)
                yield i, entry
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def sliding_embeddings(
        self,
        source: Source,
        *,
        sample_rate: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> CachedEmbeddings:
        """Embeddings of every sliding window of ``source`` (from the cache when there).

        Decodes in blocks in a background thread while the previous block is
        embedded; memory stays bounded by a block plus a window.
        """
        for _, entry in self._embeddings_many([(source, sample_rate)], progress, cancel):
            if isinstance(entry, Exception):
                raise entry
            return entry
        raise AssertionError("unreachable")

    def sliding_embeddings_many(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, CachedEmbeddings | AudioEmbedError]]:
        """:meth:`sliding_embeddings` of several files, decoding the next file while
        the current one is embedded.

        Yields ``(path, embeddings)`` in order, or ``(path, error)`` for a file
        that cannot be decoded (an :class:`AudioDecodeError`; the other files
        are still processed). Cancellation raises.
        """
        paths = [str(p) for p in sources]
        for i, entry in self._embeddings_many([(p, None) for p in paths], progress, cancel):
            yield paths[i], entry

    def _stream_sliding(
        self,
        blocks: Iterable[np.ndarray],
        label: str,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> CachedEmbeddings:
        sr = self.embedder.sample_rate
        sw = self.scan_windows
        win = round(sw.window * sr)
        # Shared encoding reads `context` seconds beyond each window: keep that much
        # audio on both sides of a block boundary so streaming never changes a vector.
        context = 0.0
        if sw.encoding == "shared":
            context = float(self.embedder.shared_settings().get("context", 0.0))
        margin = round(context * sr)
        buf = np.zeros(0, dtype=np.float32)
        offset = 0  # sample index of buf[0]
        total = 0
        next_k = 0
        starts_done: list[np.ndarray] = []
        embs: list[np.ndarray] = []

        def embed(starts: np.ndarray) -> None:
            if cancel is not None:
                cancel.check()
            rel = starts - offset / sr
            embs.append(
                self.embedder.embed_windows(
                    buf,
                    rel,
                    sw.window,
                    batch_size=self.batch_size,
                    on_batch=_tick,
                    encoding=sw.encoding,
                )
            )
            starts_done.append(starts)
            if progress is not None:
                progress(ProgressEvent("embed", label, float(starts[-1] + sw.window), None))

        def _tick(_n: int) -> None:
            if cancel is not None:
                cancel.check()

        for block in blocks:
            buf = np.concatenate([buf, block]) if buf.size else block
            total += len(block)
            ks = []
            while round(next_k * sw.hop * sr) + win + margin <= total:
                ks.append(next_k)
                next_k += 1
            if ks:
                embed(np.asarray(ks, dtype=np.float64) * sw.hop)
            keep_from = max(min(round(next_k * sw.hop * sr), total - win) - margin, offset)
            buf = buf[keep_from - offset :]
            offset = keep_from
        duration = total / sr
        final = sw.starts(duration)
        n_done = sum(len(s) for s in starts_done)
        rest = final[n_done:]
        if rest.size:
            embed(rest)
        if cancel is not None:
            cancel.check()
        starts = np.concatenate(starts_done)
        if not np.allclose(starts, final, atol=1e-6):  # the streamed grid must be the grid
            raise AssertionError("internal error: streamed window grid differs from the grid")
        return CachedEmbeddings(
            starts=final, embeddings=np.concatenate(embs).astype(np.float32), duration=duration
        )

    @staticmethod
    def _zscore(x: np.ndarray, stats_from: np.ndarray) -> np.ndarray:
        mean = stats_from.mean(axis=0)
        std = np.maximum(stats_from.std(axis=0), STD_FLOOR)
        out: np.ndarray = ((x - mean) / std).astype(np.float32)
        return out

    # ------------------------------------------------------------------ training

    def _training_windows(
        self, rec: Recording, entry: CachedEmbeddings
    ) -> tuple[np.ndarray, np.ndarray]:
        labelled = self.train_windows.windows(entry.duration, rec.markers)
        x = np.empty((len(labelled.starts), self.embedder.dim), dtype=np.float32)
        idx = np.searchsorted(entry.starts, labelled.starts - 1e-6)
        idx = np.clip(idx, 0, len(entry.starts) - 1)
        found = np.abs(entry.starts[idx] - labelled.starts) < 1e-6
        x[found] = entry.embeddings[idx[found]]
        if (~found).any():
            sr = self.embedder.sample_rate
            if isinstance(rec.source, np.ndarray):
                audio = resample(
                    as_waveform_batch(rec.source, owner="Scanner")[0].numpy(),
                    int(rec.sample_rate or sr),
                    sr,
                )
            else:
                audio = load_audio(rec.source, sr)
            x[~found] = self.embedder.embed_windows(
                audio,
                labelled.starts[~found],
                self.train_windows.window,
                batch_size=self.batch_size,
                encoding=self.scan_windows.encoding,
            )
        if self.normalization == "recording":
            x = self._zscore(x, entry.embeddings)
        elif self.normalization == "targeted" and len(x):
            x = self._zscore(x, x)
        return x, labelled.labels

    def fit(
        self,
        recordings: Iterable[Recording | tuple[Source, Markers]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Scanner:
        """Train on recordings with markers; returns ``self``.

        Raises:
            TrainingDataError: no recordings, or only one class among the windows.
            AudioDecodeError: a training file cannot be read (training needs them all).
            Cancelled: ``cancel`` was set; the scanner is left unchanged.
        """
        recs = [_as_recording(r) for r in recordings]
        if not recs:
            raise TrainingDataError("fit() needs at least one recording with markers.")
        missing = [
            str(r.source)
            for r in recs
            if not isinstance(r.source, np.ndarray) and not Path(r.source).is_file()
        ]
        if missing:  # say so before any work, not after embedding the others
            raise AudioFileNotFoundError(
                missing[0],
                f"no such file; {len(missing)} of the {len(recs)} training recordings are "
                f"missing: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}",
            )
        xs, ys, per_file = [], [], []
        # The next file is decoded while the current one is embedded.
        entries = self._embeddings_many(
            [(rec.source, rec.sample_rate) for rec in recs], progress, cancel
        )
        for i, entry in entries:
            if isinstance(entry, Exception):
                raise entry
            rec = recs[i]
            x, y = self._training_windows(rec, entry)
            xs.append(x)
            ys.append(y)
            per_file.append(
                {"source": rec.label, "positive": int(y.sum()), "negative": int(len(y) - y.sum())}
            )
            if progress is not None:
                progress(ProgressEvent("train-files", rec.label, i + 1, len(recs), "files"))
        X = np.concatenate(xs) if xs else np.zeros((0, self.embedder.dim), np.float32)
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        if len(y) == 0:
            raise TrainingDataError(
                "The markers produced no training windows at all: check that the marked "
                "times fall inside the recordings."
            )
        classifier = clone(self.classifier)
        if cancel is not None:
            cancel.check()
        classifier.fit(X, y)
        if cancel is not None:  # a cancel during the fit leaves the scanner unchanged
            cancel.check()
        self.classifier = classifier
        self.training_summary = {
            "files": per_file,
            "windows_positive": int(y.sum()),
            "windows_negative": int(len(y) - y.sum()),
            **{f"classifier_{k}": v for k, v in classifier.summary_.items()},
        }
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self.classifier, "estimator_")

    # ------------------------------------------------------------------ scanning

    def scan(
        self,
        source: Source,
        *,
        sample_rate: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> ScanResult:
        """Score every sliding window of a file (or an array with ``sample_rate``)."""
        self._check_fitted()
        entry = self.sliding_embeddings(
            source, sample_rate=sample_rate, progress=progress, cancel=cancel
        )
        return self._score(source, entry)

    def scan_many(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, ScanResult | AudioEmbedError]]:
        """:meth:`scan` several files, decoding the next file while the current one is embedded.

        Yields ``(path, result)`` in order, or ``(path, error)`` for a file that
        cannot be decoded (the others are still scanned). Cancellation raises.
        """
        self._check_fitted()
        for path, entry in self.sliding_embeddings_many(sources, progress=progress, cancel=cancel):
            yield path, entry if isinstance(entry, Exception) else self._score(path, entry)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This Scanner is not trained yet; call fit() or Scanner.load().")

    def _score(self, source: Source, entry: CachedEmbeddings) -> ScanResult:
        x = entry.embeddings
        if self.normalization != "none":
            x = self._zscore(x, x)
        proba = self.classifier.score_windows(x)
        return ScanResult(
            source="<array>" if isinstance(source, np.ndarray) else str(source),
            starts=entry.starts,
            probabilities=proba,
            window=self.scan_windows.window,
            duration=entry.duration,
            threshold=self.threshold,
        )

    # ------------------------------------------------------------------ persistence

    def _metadata(self) -> dict[str, Any]:
        from audio_embed import __version__

        return {
            "format": SCANNER_FORMAT,
            "format_version": SCANNER_FORMAT_VERSION,
            "library_version": __version__,
            "embedder": {
                "name": self.embedder.name,
                "dim": self.embedder.dim,
                "cache_id": self.embedder.cache_id(),
                "config": self.embedder.config(),
            },
            "feature_dim": self.embedder.dim,
            "scan_windows": {
                "window": self.scan_windows.window,
                "hop": self.scan_windows.hop,
                "encoding": self.scan_windows.encoding,
            },
            "train_windows": {
                "window": self.train_windows.window,
                "tolerance": self.train_windows.tolerance,
                "neg_margin": self.train_windows.neg_margin,
                "neg_stride": self.train_windows.neg_stride,
                "labelling": self.train_windows.labelling,
                "hop": self.train_windows.hop,
            },
            "normalization": self.normalization,
            "threshold": self.threshold,
            "batch_size": self.batch_size,
            "training_summary": self.training_summary,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trained scanner to one file (a zip of JSON + skops), atomically.

        The file gets ordinary permissions (``0o666`` less the umask), like
        every other output.
        """
        import skops.io

        if not self.is_fitted:
            raise InvalidInputError("Only a trained scanner can be saved; call fit() first.")
        target = Path(path)
        payload = skops.io.dumps(self.classifier)
        with atomic_writer(target) as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("scanner.json", json.dumps(self._metadata(), indent=2))
                zf.writestr("classifier.skops", payload)
        return target

    @staticmethod
    def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
        """The JSON part of a saved scanner (embedder name, settings, summary)."""
        meta, _ = _read_scanner_file(Path(path))
        return meta

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
        embedder_kwargs: dict[str, Any] | None = None,
        allow_mismatch: bool = False,
    ) -> Scanner:
        """Load a scanner saved by :meth:`save`.

        The embedder is rebuilt from the saved config (registry name, settings,
        layers, pooling, weight source; ``embedder_kwargs`` such as ``device``
        or a local ``checkpoint`` go to its factory) unless given. Its config,
        weight fingerprint included, must equal the saved one; with
        ``allow_mismatch=True`` a mismatch is only logged as a warning. Files
        of formats 1 and 2 (no config) are rebuilt by name. Never unpickles:
        the classifier is read with skops after checking that it holds only
        scikit-learn / numpy types.

        Raises:
            ScannerFileError: unreadable, truncated, of another format, made for
                another embedder, feature size, settings or weights (the
                message says what differs), or holding untrusted types.
        """
        p = Path(path)
        meta, payload = _read_scanner_file(p)
        embedder = _saved_embedder(p, meta, embedder, embedder_kwargs or {}, allow_mismatch)
        classifier = _load_classifier(p, payload)
        sw, tw = meta["scan_windows"], meta["train_windows"]
        scanner = cls(
            embedder=embedder,
            classifier=classifier,
            scan_windows=SlidingWindows(float(sw["window"]), float(sw["hop"]), sw["encoding"]),
            train_windows=TargetedWindows(**tw),
            normalization=meta["normalization"],
            cache=cache,
            batch_size=None if meta.get("batch_size") is None else int(meta["batch_size"]),
            threshold=float(meta["threshold"]),
        )
        scanner.training_summary = meta.get("training_summary")
        return scanner


def _saved_embedder(
    p: Path,
    meta: dict[str, Any],
    embedder: Embedder | None,
    kwargs: dict[str, Any],
    allow_mismatch: bool,
) -> Embedder:
    """The embedder a saved scanner was trained with: given and checked, or rebuilt."""
    from audio_embed.registry import create_embedder, embedder_from_config

    want = meta["embedder"]
    saved = want.get("config")
    if embedder is None:
        if saved is not None:
            embedder = embedder_from_config(saved, **kwargs)
        else:
            embedder = create_embedder(str(want["name"]), **kwargs)
    if embedder.name != want["name"] or embedder.dim != int(meta["feature_dim"]):
        raise ScannerFileError(
            f"{p} was trained with embedder {want['name']} ({meta['feature_dim']} features); "
            f"it cannot be used with {embedder.name} ({embedder.dim} features). Scan with "
            f"the same embedder, or train a new scanner for {embedder.name}."
        )
    if saved is not None:
        differences = config_differences(saved, embedder.config())
    elif int(meta.get("format_version", 1)) >= 2 and want.get("cache_id") != embedder.cache_id():
        differences = [
            f"fingerprint: saved {want.get('cache_id')!r} (format {meta['format_version']}, "
            "computed by an older audio_embed, so it may differ for the same weights)"
        ]
    else:
        differences = []
    if differences:
        message = (
            f"{p} was trained with another configuration or other weights of "
            f"{want['name']}: " + "; ".join(differences) + ". Its scores would be meaningless."
        )
        if not allow_mismatch and saved is not None:
            raise ScannerFileError(
                message + " Load the embedder it was trained with, train it again, or pass "
                "allow_mismatch=True (--allow-mismatch) to use it anyway."
            )
        log.warning("%s", message)
    return embedder


def _read_scanner_file(p: Path) -> tuple[dict[str, Any], bytes]:
    if not p.is_file():
        raise ScannerFileError(f"Scanner file not found: {p}")
    try:
        with zipfile.ZipFile(p) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if set(infos) != {"scanner.json", "classifier.skops"}:
                raise ScannerFileError(
                    f"{p} is not an audio_embed scanner (unexpected contents: {sorted(infos)})."
                )
            if sum(i.file_size for i in infos.values()) > MAX_SCANNER_BYTES:
                raise ScannerFileError(f"{p} is implausibly large for a scanner; refusing it.")
            meta = json.loads(zf.read("scanner.json"))
            payload = zf.read("classifier.skops")
    except ScannerFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise ScannerFileError(
            f"{p} is not a readable scanner file (truncated or corrupt: {exc})."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != SCANNER_FORMAT:
        raise ScannerFileError(f"{p} is not an audio_embed scanner file.")
    if int(meta.get("format_version", -1)) > SCANNER_FORMAT_VERSION:
        raise ScannerFileError(
            f"{p} was written by a newer audio_embed ({meta.get('library_version')}); upgrade."
        )
    for key in ("embedder", "feature_dim", "scan_windows", "train_windows", "normalization"):
        if key not in meta:
            raise ScannerFileError(f"{p} lacks the {key!r} field; the file is damaged.")
    return meta, payload


def _load_classifier(p: Path, payload: bytes) -> CalibratedClassifier:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=payload)
    except Exception as exc:
        raise ScannerFileError(f"{p}: the classifier part is damaged ({exc}).") from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_MODULE_PREFIXES)]
    if refused:
        raise ScannerFileError(
            f"{p} holds types that are not scikit-learn or numpy types ({', '.join(refused)}); "
            "refusing to load it. Nothing from the file was executed."
        )
    try:
        obj = skops.io.loads(payload, trusted=untrusted)
    except Exception as exc:
        raise ScannerFileError(f"{p}: the classifier could not be loaded ({exc}).") from exc
    if not isinstance(obj, CalibratedClassifier):
        raise ScannerFileError(f"{p}: expected a CalibratedClassifier, found {type(obj).__name__}.")
    return obj

"""Sliding-window embeddings of recordings: decoding in blocks, the cache, streaming.

:class:`StreamingEmbeddings` is the part of :class:`~audio_embed.scanner.Scanner`
that turns a file (or an array) into the embeddings of its sliding windows:
cache hits are never decoded, the next file is decoded in a background thread
while the current one is embedded, and memory stays bounded by a few blocks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from audio_embed._media import path_list
from audio_embed.audio import AudioStream, resample, stream_audio
from audio_embed.bandwidth import BandEdge
from audio_embed.cache import CachedEmbeddings, EmbeddingCache
from audio_embed.embedders.base import Embedder, as_waveform_batch
from audio_embed.errors import AudioDecodeError, AudioEmbedError, InvalidInputError
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent, prefetch
from audio_embed.types import check_sample_rate
from audio_embed.windows import SlidingWindows

__all__ = ["BLOCK_SECONDS", "Source", "StreamingEmbeddings", "check_source", "mono_array"]

Source = str | os.PathLike[str] | np.ndarray
#: Seconds of audio decoded per streamed block.
BLOCK_SECONDS = 120.0


def check_source(source: object, owner: str = "Scanner.scan") -> Source:
    """``source`` as a path (``bytes`` decoded as the file system does) or an array.

    Raises:
        InvalidInputError: anything else (a list of samples, None, a number; before:
            ``TypeError: expected str, bytes or os.PathLike object, not list`` from
            inside pathlib).
    """
    if isinstance(source, bytes):
        return os.fsdecode(source)
    if isinstance(source, str | os.PathLike | np.ndarray):
        return source
    hint = (
        " For samples, pass numpy.asarray(samples, dtype=numpy.float32) and their sample_rate."
        if isinstance(source, list | tuple)
        else ""
    )
    raise InvalidInputError(
        f"{owner} takes the path of an audio or video file, or a numpy array of samples "
        f"with its sample_rate. Got {type(source).__name__} instead.{hint}"
    )


def mono_array(source: np.ndarray, owner: str = "Scanner") -> np.ndarray:
    """A 1-D float32 waveform from an array to scan or train on: 1-D as it is; 2-D as
    ``[channels, samples]``, the channels averaged (as a file's are when decoded).

    Raises:
        InvalidInputError: a 2-D array with more rows than columns: most likely
            ``[samples, channels]`` (soundfile's layout), which read as channels
            gave a few samples per "channel" and a scan of a fraction of a second.
    """
    if source.ndim == 2 and source.shape[0] > source.shape[1]:
        raise InvalidInputError(
            f"{owner} reads a 2-D array as [channels, samples]; got shape {source.shape}, "
            "more channels than samples. An array from soundfile.read is [samples, "
            "channels]: pass audio.T (or audio.mean(axis=1) for mono)."
        )
    batch = as_waveform_batch(source, owner=owner)
    return (batch.mean(dim=0) if batch.shape[0] > 1 else batch[0]).numpy()


class StreamingEmbeddings:
    """Embedding, caching and streaming for :class:`~audio_embed.scanner.Scanner`.

    A mixin without fields of its own: the scanner's attrs fields below are
    what these methods read.
    """

    __slots__ = ()

    embedder: Embedder
    scan_windows: SlidingWindows
    cache: EmbeddingCache | None
    batch_size: int | None
    audio_stream: AudioStream | None

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
            audio = resample(mono_array(source), int(sample_rate), sr)
            step = round(BLOCK_SECONDS * sr)
            return iter([audio[i : i + step] for i in range(0, max(len(audio), 1), step)])
        return stream_audio(source, sr, BLOCK_SECONDS, self.audio_stream)

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
        """The embedding-cache entry name of ``source`` for this scanner's embedder,
        windows and audio stream; None without a cache, for arrays, or when the file
        is gone."""
        if self.cache is None or isinstance(source, np.ndarray):
            return None
        return self.cache.key(source, self._settings(), audio_stream=self.audio_stream or 0)

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
        A cache entry is read when its turn comes, after a check for
        cancellation, so a batch of cached files holds one entry at a time (before:
        every entry was read when the batch began, all held until it ended, and
        Ctrl-C waited for the whole batch); one found unreadable then is decoded
        in its place. A file that cannot be decoded yields its error instead of
        embeddings.
        """
        keys = [self._cache_key(src) for src, _ in sources]
        cached = {i for i, key in enumerate(keys) if self.cache is not None and self.cache.has(key)}
        jobs = [(i, src, rate) for i, (src, rate) in enumerate(sources) if i not in cached]
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
            for i, (source, rate) in enumerate(sources):
                if cancel is not None:
                    cancel.check()
                if i in cached:
                    hit = self._cached(keys[i])
                    if hit is not None:
                        yield i, hit
                        continue
                label = "<array>" if isinstance(source, np.ndarray) else str(source)
                try:
                    # an entry found unreadable (or gone) at its turn is decoded here
                    own = self._raw_blocks(source, rate) if i in cached else blocks(i)
                    entry = self._stream_sliding(own, label, progress, cancel)
                except (AudioDecodeError, InvalidInputError) as exc:
                    yield i, exc
                    continue
                # Keyed when the batch began: a file that changed since (its key now
                # differs) was decoded as it is now, not as the key says; not cached.
                if self.cache is not None and keys[i] is not None:
                    if self._cache_key(source) == keys[i]:
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
        source = check_source(source)
        if isinstance(source, np.ndarray) and sample_rate is not None:
            sample_rate = check_sample_rate(sample_rate, "Scanner.scan")
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
        paths = [str(p) for p in path_list(sources, "Scanner.sliding_embeddings_many")]
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
        align = 1  # a frame model's frames stay on the file's frame grid across blocks
        if sw.encoding == "shared":
            context = float(self.embedder.shared_settings().get("context", 0.0))
            geometry = self.embedder.frame_geometry()
            align = 1 if geometry is None else int(geometry.hop)
        margin = round(max(context, self.embedder.lead_in) * sr)
        buf = np.zeros(0, dtype=np.float32)
        offset = 0  # sample index of buf[0]
        total = 0
        next_k = 0
        starts_done: list[np.ndarray] = []
        embs: list[np.ndarray] = []
        band = BandEdge(sr)  # the band edge and peak, from the blocks decoded anyway

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
            band.add(block)
            ks = []
            # the grid's own rule (in seconds), so a hop of no whole number of samples
            # never embeds a window that starts() replaces by an end-aligned one
            # (before: an internal error on some file lengths, e.g. hop 1/3 s)
            ready = sw.whole((total - margin) / sr)
            while next_k < ready and round(next_k * sw.hop * sr) + win + margin <= total:
                ks.append(next_k)
                next_k += 1
            if ks:
                embed(np.asarray(ks, dtype=np.float64) * sw.hop)
            keep_from = max(min(round(next_k * sw.hop * sr), total - win) - margin, offset)
            keep_from -= keep_from % align  # offset is aligned, so this stays >= offset
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
        embeddings = np.concatenate(embs).astype(np.float32, copy=False)
        embs.clear()  # the blocks, once they are in one array
        return CachedEmbeddings(
            starts=final,
            embeddings=embeddings,
            duration=duration,
            band_edge=band.edge(),
            peak=band.peak,
        )

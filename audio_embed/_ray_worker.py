"""What runs on the Ray workers of :mod:`audio_embed.distributed`: decoding a
file in a CPU task, and the model actor that builds the scanner once (from its
saved file's bytes) and scores one decoded file per call.

Private to :mod:`audio_embed.distributed`; kept apart so the driver's module
stays readable and so that this is all a worker has to import.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audio_embed.errors import AudioEmbedError

if TYPE_CHECKING:
    from audio_embed.audio import AudioStream
    from audio_embed.cache import CachedEmbeddings

__all__ = [
    "CRASH_ONCE_ENV",
    "DECODE_BLOCK_SECONDS",
    "ModelWorker",
    "build_scanner",
    "decode_row",
    "describe",
    "file_state",
    "scanner_file",
]

#: When set on the workers, ``<value>`` names a file; while it exists, the first
#: worker call that removes it kills its own process (fault-injection for tests).
CRASH_ONCE_ENV = "AUDIO_EMBED_RAY_CRASH_ONCE"
#: Seconds of audio the decode tasks read per block (as the local scan does).
DECODE_BLOCK_SECONDS = 120.0


def describe(exc: BaseException) -> str:
    if isinstance(exc, AudioEmbedError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def file_state(path: str) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of ``path`` as the embedding cache keys it, or None if gone."""
    try:
        st = Path(path).resolve().stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def decode_row(
    row: dict[str, Any], sample_rate: int, audio_stream: AudioStream | None = None
) -> dict[str, Any]:
    """Ray Data task: one file → its whole waveform (float32 bytes) from audio stream
    ``audio_stream`` (None: the first), or the reason it failed.

    ``size`` and ``mtime_ns`` are the file's as it was decoded (-1 when it changed
    while being decoded): the model actor caches the embeddings only under the key of
    that very file, not of one changed since.
    """
    from audio_embed.audio import stream_audio

    out = {"index": row["index"], "path": row["path"], "audio": b"", "error": ""}
    out["size"] = out["mtime_ns"] = -1
    try:
        before = file_state(row["path"])
        blocks = list(stream_audio(row["path"], sample_rate, DECODE_BLOCK_SECONDS, audio_stream))
        audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        out["audio"] = np.ascontiguousarray(audio, dtype=np.float32).tobytes()
        if before is not None and file_state(row["path"]) == before:
            out["size"], out["mtime_ns"] = before
    except Exception as exc:  # a bad file is reported, never fatal to the run
        out["error"] = describe(exc)
    return out


def maybe_crash_for_test() -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if not marker:
        return
    try:
        os.unlink(marker)  # only one process wins the unlink
    except FileNotFoundError:
        return
    os._exit(17)


class ModelWorker:
    """A Ray Data actor: builds the scanner once, then scores (or embeds) one file per call."""

    def __init__(self, job: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(int(job["threads"]))
        self.task: str = job["task"]
        self.sample_rate = int(job["sample_rate"])
        self.scanner = build_scanner(job)
        rate = int(self.scanner.embedder.sample_rate)
        if rate != self.sample_rate:  # resampled, the vectors would differ from a local scan
            raise AudioEmbedError(
                f"The files of this Ray run are decoded at {self.sample_rate} Hz, but "
                f"{self.scanner.embedder.name} takes {rate} Hz. Register its model on the "
                "driver too (load_plugin / --plugin) before building the runner."
            )

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        maybe_crash_for_test()
        out = {"index": row["index"], "path": row["path"], "error": row["error"], "payload": b""}
        out["seconds"] = len(row["audio"]) / 4 / self.sample_rate
        if row["error"]:
            return out
        path = str(row["path"])
        try:
            decoded = (int(row.get("size", -1)), int(row.get("mtime_ns", -1)))
            # None without a cache, and when the file changed since it was decoded: its
            # key would name the new content, the audio here is the old one
            key = self.scanner.cache_key(path) if file_state(path) == decoded else None
            entry = self._cached(key)
            if entry is None:
                audio = np.frombuffer(row["audio"], dtype=np.float32)
                entry = self.scanner.sliding_embeddings(audio, sample_rate=self.sample_rate)
                if key is not None:
                    self.scanner.cache.put(key, entry)
            result: Any = entry
            if self.task == "scan":
                result = self.scanner.score_embeddings(entry, source=path)
            # Transport between the driver and its own workers (what Ray does anyway).
            out["payload"] = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # one file's failure must not lose the others'
            out["error"] = describe(exc)
        return out

    def _cached(self, key: str | None) -> CachedEmbeddings | None:
        """The cache entry ``key`` when it holds vectors of this model's size."""
        cache = self.scanner.cache
        hit: CachedEmbeddings | None = None if cache is None or key is None else cache.get(key)
        if hit is not None and hit.embeddings.shape[1] == self.scanner.embedder.dim:
            return hit
        return None


@contextlib.contextmanager
def scanner_file(data: bytes) -> Iterator[Path]:
    """``data`` as a file for :meth:`Scanner.load`: in memory on Linux (``memfd``, gone
    with the process even when Ray kills it mid-load), else in a temporary folder."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("audio_embed.scanner")
        try:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(data)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="audio_embed-") as tmp:
        path = Path(tmp) / "job.scanner"
        path.write_bytes(data)
        yield path


def build_scanner(job: dict[str, Any]) -> Any:
    """On a worker: the scanner from its file bytes, or a fresh one for embedding,
    with its model on this worker's GPU when it has one (unless a device was given)."""
    from audio_embed.registry import load_plugin
    from audio_embed.scanner import Scanner

    for module in job.get("plugins") or ():  # the driver's --plugin: its models, here too
        load_plugin(module)
    for module in job.get("scanner_modules") or ():  # the scanner's own classes' modules
        load_plugin(module)
    kwargs = dict(job["embedder_kwargs"])
    cache = None
    if job.get("cache_dir") is not None:
        from audio_embed.cache import EmbeddingCache

        cache = EmbeddingCache(job["cache_dir"])
    factory = job.get("embedder_factory")
    embedder = factory() if factory is not None else None
    scanner: Scanner
    if job.get("scanner_bytes") is not None:
        data = job["scanner_bytes"]
        if not isinstance(data, bytes):  # an ObjectRef
            import ray

            data = ray.get(data)
        with scanner_file(data) as path:
            try:
                if embedder is not None:
                    scanner = Scanner.load(
                        path, embedder=embedder, cache=cache, **job["load_kwargs"]
                    )
                else:
                    scanner = Scanner.load(
                        path, embedder_kwargs=kwargs, cache=cache, **job["load_kwargs"]
                    )
            except AudioEmbedError as exc:  # named by the driver's name, not /proc/self/fd/N
                name = job.get("scanner_name")
                if name is None or str(path) not in str(exc):
                    raise
                raise type(exc)(str(exc).replace(str(path), str(name))) from exc
    else:
        from audio_embed.registry import create_embedder
        from audio_embed.windows import SlidingWindows, TargetedWindows

        if embedder is None:
            embedder = create_embedder(job["model"], **kwargs)
        w = job["windows"]
        scanner = Scanner(
            embedder,
            scan_windows=SlidingWindows(w["window"], w["hop"], w["encoding"]),
            train_windows=TargetedWindows(w["window"]),
            batch_size=job["batch_size"],
            cache=cache,
        )
    # the stream the decode tasks read: the cache key of a file must name it
    scanner.audio_stream = job.get("audio_stream", scanner.audio_stream)
    if job.get("device") and "device" not in kwargs:
        scanner.embedder.to(job["device"])
    return scanner

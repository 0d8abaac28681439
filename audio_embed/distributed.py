"""Scan and embed many files on Ray: a local Ray on this machine, or a cluster.

A Ray Data pipeline over the list of input files: each file is decoded in a
CPU task (the same streaming decoder as a local scan), then embedded and
classified in a pool of actors that each build the model once (one GPU per
actor when the cluster has GPUs, CPU slots otherwise). The driver receives the
results as they finish and writes each file's output atomically, so a result
file is either complete or absent, and ``skip_existing`` resumes a run.

The scanner travels to the workers as the bytes of its saved file (the same
safe zip of JSON + skops that :meth:`Scanner.save` writes); workers rebuild it
with :meth:`Scanner.load`. No model, closure or classifier is pickled.

Fault tolerance: a file that cannot be decoded or scored is reported (one
line, the reason) and the others finish. An actor that dies (a killed process,
a lost node) is restarted by Ray and its file is retried (``max_restarts``,
``max_task_retries``). Results do not depend on the number of workers or the
order in which files finish: each file is scored by the same code path as a
local :meth:`Scanner.scan` of its decoded waveform.

Needs the optional extra: ``pip install "audio_embed[ray]"``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import define, field

from audio_embed._ray_pipeline import (
    FileFailure,
    RayOptions,
    Task,
    _run_on_ray,
    ray_session,
)
from audio_embed.errors import AudioEmbedError, InvalidInputError
from audio_embed.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:
    from audio_embed.audio import AudioStream
    from audio_embed.batch import BatchReport, BatchSettings, FileOutcome
    from audio_embed.cache import CachedEmbeddings
    from audio_embed.scanner import Scanner, ScanResult
    from audio_embed.windows import Markers

__all__ = [
    "DatasetReport",
    "FileFailedError",
    "FileFailure",
    "RayOptions",
    "RayScanner",
    "embed_dataset",
    "ray_session",
    "scan_dataset",
    "scan_results",
]

log = logging.getLogger(__name__)


@define
class DatasetReport:
    """What :func:`embed_dataset` did: files done, skipped (result existed) and failed."""

    done: list[str] = field(factory=list)
    skipped: list[str] = field(factory=list)
    failed: list[FileFailure] = field(factory=list)
    outputs: dict[str, Path] = field(factory=dict)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when any input failed, else 0 (as the local scan)."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One line: counts, audio hours and speed."""
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return (
            f"{len(self.done)} done, {len(self.skipped)} skipped (result exists), "
            f"{len(self.failed)} failed; {self.audio_seconds / 3600:.2f} h of audio in "
            f"{self.wall_seconds:.1f} s ({speed:.0f}× real time)"
        )


class FileFailedError(AudioEmbedError):
    """A file that produced no result on Ray; ``reason`` is one line (as the local scan's)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(reason)


class RayScanner:
    """A :class:`Scanner`-shaped runner on Ray: :meth:`scan_many` and
    :meth:`sliding_embeddings_many` yield ``(path, result)`` or ``(path, error)``
    as the local methods do, so code written for a scanner (a batch loop)
    runs on Ray unchanged.

    Results come as files finish, in no particular order; ``ordered=True``
    yields them in input order instead (holding early results back).
    Build one with :meth:`from_scanner` or :meth:`for_embedding`.
    """

    def __init__(
        self,
        job: Mapping[str, Any],
        options: RayOptions | None = None,
        *,
        ordered: bool = False,
        progress_bar: bool | None = None,
    ) -> None:
        self.job = dict(job)
        self.options = options or RayOptions()
        self.ordered = ordered
        self.progress_bar = progress_bar
        #: Seconds of audio processed by the last call, per path.
        self.seconds: dict[str, float] = {}

    @classmethod
    def from_scanner(
        cls,
        scanner: Scanner | str | os.PathLike[str],
        options: RayOptions | None = None,
        *,
        load_kwargs: Mapping[str, Any] | None = None,
        ordered: bool = False,
        progress_bar: bool | None = None,
        audio_stream: AudioStream | None = None,
    ) -> RayScanner:
        """Ship a trained :class:`Scanner` (or the path of a saved one) as its file's bytes.

        ``load_kwargs`` go to :meth:`Scanner.load` on each worker. A Scanner subclass
        with its own ``window_features``, or a Postprocessing subclass, loads as that
        class on the workers: given as a scanner, its module is imported there (a class
        of ``__main__`` or of a function cannot be:
        :class:`~audio_embed.errors.InvalidInputError`); given as a file, name its
        module in ``RayOptions(plugins=[...])``. ``audio_stream``:
        None (default) decodes the scanner's own :attr:`Scanner.audio_stream`; a
        number decodes that stream instead.
        """
        from audio_embed.audio import check_audio_stream
        from audio_embed.scanner import Scanner

        own_modules: list[str] = []
        if isinstance(scanner, Scanner):
            own_modules = _own_modules(scanner)
            with tempfile.TemporaryDirectory(prefix="audio_embed-") as tmp:
                data = scanner.save(Path(tmp) / "job.scanner").read_bytes()
            sample_rate = int(scanner.embedder.sample_rate)
            threshold = scanner.scan_threshold
            own = scanner.audio_stream
            normalization: str = scanner.normalization
            summary = scanner.training_summary or {}
            name = f"the {type(scanner).__name__} given to RayScanner.from_scanner"
        else:
            path = Path(os.fspath(scanner))
            # A missing or damaged file fails here, not on Ray.
            meta = Scanner.read_metadata(path)
            threshold = float(meta["threshold"])
            own = meta.get("audio_stream")
            normalization = str(meta.get("normalization", "recording"))
            summary = meta.get("training_summary") or {}
            # decoded at the model's rate (a plugin's may not be 16 kHz); files from
            # before the embedder's config was saved: the built-ins' rate
            config = meta["embedder"].get("config") or {}
            data, sample_rate = path.read_bytes(), int(config.get("sample_rate", 16000))
            name = str(path)
        if audio_stream is not None:
            own = check_audio_stream(audio_stream)
        job: dict[str, Any] = {
            "scanner_bytes": data,
            # of a Scanner or Postprocessing subclass of the scanner's: imported on each worker
            "scanner_modules": own_modules,
            "scanner_name": name,  # what a worker's load errors call it (not its memfd)
            "load_kwargs": dict(load_kwargs or {}),
            "sample_rate": sample_rate,
            "threshold": threshold,
            "audio_stream": own,
            "normalization": normalization,
            "label": summary.get("label"),  # the target's name, for the driver's results
            "training_files": summary.get("files"),  # their markers, for --suggest
        }
        return cls(job, options, ordered=ordered, progress_bar=progress_bar)

    @classmethod
    def for_embedding(
        cls,
        model: str,
        options: RayOptions | None = None,
        *,
        window: float = 1.0,
        hop: float = 0.1,
        encoding: str = "shared",
        batch_size: int | None = None,
        ordered: bool = False,
        progress_bar: bool | None = None,
        audio_stream: AudioStream | None = None,
    ) -> RayScanner:
        """Sliding-window embeddings with the registered embedder ``model`` (no classifier),
        of audio stream ``audio_stream`` of each file (None: the first)."""
        from audio_embed.audio import check_audio_stream
        from audio_embed.errors import UnknownEmbedderError
        from audio_embed.registry import get_spec
        from audio_embed.windows import SlidingWindows

        SlidingWindows(window, hop, encoding)  # type: ignore[arg-type]  # validates here
        if audio_stream is not None:
            audio_stream = check_audio_stream(audio_stream)
        try:  # decoded at the model's rate (a plugin's may not be 16 kHz)
            sample_rate = int(get_spec(model).sample_rate)
        except UnknownEmbedderError:  # registered on the workers only: they check it
            sample_rate = 16000
        job = {
            "audio_stream": audio_stream,
            "scanner_bytes": None,
            "model": model,
            "windows": {"window": window, "hop": hop, "encoding": encoding},
            "batch_size": batch_size,
            "load_kwargs": {},
            "sample_rate": sample_rate,
        }
        return cls(job, options, ordered=ordered, progress_bar=progress_bar)

    @property
    def normalization(self) -> str:
        """The scanner's :attr:`Scanner.normalization` (``"recording"`` for a runner that
        only embeds): :func:`audio_embed.batch.scan_to_folder` warns about short clips by it."""
        return str(self.job.get("normalization") or "recording")

    @property
    def audio_stream(self) -> AudioStream | None:
        """The audio stream the workers decode (as :attr:`Scanner.audio_stream`; None:
        the first): :func:`audio_embed.batch.scan_to_folder` records it with each
        result."""
        stream: AudioStream | None = self.job.get("audio_stream")  # checked when built
        return stream

    @property
    def training_markers(self) -> dict[str, Markers] | None:
        """The scanner's :attr:`Scanner.training_markers` (None: it does not keep them)."""
        from audio_embed.scanner.core import summary_markers

        return summary_markers({"files": self.job.get("training_files")})

    @property
    def scan_threshold(self) -> float:
        """The scanner's detection threshold (as :attr:`Scanner.scan_threshold`), so that
        :func:`audio_embed.batch.scan_to_folder` takes this runner as a scanner."""
        if self.job.get("threshold") is None:
            raise InvalidInputError("This RayScanner only embeds; build it with from_scanner().")
        return float(self.job["threshold"])

    def _many(
        self,
        task: Task,
        sources: Iterable[str | os.PathLike[str]],
        cancel: CancelToken | None,
    ) -> Iterator[tuple[str, Any]]:
        paths = [str(p) for p in sources]
        self.seconds = {}
        held: dict[str, Any] = {}
        next_i = 0
        desc = f"{task} (ray)"
        rows = _run_on_ray(
            {**self.job, "task": task},
            paths,
            options=self.options,
            progress=self.progress_bar,
            cancel=cancel,
            desc=desc,
        )
        for path, result, seconds in rows:
            self.seconds[path] = seconds
            if isinstance(result, FileFailure):
                result = FileFailedError(result.path, result.reason)
            if not self.ordered:
                yield path, result
                continue
            held[path] = result
            while next_i < len(paths) and paths[next_i] in held:
                yield paths[next_i], held.pop(paths[next_i])
                next_i += 1

    def scan_many(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, ScanResult | AudioEmbedError]]:
        """As :meth:`Scanner.scan_many`, on Ray (``progress`` is unused: one bar from here)."""
        if self.job.get("scanner_bytes") is None:
            raise InvalidInputError("This RayScanner only embeds; build it with from_scanner().")
        yield from self._many("scan", sources, cancel)

    def sliding_embeddings_many(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, CachedEmbeddings | AudioEmbedError]]:
        """As :meth:`Scanner.sliding_embeddings_many`, on Ray."""
        yield from self._many("embed", sources, cancel)


def scan_results(
    scanner: Scanner | str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    options: RayOptions | None = None,
    progress: bool | None = None,
    cancel: CancelToken | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    audio_stream: AudioStream | None = None,
) -> tuple[dict[str, ScanResult], list[FileFailure]]:
    """Scan ``inputs`` on Ray; returns ``{path: ScanResult}`` (in input order) and the failures.

    ``scanner`` is a trained :class:`Scanner` or the path of a saved one;
    ``audio_stream`` (None: the scanner's own) as in :meth:`RayScanner.from_scanner`.
    """
    runner = RayScanner.from_scanner(
        scanner,
        options,
        load_kwargs=load_kwargs,
        ordered=True,
        progress_bar=progress,
        audio_stream=audio_stream,
    )
    got: dict[str, ScanResult] = {}
    failed: list[FileFailure] = []
    for path, result in runner.scan_many(inputs, cancel=cancel):
        if isinstance(result, Exception):
            failed.append(FileFailure(path, str(result)))
        else:
            got[path] = result
    return got, failed


def scan_dataset(
    scanner: Scanner | str | os.PathLike[str],
    items: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    options: RayOptions | None = None,
    progress: bool | None = None,
    cancel: CancelToken | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    audio_stream: AudioStream | None = None,
) -> BatchReport:
    """:func:`audio_embed.batch.scan_to_folder` on Ray: the same inputs, output
    names, per-file result files, combined CSV, ``settings``
    (:class:`~audio_embed.batch.BatchSettings`) and
    :class:`~audio_embed.batch.BatchReport` as a local scan, with the scanning
    done by :class:`RayScanner`.

    ``scanner``: a trained :class:`Scanner`, or the path of a saved one (then
    the model is built on the workers only). Each result file is written
    atomically by the driver as its file finishes; with ``skip_existing`` an
    input whose result exists is never sent to Ray. ``audio_stream`` (None: the
    scanner's own) as in :meth:`RayScanner.from_scanner`.
    """
    from audio_embed.batch import scan_to_folder

    runner = RayScanner.from_scanner(
        scanner, options, load_kwargs=load_kwargs, progress_bar=progress, audio_stream=audio_stream
    )
    return scan_to_folder(runner, items, out_dir, settings, cancel=cancel, on_file=on_file)


def embed_dataset(
    model: str,
    items: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    window: float = 1.0,
    hop: float = 0.1,
    encoding: str = "shared",
    batch_size: int | None = None,
    skip_existing: bool = False,
    options: RayOptions | None = None,
    progress: bool | None = None,
    cancel: CancelToken | None = None,
    on_result: Callable[[str, Any], None] | None = None,
    audio_stream: AudioStream | None = None,
) -> DatasetReport:
    """Sliding-window embeddings of files and folders (as :func:`~audio_embed.batch.collect_inputs`
    finds them) with the registered embedder ``model``, on Ray.

    With ``out_dir``, each file's embeddings are written atomically to
    ``out_dir/<relative folder>/<stem>.npz`` (named as scan results are; arrays
    ``starts``, ``embeddings``, ``duration`` as the embedding cache stores
    them, and ``settings``: model, windows, audio stream and ``embedder``, the
    model's identity, as JSON). The identity is the
    :meth:`~audio_embed.Embedder.cache_id` that keys the embedding cache: it
    changes with the model's own settings (``options.embedder_kwargs``, the CLI's
    ``--model-option``) and its weights (their fingerprint), so the driver builds
    the model once, on its CPU, as the workers do (``options.plugins``, then
    ``options.embedder_factory`` or the registry with ``options.embedder_kwargs``).

    With ``skip_existing`` a file whose ``.npz`` is readable and made with the same
    settings and identity is not embedded again. Any other ``.npz`` is embedded
    again, with a warning that says why: a damaged one, one of other settings,
    one written before the identity was stored (it cannot be checked), and every
    one when the driver cannot build the model (a model registered on the workers
    only). ``on_result`` receives each ``(path, CachedEmbeddings)`` on the driver
    either way. ``audio_stream``: which audio stream of each file (None: the
    first; see :func:`~audio_embed.audio.stream_audio`).
    """
    from audio_embed._io import atomic_writer
    from audio_embed._media import path_list
    from audio_embed.bandwidth import SILENT_EMBEDDING, recording_silence_warning
    from audio_embed.batch import collect_inputs, output_paths

    inputs, missing = collect_inputs([str(i) for i in path_list(items, "embed_dataset")])
    report = DatasetReport()
    report.failed.extend(FileFailure(item, reason) for item, reason in missing)
    targets: dict[str, Path] = {}
    if out_dir is not None:
        named = output_paths(inputs, Path(out_dir), ".npz")
        targets = {str(p): t for p, t in named.items()}
    from audio_embed.audio import check_audio_stream

    settings = {
        "model": model,
        "window": float(window),
        "hop": float(hop),
        "encoding": encoding,
        "audio_stream": 0 if audio_stream is None else check_audio_stream(audio_stream),
    }
    runner = RayScanner.for_embedding(
        model,
        options,
        window=window,
        hop=hop,
        encoding=encoding,
        batch_size=batch_size,
        progress_bar=progress,
        audio_stream=audio_stream,
    )
    if targets:
        settings["embedder"] = _embedder_identity(runner)
    todo = []
    for inp in inputs:
        p = str(inp.path)
        if skip_existing and p in targets and _reusable(targets[p], settings):
            report.skipped.append(p)
            report.outputs[p] = targets[p]
        else:
            todo.append(p)
    started = time.monotonic()
    for path, entry in runner.sliding_embeddings_many(todo, cancel=cancel) if todo else ():
        if isinstance(entry, Exception):
            report.failed.append(FileFailure(path, str(entry)))
            log.warning("skipped %s: %s", path, entry)
            continue
        if path in targets:
            with atomic_writer(targets[path]) as fh:
                np.savez(
                    fh, **entry.arrays(), settings=np.array(json.dumps(settings, sort_keys=True))
                )
            report.outputs[path] = Path(targets[path])
        silent = recording_silence_warning(path, entry.peak, audio_stream, SILENT_EMBEDDING)
        if silent is not None:
            log.warning("%s", silent)
        report.done.append(path)
        report.audio_seconds += runner.seconds.get(path, 0.0)
        if on_result is not None:
            on_result(path, entry)
    report.wall_seconds = time.monotonic() - started
    return report


def _embedder_identity(runner: RayScanner) -> str | None:
    """The :meth:`~audio_embed.Embedder.cache_id` of the embedder ``runner``'s workers
    build, built here on the CPU by the workers' own code (``build_scanner``); None,
    with a warning, when the driver cannot build it. A setting the model does not take
    raises here, before Ray starts (every worker would fail on it)."""
    from audio_embed._ray_worker import build_scanner

    opts = runner.options
    job = {
        **runner.job,
        "embedder_kwargs": {k: v for k, v in opts.embedder_kwargs.items() if k != "device"},
        "embedder_factory": opts.embedder_factory,
        "plugins": list(opts.plugins),
        "cache_dir": None,
        "device": None,
    }
    try:
        return str(build_scanner(job).embedder.cache_id())
    except InvalidInputError:  # a setting it does not take, a checkpoint for no weights
        raise
    except Exception as exc:  # registered on the workers only, weights only they can read...
        log.warning(
            "Cannot build the %s model on this machine to name its settings and weights "
            "(%s): its .npz files are written without that identity, and existing ones "
            "cannot be checked, so they are embedded again. Register the model here too "
            "(load_plugin, RayOptions.plugins) to resume runs.",
            runner.job["model"],
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return None


def _reusable(path: Path, settings: dict[str, Any]) -> bool:
    """Whether ``path`` holds embeddings :func:`embed_dataset` wrote with ``settings``,
    its ``embedder`` identity included. Anything else is embedded again, with a warning
    that says why: a damaged file, one of another model, windows, audio stream, model
    settings or weights, and one whose identity cannot be compared (written before
    it was stored, or this driver could not build the model)."""
    from audio_embed.cache import ENTRY_ERRORS, read_entry

    if not path.exists():
        return False
    try:
        text = read_entry(path)[1]
        saved = None if text is None else json.loads(text)
    except ENTRY_ERRORS as exc:
        log.warning("%s is unreadable (%s); embedding its file again.", path, exc)
        return False
    if settings.get("embedder") is None:
        return False  # this driver cannot build the model: _embedder_identity warned
    if not isinstance(saved, dict) or saved.get("embedder") is None:
        when = (
            "by a run that could not build the model"
            if isinstance(saved, dict) and "embedder" in saved
            else "before embed_dataset stored it"
        )
        log.warning(
            "%s does not name the model's identity (its own settings and weights; written "
            "%s), so whether it matches this run cannot be checked; embedding its file again.",
            path,
            when,
        )
        return False
    if saved != settings:
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        why = ", ".join(f"{k} {saved.get(k)!r}, now {settings.get(k)!r}" for k in changed)
        if changed == ["embedder"]:
            why += " (the model's own settings or its weights differ)"
        log.warning("%s holds embeddings made with other settings: %s; embedding again.", path, why)
        return False
    return True


def _own_modules(scanner: Scanner) -> list[str]:
    """The modules Ray's workers import so that they load ``scanner``'s file with its own
    classes: a Scanner subclass whose ``window_features`` is its own, a Postprocessing
    subclass. A class of ``__main__`` or of a function cannot be imported there."""
    from audio_embed.detect import Postprocessing
    from audio_embed.scanner import Scanner

    method = type(scanner).window_features
    own: list[tuple[str, str, str]] = []
    if method is not Scanner.window_features:
        own.append((method.__module__, method.__qualname__, "its own window_features()"))
    for post in (scanner.postprocessing, scanner.scan_postprocessing):
        if type(post) is not Postprocessing:
            cls = type(post)
            own.append((cls.__module__, cls.__qualname__, f"post-processing {cls.__name__}"))
    for module, qualname, what in own:
        if module.split(".")[0] == "__main__" or "<locals>" in qualname:
            raise InvalidInputError(
                f"{type(scanner).__name__} has {what}, defined in "
                + ("the running script (__main__)" if module == "__main__" else "a function")
                + ", which Ray's workers cannot import, so they could not load the scanner "
                "with it: move the class to a module of its own (my_scanners.py), "
                "importable on the workers."
            )
    return list(dict.fromkeys(module for module, _, _ in own))

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

import contextlib
import logging
import os
import pickle
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from attrs import define, field, frozen

from audio_embed._ray_worker import ModelWorker, decode_row, describe
from audio_embed.errors import AudioEmbedError, InvalidInputError
from audio_embed.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:
    from audio_embed.batch import BatchReport, FileOutcome
    from audio_embed.cache import CachedEmbeddings
    from audio_embed.formats import OutputFormat
    from audio_embed.scanner import Scanner, ScanResult

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

Task = Literal["scan", "embed"]

#: Retries of a file whose worker process died (killed, out of memory, node lost)
#: before it is reported as failed; the worker itself is always restarted.
TASK_RETRIES = 3


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InvalidInputError(
            "Running on Ray needs the 'ray' package: pip install \"audio_embed[ray]\"."
        ) from exc
    return ray


@frozen
class FileFailure:
    """One input that produced no result, and why (one line)."""

    path: str
    reason: str


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


@frozen
class RayOptions:
    """Where and how wide to run.

    Args:
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``…);
            None: ``$RAY_ADDRESS`` when set, else a local Ray started for the run
            (and shut down after it). An already initialised Ray is used as is.
        workers: model actors; None: one per GPU, or one per CPU without GPUs.
        threads: torch threads per CPU actor; None: CPUs / workers (at least 1).
        gpus_per_worker: None: 1 when the cluster has GPUs, else 0.
        num_cpus: CPUs of a local Ray (None: all); ignored when joining a cluster.
        object_store_memory: bytes of a local Ray's object store (None: Ray's default).
        embedder_kwargs: passed to the embedder factory on each worker (e.g. a
            local ``checkpoint`` path every node can read, ``device``).
        embedder_factory: instead of the registry, a picklable module-level
            function ``() -> Embedder`` each worker calls once (a model with
            custom weights). It is pickled by reference, never a model.
    """

    address: str | None = None
    workers: int | None = None
    threads: int | None = None
    gpus_per_worker: float | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None
    embedder_kwargs: Mapping[str, Any] = field(factory=dict)
    embedder_factory: Callable[[], Any] | None = None


# ---------------------------------------------------------------------------- session


@contextlib.contextmanager
def ray_session(options: RayOptions | None = None) -> Iterator[None]:
    """Ray for the duration of the block.

    An initialised Ray is used as is and left running. Otherwise this joins
    ``options.address`` (or ``$RAY_ADDRESS``), or starts a local Ray without the
    dashboard and without worker logs on the driver's terminal, and shuts it
    down at the end (its session files under ``/tmp/ray`` are Ray's to clean).
    """
    ray = _require_ray()
    opts = options or RayOptions()
    if ray.is_initialized():
        yield
        return
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    address = opts.address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(
            num_cpus=opts.num_cpus,
            object_store_memory=opts.object_store_memory,
            **common,
        )
    try:
        yield
    finally:
        ray.shutdown()


def _plan(opts: RayOptions) -> dict[str, Any]:
    """Actor count and resources from the cluster's resources."""
    ray = _require_ray()
    res = ray.cluster_resources()
    cpus = float(res.get("CPU", 1.0))
    gpus = float(res.get("GPU", 0.0))
    per_gpu = opts.gpus_per_worker if opts.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if opts.workers is not None and opts.workers < 1:
        raise InvalidInputError(f"The 'workers' must be >= 1. Got {opts.workers} instead.")
    if per_gpu > 0:
        workers = opts.workers or max(1, int(gpus // per_gpu))
        return {
            "workers": workers,
            "actor": {"num_gpus": per_gpu, "num_cpus": 1.0},
            "decode_cpus": 1.0,
            "threads": opts.threads or 1,
            "device": "cuda",
        }
    workers = opts.workers or max(1, int(cpus))
    # Leave half a CPU to the decode tasks so they can always be scheduled.
    decode_cpus = 0.5 if cpus > 0.5 else cpus / 2
    actor_cpus = min(1.0, (cpus - decode_cpus) / workers)
    threads = opts.threads or max(1, int(cpus) // workers)
    return {
        "workers": workers,
        "actor": {"num_cpus": actor_cpus},
        "decode_cpus": decode_cpus,
        "threads": threads,
        "device": None,
    }


class _Bar:
    """One tqdm bar over files, with the audio hours done and the speed as postfix."""

    def __init__(self, total: int, desc: str, enabled: bool | None) -> None:
        from tqdm.auto import tqdm

        self.start = time.monotonic()
        self.seconds = 0.0
        disable = not sys.stderr.isatty() if enabled is None else not enabled
        self.bar = tqdm(total=total, desc=desc, unit="file", disable=disable)

    def update(self, seconds: float) -> None:
        self.seconds += seconds
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix_str(
            f"{self.seconds / 3600:.2f} h audio, {self.seconds / elapsed:.0f}× real time",
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _root_reason(exc: BaseException) -> str:
    """The original error inside a Ray error (whose text holds the worker's traceback):
    its last ``SomeError: message`` line, else the first line."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    for line in reversed(lines[1:]):
        if _ERROR_LINE.match(line):
            return line
    return describe(exc)


@contextlib.contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """Ray Data settings for our runs, restored afterwards."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.max_errored_blocks)
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    ctx.enable_progress_bars = False  # ours is the one bar
    ctx.print_on_execution_start = False
    # A file whose worker died more than TASK_RETRIES times must not stop the others.
    ctx.max_errored_blocks = -1
    data_log.setLevel(logging.ERROR)  # "execution finished", "progress bars disabled"
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.max_errored_blocks = saved
        data_log.setLevel(level)


def _dataset(ray: Any, job: dict[str, Any], opts: RayOptions, items: list[dict[str, Any]]) -> Any:
    """The pipeline: one row per file, decoded in CPU tasks, scored in the actor pool."""
    plan = _plan(opts)
    full = {
        **job,
        "threads": plan["threads"],
        "device": plan["device"],
        "embedder_kwargs": dict(opts.embedder_kwargs),
        "embedder_factory": opts.embedder_factory,
    }
    if job.get("scanner_bytes") is not None:
        # By reference: small actor arguments are inlined, so a restarted actor
        # never depends on a lost argument object (the driver holds this one).
        full["scanner_bytes"] = ray.put(job["scanner_bytes"])
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map(
        decode_row,
        fn_kwargs={"sample_rate": int(job["sample_rate"])},
        num_cpus=plan["decode_cpus"],
    )
    with warnings.catch_warnings():
        # Ray Data has no named parameter for the retries of an actor's tasks yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        return ds.map(
            ModelWorker,
            fn_constructor_kwargs={"job": full},
            compute=ray.data.ActorPoolStrategy(size=plan["workers"]),
            max_restarts=-1,  # a lost actor is always replaced (Ray Data's default) ...
            max_task_retries=TASK_RETRIES,  # ... but a file that kills it is given up
            **plan["actor"],
        )


def _run_on_ray(
    job: dict[str, Any],
    paths: Sequence[str | os.PathLike[str]],
    *,
    options: RayOptions | None = None,
    progress: bool | None = None,
    cancel: CancelToken | None = None,
    desc: str = "ray",
) -> Iterator[tuple[str, Any, float]]:
    """Run ``job`` over ``paths`` on Ray; yields ``(path, result | FileFailure, seconds)``
    as files finish (in no particular order). Starts (or joins) Ray for the iteration."""
    ray = _require_ray()
    opts = options or RayOptions()
    items: list[dict[str, Any]] = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    if not items:
        return
    with ray_session(opts), _data_context(ray):
        ds = _dataset(ray, job, opts, items)
        bar = _Bar(len(items), desc, progress)
        seen: set[str] = set()
        reason = (
            f"its worker process died {TASK_RETRIES + 1} times while processing it "
            "(out of memory? a crash in a decoder or the model?)"
        )
        try:
            try:
                for row in ds.iter_rows():
                    if cancel is not None:
                        cancel.check()
                    seconds = float(row["seconds"])
                    bar.update(seconds)
                    path = str(row["path"])
                    seen.add(path)
                    if row["error"]:
                        yield path, FileFailure(path, str(row["error"])), seconds
                    else:
                        yield path, pickle.loads(row["payload"]), seconds
            except AudioEmbedError:  # a cancellation
                raise
            except Exception as exc:  # the run itself broke (workers cannot start…)
                if cancel is not None:  # Ctrl-C also reaches Ray's processes: a cancel
                    cancel.check()
                log.info("The Ray run failed", exc_info=exc)
                reason = f"the Ray run failed: {_root_reason(exc)}"
            for lost in (str(item["path"]) for item in items if item["path"] not in seen):
                # Ray gave up on this row (its worker died on every try) or on the run.
                bar.update(0.0)
                yield lost, FileFailure(lost, reason), 0.0
        finally:
            bar.close()


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
    ) -> RayScanner:
        """Ship a trained :class:`Scanner` (or the path of a saved one) as its file's bytes.

        ``load_kwargs`` go to :meth:`Scanner.load` on each worker.
        """
        from audio_embed.scanner import Scanner

        if isinstance(scanner, Scanner):
            with tempfile.TemporaryDirectory(prefix="audio_embed-") as tmp:
                data = scanner.save(Path(tmp) / "job.scanner").read_bytes()
            sample_rate = int(scanner.embedder.sample_rate)
        else:
            path = Path(os.fspath(scanner))
            Scanner.read_metadata(path)  # a missing or damaged file fails here, not on Ray
            data, sample_rate = path.read_bytes(), 16000
        job: dict[str, Any] = {
            "scanner_bytes": data,
            "load_kwargs": dict(load_kwargs or {}),
            "sample_rate": sample_rate,
        }
        return cls(job, options, ordered=ordered, progress_bar=progress_bar)

    @classmethod
    def for_embedding(
        cls,
        model: str,
        options: RayOptions | None = None,
        *,
        window: float = 8.0,
        hop: float = 1.0,
        encoding: str = "shared",
        batch_size: int | None = None,
        ordered: bool = False,
        progress_bar: bool | None = None,
    ) -> RayScanner:
        """Sliding-window embeddings with the registered embedder ``model`` (no classifier)."""
        from audio_embed.windows import SlidingWindows

        SlidingWindows(window, hop, encoding)  # type: ignore[arg-type]  # validates here
        job = {
            "scanner_bytes": None,
            "model": model,
            "windows": {"window": window, "hop": hop, "encoding": encoding},
            "batch_size": batch_size,
            "load_kwargs": {},
            "sample_rate": 16000,
        }
        return cls(job, options, ordered=ordered, progress_bar=progress_bar)

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
) -> tuple[dict[str, ScanResult], list[FileFailure]]:
    """Scan ``inputs`` on Ray; returns ``{path: ScanResult}`` (in input order) and the failures.

    ``scanner`` is a trained :class:`Scanner` or the path of a saved one.
    """
    runner = RayScanner.from_scanner(
        scanner, options, load_kwargs=load_kwargs, ordered=True, progress_bar=progress
    )
    got: dict[str, ScanResult] = {}
    failed: list[FileFailure] = []
    for path, result in runner.scan_many(inputs, cancel=cancel):
        if isinstance(result, Exception):
            failed.append(FileFailure(path, str(result)))
        else:
            got[path] = result
    return got, failed


@frozen
class _SavedThreshold:
    """Stands in for a scanner on the driver when only its file was given: the driver
    needs the default threshold, never the model (the workers build it)."""

    threshold: float


def scan_dataset(
    scanner: Scanner | str | os.PathLike[str],
    items: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    fmt: OutputFormat = "csv",
    label: str = "target",
    threshold: float | None = None,
    skip_existing: bool = False,
    keep_results: bool = False,
    options: RayOptions | None = None,
    progress: bool | None = None,
    cancel: CancelToken | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
) -> BatchReport:
    """:func:`audio_embed.batch.scan_to_folder` on Ray: the same inputs, output
    names, per-file result files, combined CSV, ``skip_existing`` and
    :class:`~audio_embed.batch.BatchReport` as a local scan, with the scanning
    done by :class:`RayScanner`.

    ``scanner``: a trained :class:`Scanner`, or the path of a saved one (then
    the model is built on the workers only). Each result file is written
    atomically by the driver as its file finishes; with ``skip_existing`` an
    input whose result exists is never sent to Ray.
    """
    from audio_embed.batch import scan_to_folder
    from audio_embed.scanner import Scanner

    runner = RayScanner.from_scanner(
        scanner, options, load_kwargs=load_kwargs, progress_bar=progress
    )
    if isinstance(scanner, Scanner):
        local: Any = scanner
    else:
        local = _SavedThreshold(float(Scanner.read_metadata(scanner)["threshold"]))
    return scan_to_folder(
        local,
        items,
        out_dir,
        fmt=fmt,
        label=label,
        threshold=threshold,
        skip_existing=skip_existing,
        keep_results=keep_results,
        cancel=cancel,
        on_file=on_file,
        many=runner.scan_many,
    )


def embed_dataset(
    model: str,
    items: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    window: float = 8.0,
    hop: float = 1.0,
    encoding: str = "shared",
    batch_size: int | None = None,
    skip_existing: bool = False,
    options: RayOptions | None = None,
    progress: bool | None = None,
    cancel: CancelToken | None = None,
    on_result: Callable[[str, Any], None] | None = None,
) -> DatasetReport:
    """Sliding-window embeddings of files and folders (as :func:`~audio_embed.batch.collect_inputs`
    finds them) with the registered embedder ``model``, on Ray.

    With ``out_dir``, each file's embeddings are written atomically to
    ``out_dir/<relative folder>/<stem>.npz`` (named as scan results are; arrays
    ``starts``, ``embeddings``, ``duration`` as the embedding cache stores
    them); ``on_result`` receives each
    ``(path, CachedEmbeddings)`` on the driver either way.
    """
    from audio_embed._io import atomic_writer
    from audio_embed.batch import collect_inputs, output_paths

    inputs, missing = collect_inputs([str(i) for i in items])
    report = DatasetReport()
    report.failed.extend(FileFailure(item, reason) for item, reason in missing)
    targets: dict[str, Path] = {}
    if out_dir is not None:
        named = output_paths(inputs, Path(out_dir), ".npz")
        targets = {str(p): t for p, t in named.items()}
    todo = []
    for inp in inputs:
        p = str(inp.path)
        if skip_existing and p in targets and targets[p].exists():
            report.skipped.append(p)
            report.outputs[p] = targets[p]
        else:
            todo.append(p)
    runner = RayScanner.for_embedding(
        model,
        options,
        window=window,
        hop=hop,
        encoding=encoding,
        batch_size=batch_size,
        progress_bar=progress,
    )
    started = time.monotonic()
    for path, entry in runner.sliding_embeddings_many(todo, cancel=cancel) if todo else ():
        if isinstance(entry, Exception):
            report.failed.append(FileFailure(path, str(entry)))
            log.warning("skipped %s: %s", path, entry)
            continue
        if path in targets:
            with atomic_writer(targets[path]) as fh:
                np.savez(
                    fh,
                    starts=entry.starts,
                    embeddings=entry.embeddings,
                    duration=np.float64(entry.duration),
                )
            report.outputs[path] = Path(targets[path])
        report.done.append(path)
        report.audio_seconds += runner.seconds.get(path, 0.0)
        if on_result is not None:
            on_result(path, entry)
    report.wall_seconds = time.monotonic() - started
    return report

"""The Ray side of :mod:`audio_embed.distributed`: options, the session, the
Ray Data pipeline over the input files and the run that yields each file's
result as it finishes. The public names are re-exported by
:mod:`audio_embed.distributed`."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from attrs import field, frozen

from audio_embed._ray_worker import ModelWorker, decode_row, describe
from audio_embed.errors import AudioEmbedError, InvalidInputError
from audio_embed.progress import CancelToken

if TYPE_CHECKING:
    pass

log = logging.getLogger("audio_embed.distributed")

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


def _at_least_one(obj: object, attribute: Any, value: int | None) -> None:
    if value is not None and value < 1:
        raise InvalidInputError(
            f"The '{attribute.name}' of {type(obj).__name__} must be >= 1. Got {value} instead."
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
        cache_dir: an embedding-cache folder that every node reads and writes
            at this path (a shared file system): workers take a file's
            embeddings from it instead of running the model, and store the ones
            they compute, as a local scan with an
            :class:`~audio_embed.cache.EmbeddingCache` does. None: no cache.
        plugins: modules each worker loads (:func:`~audio_embed.registry.load_plugin`)
            before building its model: the ``--plugin`` of a model registered by
            your own module, which every node must be able to import.
    """

    address: str | None = None
    workers: int | None = field(default=None, validator=_at_least_one)
    threads: int | None = field(default=None, validator=_at_least_one)
    gpus_per_worker: float | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None
    embedder_kwargs: Mapping[str, Any] = field(factory=dict)
    embedder_factory: Callable[[], Any] | None = None
    cache_dir: str | os.PathLike[str] | None = None
    plugins: tuple[str, ...] = field(default=(), converter=tuple)


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


def _plan(opts: RayOptions, n_files: int) -> dict[str, Any]:
    """Actor count and resources from the cluster's resources.

    Never more actors than files (each one starts a process that imports torch and
    builds the model). On CPUs, one decode task per actor at a time: decoding is
    hundreds of times faster than the model there, and every extra task process
    costs its own start. On GPUs decoding is the bound, so it uses every free CPU.
    """
    ray = _require_ray()
    res = ray.cluster_resources()
    cpus = float(res.get("CPU", 1.0))
    gpus = float(res.get("GPU", 0.0))
    per_gpu = opts.gpus_per_worker if opts.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if per_gpu > 0:
        workers = opts.workers or max(1, int(gpus // per_gpu))
        return {
            "workers": max(1, min(workers, n_files)),
            "actor": {"num_gpus": per_gpu, "num_cpus": 1.0},
            "decode_cpus": 1.0,
            "decode_tasks": None,
            "threads": opts.threads or 1,
            "device": "cuda",
        }
    workers = opts.workers or max(1, int(cpus))
    # Leave half a CPU to the decode tasks so they can always be scheduled.
    decode_cpus = 0.5 if cpus > 0.5 else cpus / 2
    actor_cpus = min(1.0, (cpus - decode_cpus) / workers)
    threads = opts.threads or max(1, int(cpus) // workers)
    return {
        "workers": max(1, min(workers, n_files)),
        "actor": {"num_cpus": actor_cpus},
        "decode_cpus": decode_cpus,
        "decode_tasks": max(1, min(workers, n_files)),
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
    saved = (
        ctx.enable_progress_bars,
        ctx.print_on_execution_start,
        ctx.max_errored_blocks,
        ctx.memory_usage_poll_interval_s,
    )
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    ctx.enable_progress_bars = False  # ours is the one bar
    ctx.print_on_execution_start = False
    # A file whose worker died more than TASK_RETRIES times must not stop the others.
    ctx.max_errored_blocks = -1
    # Ray Data's per-second memory poll of every task and actor reads /proc/<pid>/smaps
    # (slow for a process holding torch): CPU that scales with run time, for a statistic.
    ctx.memory_usage_poll_interval_s = None
    data_log.setLevel(logging.ERROR)  # "execution finished", "progress bars disabled"
    try:
        yield
    finally:
        (
            ctx.enable_progress_bars,
            ctx.print_on_execution_start,
            ctx.max_errored_blocks,
            ctx.memory_usage_poll_interval_s,
        ) = saved
        data_log.setLevel(level)


def _dataset(ray: Any, job: dict[str, Any], opts: RayOptions, items: list[dict[str, Any]]) -> Any:
    """The pipeline: one row per file, decoded in CPU tasks, scored in the actor pool."""
    plan = _plan(opts, len(items))
    full = {
        **job,
        "threads": plan["threads"],
        "device": plan["device"],
        "embedder_kwargs": dict(opts.embedder_kwargs),
        "embedder_factory": opts.embedder_factory,
        "plugins": list(opts.plugins),
        "cache_dir": None if opts.cache_dir is None else os.fspath(opts.cache_dir),
    }
    if job.get("scanner_bytes") is not None:
        # By reference: small actor arguments are inlined, so a restarted actor
        # never depends on a lost argument object (the driver holds this one).
        full["scanner_bytes"] = ray.put(job["scanner_bytes"])
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map(
        decode_row,
        fn_kwargs={"sample_rate": int(job["sample_rate"]), "audio_stream": job.get("audio_stream")},
        compute=ray.data.TaskPoolStrategy(size=plan["decode_tasks"]),
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
        rows = iter(ds.iter_rows())
        try:
            try:
                for row in rows:
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
            # Stop Ray Data's executor and its actors now, whether the run ended,
            # failed, was cancelled or was interrupted (Ctrl-C), rather than when the
            # iterator is garbage-collected; then ray_session shuts a local Ray down.
            close = getattr(rows, "close", None)
            if close is not None:
                close()
            bar.close()

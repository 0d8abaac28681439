"""The ``audio-embed`` command: a thin shell over the library.

Subcommands::

    audio-embed models [PATTERN]                      the embedders and their weights
    audio-embed embed FILES... --model M --out E.npz  sliding-window embeddings
    audio-embed train --markers M.csv --model M --out S.scanner
    audio-embed scan S.scanner FILES_OR_DIRS... --out DIR
    audio-embed evaluate S.scanner --labels L.csv --target LABEL
    audio-embed demo [DIR]                            the whole workflow on synthetic data

Exit codes: 0 success, 1 a failure (a file that could not be read, bad markers,
a damaged scanner…), 2 a usage error (bad option, unknown model), 130 cancelled
with Ctrl-C. Errors are one line, ``audio-embed: error: …``; ``--verbose``
adds the traceback.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import attrs
import numpy as np

from audio_embed._io import atomic_writer
from audio_embed.errors import (
    AudioEmbedError,
    Cancelled,
    InvalidInputError,
    MarkerError,
    ScannerFileError,
    UnknownEmbedderError,
)
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent

T = TypeVar("T")

if TYPE_CHECKING:  # the heavy modules are imported by the commands that need them
    from audio_embed.cache import EmbeddingCache
    from audio_embed.embedders.base import Embedder
    from audio_embed.evaluate import LabelledEvent
    from audio_embed.scanner import Detection, Scanner, ScanResult
    from audio_embed.windows import Markers

__all__ = ["build_parser", "main"]

PROG = "audio-embed"
COMBINED_CSV = "detections.csv"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130

log = logging.getLogger("audio_embed.cli")


class UsageError(AudioEmbedError):
    """A command line that cannot work as given (exit code 2)."""


# ---------------------------------------------------------------------------- runtime


@attrs.define
class Run:
    """What every command gets: its arguments, the cancel token, progress settings."""

    args: argparse.Namespace
    cancel: CancelToken
    show_progress: bool
    out: TextIO
    indent: str = ""

    def echo(self, text: str = "") -> None:
        if self.indent and text:
            text = "\n".join(self.indent + line for line in text.split("\n"))
        if self.show_progress:  # above the progress bars, which are redrawn below
            from tqdm import tqdm

            tqdm.write(text, file=self.out)
            self.out.flush()
        else:
            print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        _write_stderr(f"{PROG}: {text}")

    def file_bar(self, total: int, desc: str) -> Any:
        """An outer bar over files (a no-op object when progress is off)."""
        if not self.show_progress:
            return _NullBar()
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)

    @contextmanager
    def seconds_bar(self, path: Path, stage: str) -> Iterator[ProgressCallback | None]:
        """A bar over the seconds of one file, fed by the library's ProgressEvents."""
        if not self.show_progress:
            yield None
            return
        from tqdm import tqdm

        from audio_embed.audio import probe_audio

        try:
            total = probe_audio(path).duration
        except (AudioEmbedError, OSError):
            total = None
        bar = tqdm(
            total=round(total, 1) if total else None,
            desc=f"{stage} {path.name}",
            unit="s",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]"
            if total
            else None,
        )

        def callback(event: ProgressEvent) -> None:
            if event.stage == "embed":
                done = float(event.done) if total is None else min(float(event.done), total)
                bar.update(done - bar.n)

        try:
            yield callback
        finally:
            bar.close()


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


_bars_active = threading.local()


def _write_stderr(text: str) -> None:
    if getattr(_bars_active, "on", False):
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"
            if record.exc_info:
                msg += "\n" + "".join(traceback.format_exception(*record.exc_info))
            _write_stderr(msg)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Run]:
    """Logging, progress, thread limits and a SIGINT handler for one command."""
    quiet = bool(getattr(args, "quiet", False))
    verbose = bool(getattr(args, "verbose", False))
    show = not quiet and sys.stderr.isatty()
    _bars_active.on = show
    lib_logger = logging.getLogger("audio_embed")
    handler = _StderrHandler()
    old_level, old_propagate = lib_logger.level, lib_logger.propagate
    lib_logger.addHandler(handler)
    lib_logger.setLevel(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)
    lib_logger.propagate = False
    token = CancelToken()
    old_sigint: Any = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:

        def on_sigint(signum: int, frame: object) -> None:
            if token.cancelled:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            token.cancel()
            _write_stderr(f"{PROG}: stopping… (press Ctrl-C again to stop at once)")

        old_sigint = signal.signal(signal.SIGINT, on_sigint)
    threads = getattr(args, "threads", None)
    limiter: Any = None
    old_torch_threads: int | None = None
    if threads:
        import torch
        from threadpoolctl import threadpool_limits

        old_torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        limiter = threadpool_limits(limits=threads)
    try:
        yield Run(args=args, cancel=token, show_progress=show, out=sys.stdout)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if old_torch_threads is not None:
            import torch

            torch.set_num_threads(old_torch_threads)
        if in_main:
            signal.signal(signal.SIGINT, old_sigint)
        lib_logger.removeHandler(handler)
        lib_logger.setLevel(old_level)
        lib_logger.propagate = old_propagate
        _bars_active.on = False


# ---------------------------------------------------------------------------- helpers


def _embedder_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if getattr(args, "device", None):
        kwargs["device"] = args.device
    if getattr(args, "checkpoint", None):
        kwargs["checkpoint"] = args.checkpoint
    return kwargs


def _create_embedder(name: str, args: argparse.Namespace) -> Embedder:
    from audio_embed.registry import create_embedder, get_spec

    spec = get_spec(name)  # UnknownEmbedderError with close matches
    kwargs = _embedder_kwargs(args)
    try:
        return create_embedder(spec.name, **kwargs)
    except TypeError as exc:
        if not kwargs:
            raise
        raise UsageError(
            f"The {spec.name} embedder does not accept "
            f"{' / '.join('--' + k for k in kwargs)} ({exc})."
        ) from exc


def _cache(args: argparse.Namespace) -> EmbeddingCache | None:
    if getattr(args, "no_cache", False):
        return None
    from audio_embed.cache import EmbeddingCache

    return EmbeddingCache(getattr(args, "cache_dir", None))


def _load_scanner(run: Run, *, cache: EmbeddingCache | None) -> tuple[Scanner, str]:
    """The scanner named on the command line, and a label for it (for output text)."""
    from audio_embed.scanner import Scanner
    from audio_embed.store import ScannerStore

    args = run.args
    if args.store is not None:
        if not args.profile:
            raise UsageError("--store needs --profile NAME (and usually --model M).")
        store = ScannerStore(args.store)
        model = args.model
        if model is None:
            stored = [s for s in store.list() if s.profile == args.profile]
            if len(stored) != 1:
                have = ", ".join(s.embedder for s in stored) or "none"
                raise UsageError(
                    f"Name the model of profile {args.profile!r} with --model "
                    f"(stored for it: {have})."
                )
            model = stored[0].embedder
        from audio_embed.registry import get_spec

        model = get_spec(model).name
        scanner = store.load(
            args.profile, model, cache=cache, embedder_kwargs=_embedder_kwargs(args) or None
        )
        return scanner, str(store.path(args.profile, model))
    if args.scanner is None:
        raise UsageError("Name a scanner file, or use --store DIR --profile NAME.")
    path = Path(args.scanner)
    if not path.is_file():  # before building a model for it
        raise ScannerFileError(f"Scanner file not found: {path}")
    embedder = _create_embedder(args.model, args) if args.model else None
    scanner = Scanner.load(
        path, embedder=embedder, cache=cache, embedder_kwargs=_embedder_kwargs(args) or None
    )
    return scanner, str(path)


def _apply_overrides(scanner: Scanner, args: argparse.Namespace) -> None:
    if getattr(args, "batch_size", None):
        scanner.batch_size = args.batch_size


@attrs.frozen
class Input:
    """One file to process: its path and its name relative to the --out folder."""

    path: Path
    rel: Path


def _collect_inputs(items: Sequence[str]) -> tuple[list[Input], list[tuple[str, str]]]:
    """Files as given, and media files found recursively in directories.

    Returns the inputs and ``(item, reason)`` for arguments that name nothing.
    Hidden files and folders (a leading dot) are skipped inside directories.
    """
    from audio_embed.audio import is_media_file

    found: list[Input] = []
    missing: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(Input(path, rel))

    for item in items:
        p = Path(item)
        if p.is_dir():
            hits = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and is_media_file(name):
                        hits.append(Path(root) / name)
            if not hits:
                missing.append((item, "no audio or video files in this folder"))
            for f in hits:
                add(f, f.relative_to(p))
        elif p.exists():
            add(p, Path(p.name))
        else:
            missing.append((item, "no such file or directory"))
    return found, missing


def _output_paths(
    inputs: Sequence[Input], out_dir: Path, suffix: str, reserved: Sequence[str] = ()
) -> dict[Path, Path]:
    """``out_dir/<relative folder>/<stem><suffix>`` per input, unique.

    When two inputs share a stem (``a.wav`` and ``a.mp4``), both use their full
    name (``a.wav.csv``, ``a.mp4.csv``), and a number is added if still needed.
    """

    def safe(rel: Path) -> Path:  # never write outside out_dir
        return Path(rel.name) if rel.is_absolute() or ".." in rel.parts else rel

    inputs = [Input(inp.path, safe(inp.rel)) for inp in inputs]
    stems: dict[Path, int] = defaultdict(int)
    for inp in inputs:
        stems[inp.rel.parent / (inp.rel.stem + suffix)] += 1
    taken = {Path(r) for r in reserved}
    out: dict[Path, Path] = {}
    for inp in inputs:
        rel = inp.rel.parent / (inp.rel.stem + suffix)
        if stems[rel] > 1 or rel in taken:
            rel = inp.rel.parent / (inp.rel.name + suffix)
        base, n = rel, 2
        while rel in taken:
            rel = base.parent / f"{base.name[: -len(suffix)]}-{n}{suffix}"
            n += 1
        taken.add(rel)
        out[inp.path] = out_dir / rel
    return out


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, AudioEmbedError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, AudioEmbedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _each(
    run: Run,
    inputs: Sequence[Input],
    many: Callable[..., Iterator[tuple[str, T | AudioEmbedError]]],
    desc: str,
) -> Iterator[tuple[Input, T | None, str | None]]:
    """Run ``many`` (``Scanner.scan_many`` or ``Scanner.sliding_embeddings_many``)
    over every input; yields ``(input, result, None)`` or ``(input, None, reason)``.

    ``many`` decodes the next file in the background while the current one is
    embedded. A file that fails is reported on stderr and skipped, and the
    others go on (an unexpected error stops ``many``, which is restarted after
    the file it was working on); Ctrl-C stops everything.
    """
    progress = _Progress(run, len(inputs), desc)
    remaining = list(inputs)
    try:
        while remaining:
            try:
                for _path, result in many(
                    [inp.path for inp in remaining],
                    progress=progress if run.show_progress else None,
                    cancel=run.cancel,
                ):
                    inp = remaining.pop(0)
                    progress.file_done()
                    if isinstance(result, Exception):
                        yield inp, None, _skip(run, inp, result, desc)
                    else:
                        yield inp, result, None
            except Cancelled:
                raise
            except Exception as exc:  # a bad file must not lose the others' work
                inp = remaining.pop(0)
                progress.file_done()
                yield inp, None, _skip(run, inp, exc, desc)
    finally:
        progress.close()


def _skip(run: Run, inp: Input, exc: BaseException, desc: str) -> str:
    reason = _describe_error(exc)
    log.info("%s %s failed", desc.capitalize(), inp.path, exc_info=exc)
    run.warn(f"skipped {inp.path}: {reason}")
    return reason


# ---------------------------------------------------------------------------- models


def _cmd_models(run: Run) -> int:
    from audio_embed.registry import get_spec, list_embedders

    names = list_embedders(run.args.pattern)
    if not names:
        run.warn(f"no embedder matches {run.args.pattern!r}; try `{PROG} models` for all.")
        return EXIT_FAILURE
    rows = []
    for name in names:
        spec = get_spec(name)
        # a multi-layer variant shows the blocks it concatenates
        layers = ",".join(map(str, spec.layers)) if spec.layers else spec.num_layers
        rows.append(
            {
                "name": spec.name,
                "dim": spec.dim,
                "layers": layers,
                "available": spec.available(),
                "license": spec.license,
                "source": spec.source,
                "description": spec.description,
            }
        )
    if run.args.json:
        run.echo(json.dumps(rows, indent=2))
        return 0
    table = [["NAME", "DIM", "LAYERS", "WEIGHTS", "LICENCE", "SOURCE"]]
    for r in rows:
        table.append(
            [
                str(r["name"]),
                str(r["dim"]),
                str(r["layers"] or "-"),
                "yes" if r["available"] else "download",
                str(r["license"]),
                str(r["source"]),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = [
            c.rjust(w) if i in (1, 2) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        run.echo("  ".join(cells).rstrip())
    run.echo()
    run.echo(
        "WEIGHTS: 'yes' = usable now without a network; 'download' = fetched on first use "
        "(or pass --checkpoint PATH)."
    )
    return 0


# ---------------------------------------------------------------------------- embed


def _cmd_embed(run: Run) -> int:
    from audio_embed.scanner import Scanner
    from audio_embed.windows import SlidingWindows, TargetedWindows

    args = run.args
    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out must name a .npz file. Got {args.out!r}.")
    embedder = _create_embedder(args.model, args)
    scanner = Scanner(
        embedder,
        scan_windows=SlidingWindows(args.window, args.hop, args.encoding),
        train_windows=TargetedWindows(args.window),
        cache=_cache(args),
        batch_size=args.batch_size,
    )
    inputs, missing = _collect_inputs(args.files)
    failed = [item for item, _ in missing]
    for item, reason in missing:
        run.warn(f"skipped {item}: {reason}")
    arrays: dict[str, Any] = {}
    files: list[str] = []
    for inp, entry, _reason in _each(run, inputs, scanner.sliding_embeddings_many, "embed"):
        if entry is None:
            failed.append(str(inp.path))
            continue
        i = len(files)
        files.append(str(inp.path))
        arrays[f"{i}/starts"] = np.asarray(entry.starts, dtype=np.float64)
        arrays[f"{i}/embeddings"] = np.asarray(entry.embeddings, dtype=np.float32)
        arrays[f"{i}/duration"] = np.float64(entry.duration)
        run.echo(
            f"{inp.path}: {len(entry.starts)} windows × {entry.embeddings.shape[1]} "
            f"({entry.duration:.1f} s)"
        )
    run.cancel.check()
    if not files:
        raise AudioEmbedError("No file could be embedded; nothing was written.")
    arrays.update(
        files=np.array(files, dtype=str),
        model=np.array(embedder.name),
        window=np.float64(args.window),
        hop=np.float64(args.hop),
    )
    with atomic_writer(out) as fh:
        np.savez(fh, **arrays)
    run.echo(f"Wrote {len(files)} file(s) to {out} (keys: files, <i>/starts, <i>/embeddings).")
    if failed:
        run.warn(f"{len(failed)} of {len(failed) + len(files)} input(s) failed.")
        return EXIT_FAILURE
    return 0


# ---------------------------------------------------------------------------- train


def _guess_marker_format(path: Path) -> str:
    if path.suffix.lower() == ".csv":
        return "csv"
    try:
        with path.open(encoding="utf-8-sig") as fh:
            head = fh.readline()
    except OSError as exc:
        raise MarkerError(f"Cannot read markers file {path}: {_describe_error(exc)}") from exc
    return "raven" if "Begin Time (s)" in head else "audacity"


def _audio_next_to(labels: Path) -> Path:
    """The media file beside ``labels`` whose stem starts its name (``rec.wav`` for
    ``rec.txt``, ``rec.selections.txt`` or ``rec.Table.1.selections.txt``)."""
    from audio_embed.audio import is_media_file

    folder = labels.parent
    try:
        candidates = [
            p
            for p in folder.iterdir()
            if p.is_file() and is_media_file(p) and labels.name.startswith(p.stem + ".")
        ]
    except OSError:
        candidates = []
    if candidates:
        longest = max(len(p.stem) for p in candidates)
        candidates = [p for p in candidates if len(p.stem) == longest]
    if len(candidates) != 1:
        found = ", ".join(p.name for p in sorted(candidates)) or "none"
        raise MarkerError(
            f"{labels}: cannot tell which recording these labels mark (audio files beside it "
            f"named like it: {found}). Put the label file next to its recording with the same "
            "stem (rec.wav + rec.txt), or name the recording with --audio FILE right after "
            "this --markers."
        )
    return candidates[0]


class _MarkersAction(argparse.Action):
    """``--markers FILE``: appends ``[FILE, None]``; a following ``--audio`` fills the None."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        specs = list(getattr(namespace, self.dest, None) or [])
        specs.append([values, None])
        setattr(namespace, self.dest, specs)


class _AudioAction(argparse.Action):
    """``--audio FILE``: the recording marked by the ``--markers`` just before it."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        specs: Any = getattr(namespace, "markers", None)
        if not specs or specs[-1][1] is not None:
            parser.error("--audio must follow the --markers label file it belongs to")
        specs[-1][1] = values


def _read_marker_files(args: argparse.Namespace) -> dict[str, Markers]:
    from audio_embed.formats import read_audacity_labels, read_markers, read_raven_table
    from audio_embed.windows import MARKER_KINDS, Markers

    specs = [(Path(m), Path(a) if a else None) for m, a in args.markers]
    files = [m for m, _ in specs]
    for path in files:
        if not path.is_file():
            raise MarkerError(f"Markers file not found: {path}")
    kinds = [
        args.markers_format if args.markers_format != "auto" else _guess_marker_format(f)
        for f in files
    ]
    for (path, audio), kind in zip(specs, kinds, strict=True):
        if audio is not None and kind == "csv":
            raise UsageError(
                f"--audio {audio} follows {path}, a markers CSV, which names its recordings "
                "itself; --audio belongs after an Audacity or Raven label file."
            )
    pairs = {m: a for m, a in specs if a is not None}
    merged: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path, kind in zip(files, kinds, strict=True):
        if kind == "csv":
            read = read_markers(path)
        else:
            rec = pairs.get(path) or _audio_next_to(path)
            reader = read_audacity_labels if kind == "audacity" else read_raven_table
            read = reader(path, str(rec))
        for file, m in read.items():
            for k in MARKER_KINDS:
                merged[file][k].extend(getattr(m, k))
    if not merged:
        raise MarkerError(f"No markers in {', '.join(map(str, files))}.")
    missing = [f for f in merged if not Path(f).is_file()]
    if missing:
        raise MarkerError(
            "The markers name recordings that do not exist: "
            + ", ".join(missing[:5])
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + " (relative names are read from the markers file's folder)."
        )
    return {f: Markers(**{k: tuple(v) for k, v in kinds_.items()}) for f, kinds_ in merged.items()}


def _train_windows(args: argparse.Namespace) -> Any:
    from audio_embed.windows import TargetedWindows

    if args.labelling == "targeted":
        tw = TargetedWindows.original(args.window)
    else:
        tw = TargetedWindows(args.window, hop=args.hop)
    changes: dict[str, Any] = {}
    if args.tolerance is not None:
        changes["tolerance"] = args.tolerance
    if args.neg_margin is not None:
        changes["neg_margin"] = args.neg_margin
    if args.neg_stride is not None:
        changes["neg_stride"] = args.neg_stride
    return attrs.evolve(tw, **changes) if changes else tw


class _Progress:
    """Routes a long call's ProgressEvents to a bar over files and a bar over the
    seconds of the file being embedded (no bars when progress is off)."""

    def __init__(self, run: Run, n_files: int, desc: str) -> None:
        self.run = run
        self.desc = desc
        self.files = run.file_bar(n_files, desc)
        self.source: str | None = None
        self.bar: Any = None
        self.callback: ProgressCallback | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "train-files":
            self.files.update(1)
            return
        if event.source != self.source:
            self._close_file()
            self.source = event.source
            stage = "embed" if self.desc == "train" else self.desc
            self.bar = self.run.seconds_bar(Path(event.source), stage)
            self.callback = self.bar.__enter__()
        if self.callback is not None:
            self.callback(event)

    def file_done(self) -> None:
        self._close_file()
        self.source = None
        self.files.update(1)

    def _close_file(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = self.callback = None

    def close(self) -> None:
        self._close_file()
        self.files.close()


def _fit(run: Run, scanner: Scanner, markers: dict[str, Markers]) -> None:
    from audio_embed.scanner import Recording

    recs = [Recording(f, m) for f, m in sorted(markers.items())]
    progress = _Progress(run, len(recs), "train") if run.show_progress else None
    try:
        scanner.fit(recs, progress=progress, cancel=run.cancel)
    finally:
        if progress is not None:
            progress.close()
    run.cancel.check()  # Ctrl-C during the classifier fit: save nothing


def _print_training(run: Run, scanner: Scanner, root: Path | None = None) -> None:
    s = scanner.training_summary or {}
    tw, sw = scanner.train_windows, scanner.scan_windows
    run.echo(
        f"Trained a {scanner.embedder.name} scanner on {len(s.get('files', []))} recording(s): "
        f"window {sw.window:g} s, hop {sw.hop:g} s, labelling {tw.labelling} "
        f"(tolerance {tw.tolerance:g} s, negative margin {tw.neg_margin:g} s), "
        f"normalisation {scanner.normalization}."
    )
    files = s.get("files", [])
    names = [_short(str(f["source"]), root) for f in files]
    width = max((len(n) for n in names), default=0)
    for name, f in zip(names, files, strict=True):
        run.echo(f"  {name.ljust(width)}  {f['positive']:5d} positive  {f['negative']:5d} negative")
    run.echo(
        f"Windows per class: {s.get('windows_positive', 0)} positive (target), "
        f"{s.get('windows_negative', 0)} negative."
    )
    used_neg, avail = s.get("classifier_n_negative"), s.get("classifier_n_negative_available")
    if used_neg is not None and avail is not None and used_neg != avail:
        run.echo(f"  the classifier used {used_neg} of the {avail} negatives (subsampled).")
    run.echo(
        f"Classifier: {scanner.classifier.summary_['estimator']}; "
        f"calibration: {s.get('classifier_calibration_note', 'n/a')}."
    )
    th = s.get("threshold") or {}
    if th.get("cv_f1") is not None:
        run.echo(
            f"Detection threshold: {scanner.scan_threshold:g}, chosen by cross-validation "
            f"({th['method']}, {th['folds']} folds; event F1 {th['cv_f1']:.3f} on held-out "
            "markers)."
        )
    else:
        note = f" ({th['note']})" if th.get("note") else ""
        run.echo(f"Detection threshold: {scanner.scan_threshold:g}{note}.")


def _short(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _cmd_train(run: Run) -> int:
    from audio_embed.classifier import CalibratedClassifier, make_base_estimator
    from audio_embed.scanner import Scanner
    from audio_embed.store import ScannerStore
    from audio_embed.windows import SlidingWindows

    args = run.args
    if (args.out is None) == (args.store is None):
        raise UsageError("Give either --out SCANNER_FILE or --store DIR --profile NAME.")
    if args.store is not None and not args.profile:
        raise UsageError("--store needs --profile NAME.")
    from audio_embed.registry import get_spec

    get_spec(args.model)  # an unknown name fails before any work
    markers = _read_marker_files(args)
    embedder = _create_embedder(args.model, args)
    calibration = None if args.calibration == "none" else args.calibration
    scanner = Scanner(
        embedder,
        classifier=CalibratedClassifier(
            None if args.classifier == "auto" else make_base_estimator(args.classifier),
            calibration=calibration,
        ),
        scan_windows=SlidingWindows(args.window, args.hop, args.encoding),
        train_windows=_train_windows(args),
        normalization=args.normalization,
        cache=_cache(args),
        batch_size=args.batch_size,
        threshold=args.threshold,
    )
    _fit(run, scanner, markers)
    if args.store is not None:
        path = ScannerStore(args.store).save(scanner, args.profile)
    else:
        path = scanner.save(args.out)
    _print_training(run, scanner)
    run.echo(f"Saved: {path}")
    return 0


# ---------------------------------------------------------------------------- scan


def _read_back(path: Path, fmt: str) -> list[tuple[float, float, float | None, float]]:
    """Detections from a result file this command wrote earlier (for --skip-existing)."""
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[float, float, float | None, float]] = []
    if fmt == "csv":
        for r in csv.DictReader(io.StringIO(text)):
            rows.append((float(r["start"]), float(r["end"]), float(r["peak"]), float(r["score"])))
    elif fmt == "json":
        for d in json.loads(text):
            rows.append((float(d["start"]), float(d["end"]), float(d["peak"]), float(d["score"])))
    elif fmt == "audacity":
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                rows.append((float(parts[0]), float(parts[1]), None, float(parts[2].split()[-1])))
    else:
        for r in csv.DictReader(io.StringIO(text), delimiter="\t"):
            rows.append(
                (float(r["Begin Time (s)"]), float(r["End Time (s)"]), None, float(r["Score"]))
            )
    return rows


def _cmd_scan(run: Run) -> int:
    args = run.args
    items = list(args.paths)
    if args.store is None:
        if len(items) < 2:
            raise UsageError(
                "Usage: audio-embed scan SCANNER FILES_OR_DIRS... (or --store DIR --profile "
                "NAME [--model M] FILES_OR_DIRS...)."
            )
        args.scanner, items = items[0], items[1:]
    else:
        args.scanner = None
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1]. Got {args.threshold}.")
    scanner, _name = _load_scanner(run, cache=_cache(args))
    _apply_overrides(scanner, args)
    label = args.label or (args.profile if args.store is not None else "target")
    threshold = scanner.scan_threshold if args.threshold is None else args.threshold
    n = scan_to_folder(
        run,
        scanner,
        items,
        Path(args.out),
        fmt=args.format,
        label=label,
        threshold=threshold,
        skip_existing=args.skip_existing,
    )
    return n


def scan_to_folder(
    run: Run,
    scanner: Scanner,
    items: Sequence[str],
    out_dir: Path,
    *,
    fmt: str,
    label: str,
    threshold: float,
    skip_existing: bool = False,
    results: dict[str, ScanResult] | None = None,
) -> int:
    """Scan files and folders into ``out_dir``; returns the exit code."""
    from audio_embed.formats import FORMAT_SUFFIXES, OutputFormat, format_detections
    from audio_embed.formats import write_detections as write

    inputs, missing = _collect_inputs(items)
    for item, reason in missing:
        run.warn(f"skipped {item}: {reason}")
    suffix = FORMAT_SUFFIXES[fmt]
    targets = _output_paths(inputs, out_dir, suffix, reserved=(COMBINED_CSV,))
    todo, combined, failed = [], {}, len(missing)
    for inp in inputs:
        target = targets[inp.path]
        if skip_existing and target.exists():
            try:
                combined[inp.path] = _read_back(target, fmt)
                run.echo(f"{inp.path}: result exists, skipped ({target})")
                continue
            except (OSError, ValueError, KeyError, IndexError) as exc:
                run.warn(f"{target} is unreadable ({exc}); scanning {inp.path} again.")
        todo.append(inp)
    n_det = 0
    for inp, result, _reason in _each(run, todo, scanner.scan_many, "scan"):
        if result is None:
            failed += 1
            continue
        if results is not None:
            results[str(inp.path)] = result
        dets = result.detections(threshold)
        write(targets[inp.path], dets, cast(OutputFormat, fmt), file=str(inp.path), label=label)
        combined[inp.path] = [(d.start, d.end, d.peak, d.score) for d in dets]
        n_det += len(dets)
        run.echo(f"{inp.path}: {len(dets)} detection(s) -> {targets[inp.path]}")
    run.cancel.check()
    if combined:
        from audio_embed.formats import atomic_write_text
        from audio_embed.scanner import Detection

        parts = ["file,start,end,peak,score\n"]
        for inp in inputs:
            rows = combined.get(inp.path)
            if rows is None:
                continue
            dets = [Detection(s, e, sc, p if p is not None else math.nan) for s, e, p, sc in rows]
            text = format_detections(dets, "csv", file=str(inp.path), label=label)
            parts.append(text.split("\n", 1)[1].replace(",nan,", ",,"))
        atomic_write_text(out_dir / COMBINED_CSV, "".join(parts))
    total = len(inputs) + len(missing)
    run.echo(
        f"Scanned {len(todo) - (failed - len(missing))} of {total} input(s) at threshold "
        f"{threshold:g}: {n_det} detection(s)"
        + (
            f"; {len(inputs) - len(todo)} skipped (result exists)"
            if len(todo) < len(inputs)
            else ""
        )
        + (f"; {failed} failed" if failed else "")
        + (f". Combined: {out_dir / COMBINED_CSV}" if combined else ".")
    )
    if failed:
        run.warn(f"{failed} of {total} input(s) failed (see above).")
        return EXIT_FAILURE
    return 0


# ---------------------------------------------------------------------------- evaluate


def _events_from_labels(
    labels: Path, split: str | None, target: str
) -> tuple[list[Path], dict[str, list[tuple[float, float]]], dict[str, list[LabelledEvent]]]:
    """Files to scan, target events and every labelled event, keyed by resolved path."""
    from audio_embed.evaluate import read_labels

    rows = read_labels(labels)
    if split is not None:
        splits = sorted({r.split for r in rows})
        rows = [r for r in rows if r.split == split]
        if not rows:
            raise UsageError(
                f"No rows of {labels} have split {split!r}; its splits: "
                f"{', '.join(repr(s) for s in splits) or 'none'}."
            )
    known = sorted({r.label for r in rows})
    if target not in known:
        raise UsageError(
            f"No event labelled {target!r} in {labels}"
            + (f" (split {split!r})" if split else "")
            + f"; its labels: {', '.join(known) or 'none'}."
        )
    root = labels.parent
    files: dict[str, Path] = {}
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    every: dict[str, list[LabelledEvent]] = defaultdict(list)
    for r in rows:
        path = Path(r.file) if Path(r.file).is_absolute() else root / r.file
        key = str(path)
        files.setdefault(key, path)
        every[key].append(r)
        if r.label == target:
            events[key].append((r.onset, r.offset))
    return [files[k] for k in sorted(files)], dict(events), dict(every)


def _finite(value: float) -> float | None:
    return value if isinstance(value, float) and math.isfinite(value) else None


def _print_evaluation(
    run: Run,
    ev: Any,
    *,
    target: str,
    threshold: float,
    per_file: list[tuple[str, Any]],
) -> None:
    def f(x: float, digits: int = 3) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"

    run.echo(
        f"Target {target!r} at threshold {threshold:g}: {len(per_file)} file(s), "
        f"{ev.minutes:.1f} min of audio."
    )
    if per_file:
        width = max(len(n) for n, _ in per_file)
        for name, e in per_file:
            run.echo(
                f"  {name.ljust(width)}  found {e.n_found}/{e.n_events} events, "
                f"{e.n_detections} detection(s), {e.n_false_positives} false positive(s)"
            )
    run.echo(
        f"Events:      {ev.n_found} of {ev.n_events} found; {ev.n_detections} detection(s), "
        f"{ev.n_false_positives} false positive(s) ({ev.false_positives_per_minute:.2f} per minute)"
    )
    flagged = getattr(ev, "flagged_minutes", None)
    if flagged is not None and ev.minutes:
        run.echo(
            f"Flagged:     {flagged:.1f} of {ev.minutes:.1f} min covered by detections "
            f"({flagged / ev.minutes:.0%})"
        )
    run.echo(f"Precision:   {f(ev.precision)}")
    run.echo(f"Recall:      {f(ev.recall)}")
    run.echo(f"F1:          {f(ev.f1)}")
    run.echo(f"Window ROC AUC {f(ev.window_auc)}, average precision {f(ev.window_ap)}")
    run.echo(
        f"Calibration: Brier score {f(ev.brier, 4)}, expected calibration error {f(ev.ece, 4)}"
    )


def _evaluation_dict(ev: Any, **extra: Any) -> dict[str, Any]:
    d = {k: (_finite(v) if isinstance(v, float) else v) for k, v in ev.as_dict().items()}
    return {**extra, **d}


def _check_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "--plot needs matplotlib, which is not installed: pip install 'audio_embed[plot]' "
            "(or pip install matplotlib)."
        )


def plot_result(
    path: Path,
    result: ScanResult,
    detections: Sequence[Detection],
    events: Sequence[LabelledEvent],
    *,
    target: str,
    threshold: float,
    title: str,
) -> Path:
    """A PNG of the score over time with the labelled events and the detections."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(12, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for e in events:
        colour, alpha = ("tab:green", 0.35) if e.label == target else ("0.6", 0.2)
        ax.axvspan(e.onset, e.offset, color=colour, alpha=alpha, lw=0)
    for d in detections:
        ax.axvspan(d.start, d.end, ymin=0.92, ymax=1.0, color="tab:red", alpha=0.8, lw=0)
    centres = result.starts + result.window / 2.0
    ax.plot(centres, result.probabilities, color="tab:blue", lw=1.0, label="score")
    ax.axhline(threshold, color="tab:red", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    ax.set_xlim(0, max(result.duration, 1e-3))
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(target)")
    ax.set_title(title, fontsize=9)
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Patch(color="tab:green", alpha=0.35, label=f"labelled {target!r}"),
        Patch(color="0.6", alpha=0.2, label="other labels"),
        Patch(color="tab:red", alpha=0.8, label="detections"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=7, ncol=5)
    fig.tight_layout()
    with atomic_writer(path) as fh:
        fig.savefig(fh, format="png")
    return path


def evaluate_results(
    run: Run,
    results: dict[str, ScanResult],
    events: dict[str, list[tuple[float, float]]],
    every: dict[str, list[LabelledEvent]],
    *,
    target: str,
    threshold: float,
    root: Path,
    plot_dir: Path | None = None,
    as_json: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print (and return) the metrics of ``results``; write the plots."""
    from audio_embed.evaluate import evaluate

    ev = evaluate(results, events, threshold)
    per_file = [
        (_short(k, root), evaluate({k: r}, {k: events.get(k, [])}, threshold))
        for k, r in results.items()
    ]
    report = _evaluation_dict(ev, target=target, threshold=threshold, files=len(results))
    report.update(extra or {})
    report["per_file"] = [
        {
            "file": name,
            "n_events": e.n_events,
            "n_found": e.n_found,
            "n_detections": e.n_detections,
            "n_false_positives": e.n_false_positives,
        }
        for name, e in per_file
    ]
    if as_json:
        run.echo(json.dumps(report, indent=2))
    else:
        _print_evaluation(run, ev, target=target, threshold=threshold, per_file=per_file)
    if plot_dir is not None:
        inputs = [Input(Path(k), Path(_short(k, root))) for k in results]
        names = _output_paths(inputs, plot_dir, ".png")
        for inp in inputs:
            run.cancel.check()
            r = results[str(inp.path)]
            png = plot_result(
                names[inp.path],
                r,
                r.detections(threshold),
                every.get(str(inp.path), []),
                target=target,
                threshold=threshold,
                title=str(inp.rel),
            )
            if not as_json:
                run.echo(f"Plot: {png}")
    return report


def _cmd_evaluate(run: Run) -> int:
    args = run.args
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1]. Got {args.threshold}.")
    if args.plot is not None:
        _check_matplotlib()
    labels = Path(args.labels)
    files, events, every = _events_from_labels(labels, args.split, args.target)
    scanner, _name = _load_scanner(run, cache=_cache(args))
    _apply_overrides(scanner, args)
    threshold = scanner.scan_threshold if args.threshold is None else args.threshold
    results: dict[str, ScanResult] = {}
    failed: list[str] = []
    inputs = [Input(p, Path(p.name)) for p in files]
    for inp, result, _reason in _each(run, inputs, scanner.scan_many, "evaluate"):
        if result is None:
            failed.append(str(inp.path))
        else:
            results[str(inp.path)] = result
    run.cancel.check()
    if not results:
        raise AudioEmbedError("No labelled file could be scanned; nothing to evaluate.")
    evaluate_results(
        run,
        results,
        events,
        every,
        target=args.target,
        threshold=threshold,
        root=labels.parent,
        plot_dir=Path(args.plot) if args.plot is not None else None,
        as_json=args.json,
        extra={"split": args.split, "failed": failed},
    )
    if failed:
        run.warn(f"{len(failed)} labelled file(s) could not be scanned and are not counted.")
        return EXIT_FAILURE
    return 0


# ---------------------------------------------------------------------------- demo


def _demo_events(seconds: float) -> tuple[int, int]:
    """Targets and distractors per demo recording: make_demo_set places one event per
    4-second slot (2, 6, 10… up to 3 s before the end), so short recordings get fewer."""
    if seconds < 60:
        raise UsageError(f"--seconds must be at least 60 for the demo. Got {seconds:g}.")
    slots = len(range(2, int(seconds) - 3, 4))
    targets = min(5, max(1, round(slots / 6)))  # leave room for negatives far from markers
    return targets, min(10, slots - targets)


def _cmd_demo(run: Run) -> int:
    from audio_embed.demo import make_demo_set
    from audio_embed.formats import atomic_write_text, read_markers
    from audio_embed.scanner import Scanner

    args = run.args
    root = Path(args.dir)
    t0 = time.perf_counter()
    targets, distractors = _demo_events(args.seconds)
    demo = make_demo_set(
        root,
        n_train=args.n_train,
        n_test=args.n_test,
        seconds=args.seconds,
        targets_per_file=targets,
        distractors_per_file=distractors,
        seed=args.seed,
    )
    run.echo(
        f"1. Demo set: {len(demo.train_files)} training and {len(demo.test_files)} test "
        f"recordings of {args.seconds:g} s in {root}, each with {targets} synthetic two-note\n"
        f"   horns (the target) among {distractors} beeps, noise bursts, clicks and sweeps.\n"
        f"   {demo.markers_csv.name}: one marker per horn in the training files (file,time,kind)"
        f"\n   {demo.labels_csv.name}: every event of every file (split,file,onset,offset,label)"
    )
    run.echo()
    run.echo("2. Training a LOGMEL scanner on the markers:")
    scanner = Scanner(_create_embedder("LOGMEL", args))
    _fit(run, scanner, read_markers(demo.markers_csv))
    scanner_path = scanner.save(root / "demo.scanner")
    run.indent = "   "
    _print_training(run, scanner, root=root)
    run.echo(f"Saved: {scanner_path}")
    run.indent = ""
    run.echo()
    run.echo("3. Scanning the test recordings:")
    run.indent = "   "
    results: dict[str, ScanResult] = {}
    rc = scan_to_folder(
        run,
        scanner,
        [str(f) for f in demo.test_files],
        root / "results",
        fmt="csv",
        label="horn",
        threshold=scanner.scan_threshold,
        results=results,
    )
    run.indent = ""
    run.echo()
    run.echo("4. Evaluating against the labels (split 'test', target 'horn'):")
    run.indent = "   "
    _files, events, every = _events_from_labels(demo.labels_csv, "test", "horn")
    plot_dir = None
    if not args.no_plot and importlib.util.find_spec("matplotlib") is not None:
        plot_dir = root / "plots"
    report = evaluate_results(
        run,
        results,
        events,
        every,
        target="horn",
        threshold=scanner.scan_threshold,
        root=root,
        plot_dir=plot_dir,
    )
    atomic_write_text(root / "evaluation.json", json.dumps(report, indent=2) + "\n")
    run.echo(f"Metrics: {root / 'evaluation.json'}")
    run.indent = ""
    run.echo(f"\nDone in {time.perf_counter() - t0:.0f} s.")
    q = shlex.quote
    r = str(root)
    run.echo(
        "\nThe same steps as commands:\n"
        f"  {PROG} train --markers {q(r + '/markers.csv')} --model LOGMEL "
        f"--out {q(r + '/demo.scanner')}\n"
        f"  {PROG} scan {q(r + '/demo.scanner')} {q(r + '/test')} --label horn "
        f"--out {q(r + '/results')}\n"
        f"  {PROG} evaluate {q(r + '/demo.scanner')} --labels {q(r + '/labels.csv')} "
        "--target horn --split test"
        + (f" --plot {q(r + '/plots')}" if plot_dir is not None else "")
        + "\n"
        "\nWith your own recordings:\n"
        "  1. Mark a few moments of the target sound: a CSV with the columns file,time,kind\n"
        "     (seconds; kind positive, negative or soft) like markers.csv above, or Audacity\n"
        "     label tracks / Raven selection tables saved next to each recording (rec.wav +\n"
        "     rec.txt).\n"
        f"  2. Choose a model: {PROG} models   (LOGMEL needs no download; pretrained ones\n"
        "     such as HUBERT_BASE_ML download their weights on first use).\n"
        f"  3. {PROG} train --markers markers.csv --model LOGMEL --out my.scanner\n"
        f"  4. {PROG} scan my.scanner recordings/ --format audacity --out results/\n"
        "     (in Audacity: File > Import > Labels… results/rec.txt next to rec.wav)\n"
        "  5. To measure it: label every event of a few other files in a CSV\n"
        "     (split,file,onset,offset,label), then\n"
        f"     {PROG} evaluate my.scanner --labels labels.csv --target LABEL --plot plots/"
    )
    return rc


# ---------------------------------------------------------------------------- parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written; adds "(default: X)" where a default says something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _number_type(
    ok: Callable[[float], bool], expected: str, constraint: str
) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite float satisfying ``ok``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {constraint}, got {text!r}")
        return value

    return parse


_positive_float = _number_type(lambda v: v > 0, "a number of seconds", "> 0")
_nonneg_float = _number_type(lambda v: v >= 0, "a number", ">= 0")


def _auto_or_probability(value: str) -> float | str:
    if value.strip().lower() == "auto":
        return "auto"
    p = _probability(value)
    if not 0.0 < p < 1.0:
        raise argparse.ArgumentTypeError(f"must be auto or a number in (0, 1), got {value!r}")
    return p


_probability = _number_type(lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]", "in [0, 1]")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _common_options(threads: int | None = None) -> argparse.ArgumentParser:
    """-q, -v, --threads (a new parser each call: parents share their action objects)."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("output and resources")
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars and no warnings (errors and skipped files are still reported)",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="log at INFO level; tracebacks on errors"
    )
    g.add_argument(
        "--threads",
        type=_positive_int,
        default=threads,
        metavar="N",
        help="CPU threads for torch and scikit-learn (default: "
        + (f"{threads}" if threads else "their own choice")
        + "; 1 is often fastest on a busy shared machine)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``audio-embed`` argument parser (subcommands: models, embed, train, scan,
    evaluate, demo)."""
    from audio_embed import __version__

    common = _common_options()

    model_opts = argparse.ArgumentParser(add_help=False)
    g = model_opts.add_argument_group("model")
    g.add_argument("--device", help="torch device for the model, e.g. cpu, cuda, cuda:1")
    g.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="load the model's weights from this local file instead of the default location",
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="windows per model call (default: sized automatically from memory)",
    )

    cache_opts = argparse.ArgumentParser(add_help=False)
    g = cache_opts.add_argument_group("embedding cache")
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where sliding-window embeddings are cached (default: $AUDIO_EMBED_CACHE_DIR or "
        "the user cache folder, ~/.cache/audio_embed/embeddings on Linux)",
    )
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")

    window_opts = argparse.ArgumentParser(add_help=False)
    g = window_opts.add_argument_group("windows")
    g.add_argument(
        "--window", type=_positive_float, default=1.0, metavar="SEC", help="window length"
    )
    g.add_argument(
        "--hop", type=_positive_float, default=0.1, metavar="SEC", help="step between windows"
    )
    g.add_argument(
        "--encoding",
        choices=("per_window", "shared"),
        default="shared",
        help="encode each window alone, or each stretch once and pool frames per window "
        "(layered models with frame hooks; default: shared)",
    )

    scanner_src = argparse.ArgumentParser(add_help=False)
    g = scanner_src.add_argument_group("scanner from a store (instead of a SCANNER file)")
    g.add_argument("--store", metavar="DIR", help="a folder of scanners made by train --store")
    g.add_argument("--profile", metavar="NAME", help="the profile name in --store")
    g.add_argument(
        "--model",
        metavar="M",
        help="the embedder of the scanner (with --store; with a SCANNER file it must match "
        "the one it was trained with)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find a target sound in long recordings and videos from a few marked\n"
        "moments: embed windows of audio with a pretrained encoder, train a small calibrated\n"
        "classifier on the marked windows, and scan new files for the regions that score\n"
        "above a threshold.",
        epilog=(
            "start here:\n"
            f"  {PROG} demo                     the whole workflow on a synthetic example\n"
            f"  {PROG} models                   the embedders and whether their weights are here\n"
            f"  {PROG} train --markers markers.csv --model LOGMEL --out my.scanner\n"
            f"  {PROG} scan my.scanner recordings/ --format audacity --out results/\n"
            f"  {PROG} evaluate my.scanner --labels labels.csv --target horn\n\n"
            f"run '{PROG} COMMAND --help' for the options of a command.\n"
            "exit codes: 0 ok, 1 failure (a file failed, bad markers…), 2 usage error, "
            "130 cancelled."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # models
    p = sub.add_parser(
        "models",
        parents=[common],
        formatter_class=_Formatter,
        help="list the embedders: dimension, layers, weights source, licence, availability",
        description="List the registered embedders. WEIGHTS says whether the model can be "
        "used now without a network (weights in the local cache, or none needed).",
        epilog=f"examples:\n  {PROG} models\n  {PROG} models 'HUBERT*'\n  {PROG} models --json",
    )
    p.add_argument(
        "pattern", nargs="?", metavar="PATTERN", help="shell-style filter, e.g. 'HUBERT*'"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_models)

    # embed
    p = sub.add_parser(
        "embed",
        parents=[common, window_opts, model_opts, cache_opts],
        formatter_class=_Formatter,
        help="write sliding-window embeddings of files to a .npz",
        description="Embed every sliding window of each file and write one .npz (no pickle): "
        "'files' (the input paths), and for the i-th file 'i/starts' (window start times, s), "
        "'i/embeddings' (float32 [windows, dim]) and 'i/duration'; plus 'model', 'window', "
        "'hop'. Files that cannot be read are reported and skipped (exit code 1).",
        epilog=f"example:\n  {PROG} embed a.wav b.mp4 --model LOGMEL --out emb.npz\n"
        "  python -c \"import numpy as np; print(np.load('emb.npz')['0/embeddings'].shape)\"",
    )
    p.add_argument("files", nargs="+", metavar="FILE_OR_DIR", help="audio/video files or folders")
    p.add_argument("--model", required=True, metavar="M", help="embedder name (see models)")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="output file")
    p.set_defaults(func=_cmd_embed)

    # train
    p = sub.add_parser(
        "train",
        parents=[common, window_opts, model_opts, cache_opts],
        formatter_class=_Formatter,
        help="train a scanner from marked moments",
        description=(
            "Train a scanner from moments marked in recordings.\n\n"
            "Markers (--markers, repeatable; the format is guessed, or set --markers-format):\n"
            "  CSV        file,time,kind  (kind: positive, negative or soft; default positive);\n"
            "             relative file names are read from the CSV's folder.\n"
            "  Audacity   a label track export: start<TAB>end<TAB>label; the marker is the\n"
            "             label's midpoint, a label 'negative'/'soft' sets its kind.\n"
            "  Raven      a selection table (Begin Time (s), End Time (s), and an Annotation,\n"
            "             Label or Kind column naming the kind).\n"
            "For Audacity and Raven files the recording is the media file beside the label\n"
            "file with the same stem (rec.wav for rec.txt, rec.selections.txt or\n"
            "rec.Table.1.selections.txt), or the file named by an --audio right after that\n"
            "--markers."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} train --markers markers.csv --model HUBERT_BASE_ML --out horn.scanner\n"
            f"  {PROG} train --markers rec1.txt --markers rec2.txt --model LOGMEL "
            "--store scanners/ --profile horn\n"
            f"  {PROG} train --markers sel.txt --audio /data/night.flac --model LOGMEL "
            "--out owl.scanner"
        ),
    )
    g = p.add_argument_group("markers")
    g.add_argument(
        "--markers",
        action=_MarkersAction,
        required=True,
        metavar="FILE",
        help="a markers file (repeat for several)",
    )
    g.add_argument(
        "--markers-format",
        choices=("auto", "csv", "audacity", "raven"),
        default="auto",
        help="format of every --markers file (auto: .csv is CSV, a header with "
        "'Begin Time (s)' is Raven, anything else Audacity)",
    )
    g.add_argument(
        "--audio",
        action=_AudioAction,
        metavar="FILE",
        help="the recording marked by the Audacity/Raven label file given just before it "
        "(--markers rec.txt --audio /data/rec.flac)",
    )
    p.add_argument("--model", required=True, metavar="M", help="embedder name (see models)")
    g = p.add_argument_group("output (one of)")
    g.add_argument("--out", metavar="SCANNER", help="write the scanner to this file")
    g.add_argument("--store", metavar="DIR", help="save into a scanner store (with --profile)")
    g.add_argument("--profile", metavar="NAME", help="profile name in --store")
    g = p.add_argument_group("labelling and classifier")
    g.add_argument(
        "--labelling",
        choices=("overlap", "targeted"),
        default="overlap",
        help="overlap: a window is positive when it holds a positive marker; targeted: "
        "the original application's rules (whole-second windows within --tolerance)",
    )
    g.add_argument(
        "--tolerance",
        type=_nonneg_float,
        metavar="SEC",
        help="widen each positive marker by this much (default: 0 for overlap, 12 for targeted)",
    )
    g.add_argument(
        "--neg-margin",
        type=_nonneg_float,
        metavar="SEC",
        help="windows at least this far from every marker are negatives (default: 8 for "
        "overlap, 120 for targeted; 0 = only marked negatives)",
    )
    g.add_argument(
        "--neg-stride",
        type=_positive_float,
        metavar="SEC",
        help="spacing of automatic negatives with --labelling targeted (4)",
    )
    g.add_argument(
        "--classifier",
        choices=("auto", "hgb", "logreg"),
        default="auto",
        help="gradient boosting, logistic regression, or auto (default): gradient boosting "
        "with enough positive windows, logistic regression with few",
    )
    g.add_argument(
        "--calibration",
        choices=("isotonic", "sigmoid", "none"),
        default="isotonic",
        help="probability calibration (skipped when a class has fewer than 6 windows)",
    )
    g.add_argument(
        "--normalization",
        choices=("recording", "targeted", "none"),
        default="recording",
        help="z-score embeddings per recording (over all its windows), over the training "
        "windows only, or not at all",
    )
    g.add_argument(
        "--threshold",
        type=_auto_or_probability,
        default="auto",
        metavar="P",
        help="the detection threshold stored in the scanner (scan uses it unless told): "
        "auto (default) chooses it by cross-validation over the training recordings, "
        "or a number in (0, 1)",
    )
    p.set_defaults(func=_cmd_train)

    # scan
    p = sub.add_parser(
        "scan",
        parents=[common, scanner_src, model_opts, cache_opts],
        formatter_class=_Formatter,
        usage=f"{PROG} scan [options] SCANNER FILE_OR_DIR [FILE_OR_DIR ...]\n"
        f"       {PROG} scan [options] --store DIR --profile NAME [--model M] FILE_OR_DIR ...",
        help="find the target sound in files and folders",
        description=(
            "Scan audio and video files (folders are searched recursively) and write one\n"
            "result file per input into --out, named after the input (rec.wav -> rec.csv,\n"
            "rec.json, rec.txt for Audacity, rec.selections.txt for Raven; subfolders of a\n"
            "folder argument are kept), plus detections.csv with every detection.\n"
            "A file that cannot be read is reported on stderr and skipped; the others still\n"
            "finish and the exit code is 1. Ctrl-C stops cleanly (exit code 130): results\n"
            "already written are complete, so --skip-existing resumes."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} scan horn.scanner recordings/ --out results/\n"
            f"  {PROG} scan horn.scanner film.mp4 --format audacity --label horn --out results/\n"
            f"  {PROG} scan --store scanners/ --profile horn --model LOGMEL recordings/ "
            "--out results/"
        ),
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="SCANNER FILE_OR_DIR",
        help="the scanner file, then the inputs (only the inputs with --store)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    p.add_argument(
        "--format",
        choices=("csv", "json", "audacity", "raven"),
        default="csv",
        help="format of the per-file results",
    )
    p.add_argument(
        "--threshold",
        type=_probability,
        metavar="P",
        help="detection threshold (default: the one stored in the scanner)",
    )
    p.add_argument(
        "--label",
        metavar="TEXT",
        help="label text in Audacity/Raven output (default: the profile name with --store, "
        "else 'target')",
    )
    p.add_argument(
        "--skip-existing", action="store_true", help="skip inputs whose result file exists"
    )
    p.set_defaults(func=_cmd_scan)

    # evaluate
    p = sub.add_parser(
        "evaluate",
        parents=[common, scanner_src, model_opts, cache_opts],
        formatter_class=_Formatter,
        usage=f"{PROG} evaluate [options] SCANNER --labels LABELS.csv --target LABEL\n"
        f"       {PROG} evaluate [options] --store DIR --profile NAME [--model M] "
        "--labels LABELS.csv --target LABEL",
        help="measure a scanner on labelled recordings",
        description=(
            "Scan the files of a labels CSV (split,file,onset,offset,label; file paths are\n"
            "relative to the CSV's folder) and report: event precision, recall and F1 (a\n"
            "labelled target event is found when a detection overlaps it; a detection that\n"
            "overlaps none is a false positive), window ROC AUC and average precision (a\n"
            "window is positive when it overlaps a target event), and calibration (Brier\n"
            "score, expected calibration error)."
        ),
        epilog=(
            "example:\n"
            f"  {PROG} evaluate horn.scanner --labels labels.csv --target horn --split test "
            "--plot plots/"
        ),
    )
    p.add_argument("scanner", nargs="?", metavar="SCANNER", help="a scanner file")
    p.add_argument("--labels", required=True, metavar="CSV", help="the labels CSV")
    p.add_argument("--target", required=True, metavar="LABEL", help="the label to find")
    p.add_argument("--split", help="only the rows of this split (e.g. test); default: all rows")
    p.add_argument(
        "--threshold",
        type=_probability,
        metavar="P",
        help="detection threshold (default: the scanner's)",
    )
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write a PNG per file: score over time, labelled events, detections "
        "(needs matplotlib)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_cmd_evaluate)

    # demo
    p = sub.add_parser(
        "demo",
        parents=[_common_options(threads=1)],
        formatter_class=_Formatter,
        help="the whole workflow on a synthetic example (no download, under a minute)",
        description="Make a small labelled set of synthetic recordings in DIR, train a LOGMEL\n"
        "scanner on its markers, scan the test recordings, evaluate, and print the commands\n"
        "to do the same with your own files. Needs no network. Runs on one thread unless\n"
        "--threads says otherwise (the set is small; more threads only help on an idle\n"
        "machine).",
    )

    p.add_argument(
        "dir", nargs="?", default="audio-embed-demo", metavar="DIR", help="output folder"
    )
    p.add_argument("--n-train", type=_positive_int, default=3, help="training recordings")
    p.add_argument("--n-test", type=_positive_int, default=2, help="test recordings")
    p.add_argument(
        "--seconds", type=_positive_float, default=120.0, help="length of each recording"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic set")
    p.add_argument("--no-plot", action="store_true", help="do not draw the evaluation plots")
    p.set_defaults(func=_cmd_demo)
    return parser


# ---------------------------------------------------------------------------- main


def _fail(message: str) -> None:
    _write_stderr(f"{PROG}: error: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``audio-embed`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    func = cast(Callable[[Run], int], args.func)
    verbose = bool(getattr(args, "verbose", False))
    try:
        with _session(args) as run:
            return func(run)
    except (Cancelled, KeyboardInterrupt):
        _fail("cancelled (results already written are complete; nothing is half-written).")
        return EXIT_CANCELLED
    except (UsageError, UnknownEmbedderError, InvalidInputError) as exc:
        if verbose:
            traceback.print_exc()
        _fail(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `audio-embed models | head`
        try:
            sys.stdout = open(os.devnull, "w")  # silence the flush at exit
        except OSError:
            pass
        return EXIT_FAILURE
    except (AudioEmbedError, OSError) as exc:
        if verbose:
            traceback.print_exc()
        _fail(_describe_error(exc))
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Scanning many files into a folder of results, with a report.

:func:`collect_inputs` turns the files and folders a person names into
:class:`Input` s, :func:`output_paths` gives each a unique result file,
:func:`run_many` runs a ``*_many`` method of a scanner over them so that a file
that fails is reported and the others go on, and :func:`scan_to_folder` does all
of it, writing one result file per input plus a combined CSV and returning a
:class:`BatchReport`. Nothing here prints: pass ``on_file`` to hear about each
file as it finishes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import attrs

from audio_embed._io import check_output_folder
from audio_embed._media import is_media_file, path_list
from audio_embed.detect import (
    SHORT_FILE_SECONDS,
    flagged_share,
    format_threshold,
    short_file_advice,
)
from audio_embed.errors import (
    AudioEmbedError,
    Cancelled,
    InvalidInputError,
    ResultFileError,
    describe_error,
)
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent
from audio_embed.types import Detection

if TYPE_CHECKING:
    from audio_embed.formats import OutputFormat
    from audio_embed.scanner import ScanResult

__all__ = [
    "COMBINED_CSV",
    "FLAGGED_WARNING_SHARE",
    "SCAN_JOURNAL",
    "SCAN_LOCK",
    "SCAN_STAMP",
    "BatchCancelled",
    "BatchReport",
    "BatchSettings",
    "FileOutcome",
    "Input",
    "ScansMany",
    "collect_inputs",
    "output_paths",
    "refuse_beside_recordings",
    "run_many",
    "scan_to_folder",
]

log = logging.getLogger(__name__)

#: A scan whose detections cover more of a recording than this is reported (a log
#: warning; ``scan`` prints it): a threshold chosen from two or three markers can come
#: out so low that a third of the audio or more is flagged (README, horn benchmark).
FLAGGED_WARNING_SHARE = 0.25
T = TypeVar("T")


class ScansMany(Protocol):
    """What :func:`scan_to_folder` needs of a scanner: its default threshold and
    ``scan_many`` (a :class:`~audio_embed.scanner.Scanner`, or a runner with the
    same method such as :class:`audio_embed.distributed.RayScanner`)."""

    @property
    def scan_threshold(self) -> float: ...

    def scan_many(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, ScanResult | AudioEmbedError]]: ...


#: The file in the output folder that holds every detection of a batch.
COMBINED_CSV = "detections.csv"
#: The file in the output folder that records how each result file was made: the
#: threshold it was written at (so that ``skip_existing`` can say when it keeps results
#: of another threshold) and the recording it holds the detections of, by its resolved
#: path, size and modification time (so that a result of another recording of the same
#: name is never replaced or kept as this one's, whatever the format).
SCAN_STAMP = ".audio-embed-scan.json"
#: What a scan adds to :data:`SCAN_STAMP` as it goes: a line per result written (JSON:
#: ``key``, ``threshold``, ``result``), appended at once, so that a scan killed outright
#: leaves a record of every result it wrote without rewriting the whole record after each
#: (32 MB for 100,000 results). The record is read as :data:`SCAN_STAMP` and then these
#: lines; when a batch ends (or stops) it writes them into :data:`SCAN_STAMP` and removes
#: this file.
SCAN_JOURNAL = ".audio-embed-scan.jsonl"
#: The lock file in the output folder, held by a scan from its first look at the folder
#: to its end: a second scan into the folder meanwhile stops at once.
SCAN_LOCK = ".audio-embed-scan.lock"


@attrs.frozen
class Input:
    """One file to process: its path and its name relative to the output folder."""

    path: Path
    rel: Path


def collect_inputs(
    items: Sequence[str | os.PathLike[str]],
) -> tuple[list[Input], list[tuple[str, str]]]:
    """Files as given, and media files found recursively in directories.

    Returns the inputs and ``(item, reason)`` for arguments that name nothing.
    Hidden files and folders (a leading dot) are skipped inside directories.
    """
    items = path_list(items, "collect_inputs")
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
                missing.append((str(item), "no audio or video files in this folder"))
            for f in hits:
                add(f, f.relative_to(p))
        elif p.exists():
            add(p, Path(p.name))
        else:
            missing.append((str(item), "no such file or directory"))
    return found, missing


def output_paths(
    inputs: Sequence[Input],
    out_dir: Path,
    suffix: str,
    reserved: Sequence[str] = (),
    known: Mapping[str, str] | None = None,
) -> dict[Path, Path]:
    """``out_dir/<relative folder>/<stem><suffix>`` per input, unique.

    When two inputs share a stem (``a.wav`` and ``a.mp4``), both use their full
    name (``a.wav.csv``, ``a.mp4.csv``), and a number is added if still needed.
    Names are compared regardless of case (:func:`_fold`): ``day1/Clip.wav`` and
    ``day2/clip.wav`` give ``Clip.wav.csv`` and ``clip.wav-2.csv``, never two results
    written to one file on a case-insensitive file system. ``known`` (a recording's
    resolved path, :func:`os.path.normcase`-d, to a name in ``out_dir``): the names an
    earlier batch gave, kept for those recordings whatever the order or company they
    come in now (before: ``[day2/x.wav, day1/x.wav]`` after ``[day1/x.wav,
    day2/x.wav]`` swapped the names, and ``--skip-existing`` refused the batch).
    """

    def safe(rel: Path) -> Path:  # never write outside out_dir
        return Path(rel.name) if rel.is_absolute() or ".." in rel.parts else rel

    inputs = [Input(inp.path, safe(inp.rel)) for inp in inputs]
    stems: dict[str, int] = defaultdict(int)
    for inp in inputs:
        stems[_fold(inp.rel.parent / (inp.rel.stem + suffix))] += 1
    taken = {_fold(Path(r)) for r in reserved}
    out: dict[Path, Path] = {}
    for inp in inputs:
        name = (known or {}).get(os.path.normcase(os.path.realpath(inp.path)))
        if name is not None and _fold(name) not in taken:
            taken.add(_fold(name))
            out[inp.path] = out_dir / safe(Path(name))
    for inp in inputs:
        if inp.path in out:
            continue
        rel = inp.rel.parent / (inp.rel.stem + suffix)
        if stems[_fold(rel)] > 1 or _fold(rel) in taken:
            rel = inp.rel.parent / (inp.rel.name + suffix)
        base, n = rel, 2
        while _fold(rel) in taken:
            rel = base.parent / f"{base.name[: -len(suffix)]}-{n}{suffix}"
            n += 1
        taken.add(_fold(rel))
        out[inp.path] = out_dir / rel
    return out


def _fold(rel: Path | str) -> str:
    """A name in the output folder as a case-insensitive file system (macOS, Windows)
    compares it: ``Clip.csv`` and ``clip.csv`` (or ``A/x.csv`` and ``a/x.csv``) are one
    file there, so :func:`output_paths` never gives them to two recordings, whatever the
    file system the scan runs on."""
    import unicodedata

    name = rel if isinstance(rel, str) else rel.as_posix()  # keys: already "/"-separated
    return unicodedata.normalize("NFC", name).casefold()


def _check_format(_obj: object, _attr: object, fmt: str) -> None:
    from audio_embed.formats import result_format

    result_format(fmt)  # InvalidInputError naming the registered formats


def _check_threshold(_obj: object, _attr: object, threshold: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"The 'threshold' must be in [0, 1]. Got {threshold!r} instead.")


@attrs.frozen(kw_only=True)
class BatchSettings:
    """How a batch scan writes its results; the same for a local scan
    (:func:`scan_to_folder`), a scan on Ray
    (:func:`audio_embed.distributed.scan_dataset`) and ``audio-embed scan``.

    Args:
        fmt: format of the per-file results (``csv``, ``json``, ``audacity``, ``raven``,
            ``srt``, ``vtt``, or one registered with
            :func:`~audio_embed.formats.register_format`).
        label: label text in Audacity/Raven output and subtitle cues.
        threshold: detection threshold; None: the scanner's.
        skip_existing: read back the results already in the output folder
            instead of scanning those inputs again.
        keep_results: keep each :class:`~audio_embed.scanner.ScanResult` in the
            report (:meth:`BatchReport.results`).

    A bad ``fmt`` or ``threshold`` raises
    :class:`~audio_embed.errors.InvalidInputError` here, before any work.
    """

    fmt: OutputFormat = attrs.field(default="csv", validator=_check_format)
    label: str = "target"
    threshold: float | None = attrs.field(default=None, validator=_check_threshold)
    skip_existing: bool = False
    keep_results: bool = False


#: What happened to one input: ``missing`` (the argument names no file),
#: ``skipped`` (its result exists and was read back), ``rescan`` (its result
#: exists but is unreadable, so it is scanned again), ``done`` or ``failed``.
OutcomeKind = Literal["missing", "skipped", "rescan", "done", "failed"]


@attrs.frozen
class FileOutcome:
    """One input of a batch and what became of it (see :data:`OutcomeKind`)."""

    kind: OutcomeKind
    item: str
    output: Path | None = None
    detections: tuple[Detection, ...] = ()
    reason: str | None = None
    result: ScanResult | None = None
    #: ``"done"``: the share of the recording the detections cover.
    flagged: float | None = None


@attrs.frozen
class BatchReport:
    """What :func:`scan_to_folder` did: inputs found, and per input its outcome."""

    inputs: tuple[Input, ...]
    done: tuple[FileOutcome, ...]
    skipped: tuple[FileOutcome, ...]
    failed: tuple[FileOutcome, ...]
    threshold: float
    combined: Path | None
    #: Earlier results in the folder (one per recording) that :data:`COMBINED_CSV` leaves
    #: out: written at another threshold than this batch's.
    left_out: int = 0

    @property
    def total(self) -> int:
        """Inputs found plus the arguments that named nothing."""
        return len(self.inputs) + sum(f.kind == "missing" for f in self.failed)

    @property
    def n_detections(self) -> int:
        """Detections in the files scanned by this call (not in skipped ones)."""
        return sum(len(f.detections) for f in self.done)

    @property
    def ok(self) -> bool:
        return not self.failed

    def results(self) -> dict[str, ScanResult]:
        """The scan results by input path (only with ``keep_results=True``)."""
        return {f.item: f.result for f in self.done if f.result is not None}


class BatchCancelled(Cancelled):
    """A batch stopped by its :class:`~audio_embed.progress.CancelToken`.

    ``report`` holds what finished before the stop: the files done (each
    result file complete), skipped and failed; the inputs in none of them were
    not scanned, and no combined CSV was written. Rerun with
    ``skip_existing=True`` to finish the batch.
    """

    def __init__(self, report: BatchReport) -> None:
        self.report = report
        finished = len(report.done) + len(report.skipped) + len(report.failed)
        super().__init__(
            f"The batch was cancelled after {finished} of {report.total} input(s) "
            f"({len(report.done)} scanned, {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed); their results are complete."
        )


def run_many(
    many: Callable[..., Iterator[tuple[str, T | AudioEmbedError]]],
    inputs: Sequence[Input],
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Generator[tuple[Input, T | Exception], None, None]:
    """Run ``many`` (``Scanner.scan_many``, ``Scanner.sliding_embeddings_many`` or
    any callable like them) over every input; yields ``(input, result)`` or
    ``(input, exception)`` as ``many`` yields ``(path, result)``.

    Results are matched to inputs by path (``str(input.path)``), so ``many``
    may yield in any order (a distributed runner yields in completion order).
    A file that fails yields its exception and the others go on: an unexpected
    error stops ``many``, which is restarted without the first input not yet
    reported (the file an in-order runner was working on); an input ``many``
    never reports yields an :class:`~audio_embed.errors.AudioEmbedError`.
    Cancellation raises :class:`~audio_embed.errors.Cancelled`. ``progress``
    also gets ``ProgressEvent("files", path, done, total, "file")`` before the
    first file (``done`` 0, path empty) and after each one.
    """
    pending = dict(enumerate(inputs))  # in input order; matched by path below
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, inp in pending.items():
        by_path[str(inp.path)].append(i)
    total = len(pending)

    def take(path: str | None) -> Input:
        if path is None:
            i = next(iter(pending))
        elif by_path.get(path):
            i = by_path[path][0]
        else:
            raise ValueError(f"{many!r} yielded {path!r}, which is not one of its inputs.")
        inp = pending.pop(i)
        by_path[str(inp.path)].remove(i)
        if progress is not None:
            progress(ProgressEvent("files", str(inp.path), total - len(pending), total, "file"))
        return inp

    if progress is not None:
        progress(ProgressEvent("files", "", 0, total, "file"))
    while pending:
        results = iter(
            many([inp.path for inp in pending.values()], progress=progress, cancel=cancel)
        )
        try:
            while True:
                try:
                    path, result = next(results)
                except StopIteration:
                    for inp in list(pending.values()):
                        no_result = AudioEmbedError(f"{inp.path}: no result came back.")
                        yield take(str(inp.path)), no_result
                    return
                except Cancelled:
                    raise
                except Exception as exc:  # a bad file must not lose the others' work
                    if not pending:
                        raise
                    yield take(None), exc
                    break
                yield take(str(path)), result
        finally:
            # Stop the runner now (a distributed one releases its workers), not when
            # the garbage collector gets to it: this runs on errors, cancellation and
            # when the caller stops early (close() or Ctrl-C while it writes a result).
            close = getattr(results, "close", None)
            if close is not None:
                close()


def scan_to_folder(
    scanner: ScansMany,
    items: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    many: Callable[..., Iterator[tuple[str, ScanResult | AudioEmbedError]]] | None = None,
) -> BatchReport:
    """Scan files and folders (searched recursively, see :func:`collect_inputs`)
    into ``out_dir``: one result file per input in ``settings.fmt`` (named by
    :func:`output_paths`), and :data:`COMBINED_CSV` with every detection of the
    results in ``out_dir`` at this batch's threshold (this batch's and those of earlier
    scans into it that :data:`SCAN_STAMP` records; earlier ones of another threshold are
    left out, with a warning and :attr:`BatchReport.left_out`; see
    :func:`_write_combined`).

    One scan writes into a folder at a time: the batch holds :data:`SCAN_LOCK` from
    its first look at ``out_dir`` to its end, and another scan holding it is an
    :class:`~audio_embed.errors.InvalidInputError` at once, before anything is read or
    written. Each result is recorded as it is written (a line of :data:`SCAN_JOURNAL`,
    written into :data:`SCAN_STAMP` when the batch ends), so a scan killed outright
    leaves a record of every result it wrote.

    A result file names its recording by its absolute path (CSV, JSON), and
    :data:`SCAN_STAMP` records it for every format: a result of another recording
    of the same name in ``out_dir`` stops the batch before any scan
    (:class:`~audio_embed.errors.InvalidInputError`), and with ``skip_existing`` a
    recording changed since its result was written is scanned again.

    A file that cannot be read is reported (``failed``) and the others go on;
    ``settings`` (:class:`BatchSettings`, default: CSV at the scanner's
    threshold) says how results are written and whether existing ones are
    read back instead of scanned again. ``on_file`` hears about each input as
    it finishes. ``many`` replaces ``scanner.scan_many`` (e.g. a distributed
    runner; see :func:`run_many`). Cancelling raises :class:`BatchCancelled`
    (a :class:`~audio_embed.errors.Cancelled`) whose ``report`` says what
    finished, leaving only complete files; a ``KeyboardInterrupt`` leaves only
    complete files too, and stops the runner before it propagates. An ``out_dir``
    that is an existing file, or cannot be made or written to, is an
    :class:`~audio_embed.errors.InvalidInputError` before anything is scanned.
    """
    from audio_embed.formats import FORMAT_SUFFIXES, write_detections

    settings = BatchSettings() if settings is None else settings
    fmt, label = settings.fmt, settings.label
    threshold = scanner.scan_threshold if settings.threshold is None else settings.threshold
    stream = _audio_stream_of(scanner)
    out = Path(out_dir)
    check_output_folder(out)  # before any scan, not when the first result is written
    outcomes: list[FileOutcome] = []

    def tell(outcome: FileOutcome) -> None:
        if on_file is not None:
            on_file(outcome)
        if outcome.kind != "rescan":
            keep = settings.keep_results
            outcomes.append(outcome if keep else attrs.evolve(outcome, result=None))

    with _own_folder(out) as hold:  # from the first look at the folder to its end
        inputs, missing = collect_inputs(path_list(items, "scan_to_folder"))
        for item, reason in missing:
            tell(FileOutcome("missing", item, reason=reason))
        stamp = _read_stamp(out)
        targets = output_paths(
            inputs,
            out,
            FORMAT_SUFFIXES[fmt],
            reserved=(COMBINED_CSV, SCAN_STAMP, SCAN_JOURNAL, SCAN_LOCK),
            known=_names_given(out, stamp, fmt),
        )
        _one_key_per_file(out, stamp, targets.values())
        earlier = _read_earlier(targets.values(), fmt)  # each existing result read once
        _refuse_beside(inputs, targets, earlier)
        _refuse_other_recordings(out, inputs, targets, earlier, stamp.made)
        _refuse_foreign_combined(out / COMBINED_CSV)
        todo = _existing_results(out, inputs, targets, earlier, stamp.made, settings, tell, stream)
        # An earlier batch's combined CSV would contradict the result files this one
        # replaces if it stops early (cancelled) or writes none (every file failed): it
        # goes now and is written anew when the batch finishes.
        (out / COMBINED_CSV).unlink(missing_ok=True)
        if settings.skip_existing:
            _warn_other_thresholds(
                out, stamp.thresholds, [o for o in outcomes if o.kind == "skipped"], threshold
            )
        kept = _kept_recordings(out, inputs, targets, outcomes, stamp.made, fmt)
        stamp.made.update(kept)  # kept results this batch now knows the recording of
        if kept or (out / SCAN_JOURNAL).exists():  # (a killed scan's lines: compacted)
            hold.wrote = True
            _write_stamp(out, stamp)
        runner = scanner.scan_many if many is None else many
        # a runner that does not say (Ray's) is taken to normalise, as scanners do by default
        normalises = getattr(scanner, "normalization", "recording") != "none"
        short: list[tuple[str, float]] = []
        # each recording as it was before its scan: one that changes later is scanned again
        made = {inp.path: _made(inp.path, fmt) for inp in todo}
        unrecorded = False  # results the whole record does not name yet
        try:
            with contextlib.closing(
                run_many(runner, todo, progress=progress, cancel=cancel)
            ) as runs:
                for inp, result in runs:
                    if isinstance(result, Exception):
                        log.info("Scan %s failed", inp.path, exc_info=result)
                        tell(FileOutcome("failed", str(inp.path), reason=describe_error(result)))
                        continue
                    dets = result.detections(threshold)
                    target = targets[inp.path]
                    hold.wrote = True
                    write_detections(target, dets, fmt, file=_named(inp.path), label=label)
                    # recorded with each result: a scan killed outright (out of memory, a
                    # power cut) leaves a record of every result it wrote
                    key = _stamp_key(out, target)
                    stamp.thresholds[key] = threshold
                    stamp.made[key] = attrs.evolve(
                        _with_fingerprint(made[inp.path], inp.path), audio_stream=stream
                    )
                    _journal(out, key, threshold, stamp.made[key])
                    unrecorded = True
                    for warning in result.warnings:  # once per recording, from any runner
                        log.warning("%s", warning)
                    share = flagged_share(dets, result.duration)
                    if share > FLAGGED_WARNING_SHARE:
                        log.warning(
                            "%s: the detections cover %.0f%% of the audio at threshold %s. "
                            "The threshold is probably too low for these recordings (with "
                            "few markers the cross-validated threshold is unreliable): mark "
                            "more examples, or use a higher threshold (--threshold).",
                            inp.path,
                            100 * share,
                            format_threshold(threshold),
                        )
                    if result.duration < SHORT_FILE_SECONDS and normalises:
                        short.append((str(inp.path), result.duration))
                    done = FileOutcome(
                        "done", str(inp.path), target, tuple(dets), result=result, flagged=share
                    )
                    tell(done)
            if cancel is not None:
                cancel.check()
        except Cancelled as exc:
            raise BatchCancelled(_report(inputs, outcomes, threshold, None)) from exc
        finally:
            if unrecorded:  # also when stopped (Ctrl-C, cancelled)
                _write_stamp(out, stamp)
        if short:  # once per batch, not once per clip of a sound-effects library
            n_done = sum(o.kind == "done" for o in outcomes)
            log.warning("%s", short_file_advice(len(short), n_done, *short[0]))
        combined, left_out = _write_combined(
            out, inputs, targets, outcomes, label, stamp, threshold
        )
        return _report(inputs, outcomes, threshold, combined, left_out)


@attrs.define
class _Hold:
    """A batch's hold on its output folder; ``wrote``: it has written a file there."""

    wrote: bool = False


@contextlib.contextmanager
def _own_folder(out: Path) -> Iterator[_Hold]:
    """Hold :data:`SCAN_LOCK` in ``out`` for a whole batch: one scan writes into a folder
    at a time. Another scan holding it is an
    :class:`~audio_embed.errors.InvalidInputError` at once, before this one reads or
    writes anything there. The lock is the operating system's (``filelock``): it goes
    with the process that held it, so a lock file a killed scan left does not block. A
    batch that writes nothing (refused by its start-up checks, every input missing)
    leaves the folder as it found it: a lock file or folder it made is removed."""
    from filelock import FileLock, Timeout

    made_dir = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / SCAN_LOCK
    made_lock = not path.exists()
    lock = FileLock(path)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise InvalidInputError(
            f"Another scan is writing into {out}; wait for it to finish, or give this one "
            "another --out folder."
        ) from None
    hold = _Hold()
    try:
        yield hold
    finally:
        if not hold.wrote:
            with contextlib.suppress(OSError):
                if made_lock:
                    path.unlink()  # while held; nothing is written after it
                if made_dir:
                    out.rmdir()
        lock.release()


def _named(recording: Path) -> str:
    """A recording as its results name it: its absolute path (not resolved, so a
    linked folder keeps the name it was given), whichever folder the scan ran in."""
    return os.path.abspath(recording)


@attrs.frozen
class _Made:
    """What :data:`SCAN_STAMP` records of the recording a result file holds the
    detections of: its name in the result (:func:`_named`), its resolved path (who
    it is), its size and modification time when it was scanned (unknown: None), the
    result's format, when it was written (``time.time()``), its content's
    :func:`_fingerprint` and the audio stream it was decoded from (0, 1, …, ``"mix"``)
    (each None: not known, a record from before it was kept)."""

    file: str
    recording: str
    fmt: str
    size: int | None
    mtime_ns: int | None
    written: float = 0.0
    fingerprint: str | None = None
    audio_stream: int | str | None = None

    def same_file(self, path: Path) -> bool:
        """``path`` is the file recorded (the same resolved path, or a link to it)."""
        if os.path.normcase(self.recording) == os.path.normcase(os.path.realpath(path)):
            return True
        return _same_path(Path(self.recording), path)

    def same_content(self, other: _Made) -> bool:
        """The same size and modification time (to 2 s: a FAT card's clock) as
        ``other``; unknown on either side: False."""
        if None in (self.size, self.mtime_ns, other.size, other.mtime_ns):
            return False
        assert self.mtime_ns is not None and other.mtime_ns is not None
        return self.size == other.size and abs(self.mtime_ns - other.mtime_ns) <= 2_000_000_000


def _made(recording: Path, fmt: str, *, fingerprint: bool = False) -> _Made:
    size: int | None = None
    mtime_ns: int | None = None
    with contextlib.suppress(OSError):
        st = recording.stat()
        size, mtime_ns = st.st_size, st.st_mtime_ns
    real = os.path.realpath(recording)
    mark = _fingerprint(recording) if fingerprint else None
    return _Made(_named(recording), real, fmt, size, mtime_ns, fingerprint=mark)


#: Bytes: :func:`_fingerprint` hashes this much at the start, middle and end of a file.
_FINGERPRINT_PART = 1 << 20


def _fingerprint(path: Path) -> str | None:
    """A cheap mark of a recording's content, by which a copy that lost its modification
    time (``cp`` without ``-p``, a download) is known once the original is gone: SHA-256
    of its size and its first, middle and last MiB (the whole file up to 3 MiB), about
    3 ms. None: it cannot be read."""
    import hashlib

    part = _FINGERPRINT_PART
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            digest = hashlib.sha256(f"{size}:".encode())
            if size <= 3 * part:
                digest.update(fh.read())
            else:
                for at in (0, (size - part) // 2, size - part):
                    fh.seek(at)
                    digest.update(fh.read(part))
    except OSError:
        return None
    return digest.hexdigest()


@attrs.frozen
class _Stamp:
    """:data:`SCAN_STAMP`: per result file (its path in the folder, ``/``-separated)
    the threshold it was written at and the recording it holds."""

    thresholds: dict[str, float]
    made: dict[str, _Made]


def _names_given(out: Path, stamp: _Stamp, fmt: str) -> dict[str, str]:
    """The result name (in ``fmt``) that :data:`SCAN_STAMP` records for each recording
    whose result is still in ``out`` (the one written last, if several), for
    :func:`output_paths`."""
    names: dict[str, tuple[float, str]] = {}
    for key, made in stamp.made.items():
        who = os.path.normcase(made.recording)
        if made.fmt == fmt and (out / key).is_file() and made.written >= names.get(who, (-1.0,))[0]:
            names[who] = (made.written, key)
    return {who: key for who, (_, key) in names.items()}


def _stamp_key(out: Path, target: Path) -> str:
    return target.relative_to(out).as_posix()


def _one_key_per_file(out: Path, stamp: _Stamp, targets: Iterable[Path]) -> None:
    """Keys of ``stamp`` that differ only in case but name one file (a case-insensitive
    file system: an earlier scan's ``Clip.txt`` is the ``clip.txt`` this one writes)
    become one: the entry written last, under the name this batch gives the file (else
    that entry's), so that the checks know the recording the file holds and
    :data:`COMBINED_CSV` never lists one file as the result of two recordings. A key of
    the name's file that is not there is dropped (once written, it would be this
    batch's file). On a case-sensitive file system the names are other files: kept."""
    ours = {_fold(k): k for k in (_stamp_key(out, t) for t in targets)}
    groups: dict[str, set[str]] = defaultdict(set)
    for key in (*stamp.made, *stamp.thresholds):
        groups[_fold(key)].add(key)
    for fold, keys in groups.items():
        mine = ours.get(fold)
        if mine is not None:
            keys.add(mine)
        if len(keys) < 2:
            continue
        if mine is not None and not (out / mine).exists():
            for key in keys - {mine}:
                if not (out / key).exists():
                    stamp.made.pop(key, None)
                    stamp.thresholds.pop(key, None)
            continue
        first = mine or next((k for k in sorted(keys) if (out / k).exists()), None)
        if first is None:
            continue
        same = [k for k in sorted(keys) if k == first or _same_path(out / first, out / k)]
        if len(same) < 2:
            continue
        last = max(same, key=lambda k: stamp.made[k].written if k in stamp.made else -1.0)
        made, at = stamp.made.get(last), stamp.thresholds.get(last)
        for key in same:
            stamp.made.pop(key, None)
            stamp.thresholds.pop(key, None)
        keep = mine or last
        if made is not None:
            stamp.made[keep] = made
        if at is not None:
            stamp.thresholds[keep] = at


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


_BAD_ENTRY = (ValueError, TypeError, KeyError, AttributeError)


def _read_stamp(out: Path) -> _Stamp:
    """What :data:`SCAN_STAMP` records (empty when there is none or it cannot be read: a
    folder from before the stamp; no recordings: a stamp from before they were kept,
    or an entry that cannot be read), and then :data:`SCAN_JOURNAL` (a line that cannot
    be read, such as one a killed scan left half-written, is passed over)."""
    import json

    stamp = _Stamp({}, {})
    try:
        data = json.loads((out / SCAN_STAMP).read_text(encoding="utf-8"))
        stamp.thresholds.update({str(k): float(v) for k, v in data["thresholds"].items()})
        results = data.get("results")
        entries = list(results.items()) if isinstance(results, dict) else []
    except (OSError, *_BAD_ENTRY):
        entries = []
    for key, e in entries:
        if not _inside(str(key)):  # a hand-edited record: never read outside the folder
            continue
        with contextlib.suppress(*_BAD_ENTRY):
            stamp.made[str(key)] = _parse_made(e)
    try:
        lines = (out / SCAN_JOURNAL).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        lines = []
    for line in lines:
        with contextlib.suppress(*_BAD_ENTRY):
            e = json.loads(line)
            key, at, was = str(e["key"]), float(e["threshold"]), _parse_made(e["result"])
            if _inside(key):
                stamp.thresholds[key], stamp.made[key] = at, was
    return stamp


def _parse_made(e: Any) -> _Made:
    size, mtime, mark = e.get("size"), e.get("mtime_ns"), e.get("fingerprint")
    stream = e.get("audio_stream")
    return _Made(
        file=str(e["file"]),
        recording=str(e["recording"]),
        fmt=str(e["format"]),
        size=None if size is None else int(size),
        mtime_ns=None if mtime is None else int(mtime),
        written=float(e.get("written") or 0.0),
        fingerprint=None if mark is None else str(mark),
        audio_stream=stream if stream == "mix" or stream is None else int(stream),
    )


def _entry(m: _Made) -> dict[str, object]:
    return {
        "file": m.file,
        "recording": m.recording,
        "format": m.fmt,
        "size": m.size,
        "mtime_ns": m.mtime_ns,
        "written": m.written,
        **({} if m.fingerprint is None else {"fingerprint": m.fingerprint}),
        **({} if m.audio_stream is None else {"audio_stream": m.audio_stream}),
    }


def _journal(out: Path, key: str, threshold: float, made: _Made) -> None:
    """Append a result's record to :data:`SCAN_JOURNAL`. A failure is a warning: the
    batch writes it into :data:`SCAN_STAMP` when it ends."""
    import json

    line = json.dumps({"key": key, "threshold": threshold, "result": _entry(made)})
    try:
        with (out / SCAN_JOURNAL).open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        log.warning("Could not write %s: %s", out / SCAN_JOURNAL, exc)


def _inside(key: str) -> bool:
    """``key`` names a file inside the output folder (as :func:`output_paths` makes them)."""
    path = Path(key)
    return bool(path.parts) and not path.anchor and ".." not in path.parts


def _write_stamp(out: Path, stamp: _Stamp) -> None:
    """Write :data:`SCAN_STAMP` (all or nothing), then remove :data:`SCAN_JOURNAL` (its
    lines are in ``stamp``). A failure is a warning (the journal is kept): the results
    are written, only the next scan's checks and :data:`COMBINED_CSV` lose them."""
    import json

    from audio_embed.formats import atomic_write_text

    results = {k: _entry(m) for k, m in sorted(stamp.made.items())}
    thresholds = dict(sorted(stamp.thresholds.items()))
    try:  # no indent: 32 MB for 100,000 results
        atomic_write_text(
            out / SCAN_STAMP, json.dumps({"thresholds": thresholds, "results": results}) + "\n"
        )
    except OSError as exc:
        log.warning("Could not write %s: %s", out / SCAN_STAMP, exc)
        return
    try:
        (out / SCAN_JOURNAL).unlink(missing_ok=True)
    except OSError as exc:  # its lines would be read again over later records
        log.warning("Could not remove %s (delete it by hand): %s", out / SCAN_JOURNAL, exc)


def _kept_recordings(
    out: Path,
    inputs: Sequence[Input],
    targets: dict[Path, Path],
    outcomes: Sequence[FileOutcome],
    made: dict[str, _Made],
    fmt: str,
) -> dict[str, _Made]:
    """The results kept (``skip_existing``) whose recording :data:`SCAN_STAMP` does not
    name (a folder from before it did) or names at a path it has since been moved from:
    this batch reports them as that input's, so the stamp records it. A moved one keeps
    the :func:`_fingerprint` recorded (it was known as the same content); none is taken
    of a recording the stamp did not name (a resume reads no more than before)."""
    kept = {o.item for o in outcomes if o.kind == "skipped"}
    out_made = {}
    for inp in inputs:
        if str(inp.path) not in kept:
            continue
        key = _stamp_key(out, targets[inp.path])
        was = made.get(key)
        if was is None:
            out_made[key] = attrs.evolve(_made(inp.path, fmt), written=time.time())
        elif not was.same_file(inp.path):
            now = _made(inp.path, fmt)
            out_made[key] = attrs.evolve(
                now, written=was.written, fingerprint=was.fingerprint, audio_stream=was.audio_stream
            )
    return out_made


def _warn_other_thresholds(
    out: Path, stamp: dict[str, float], kept: Sequence[FileOutcome], threshold: float
) -> None:
    """A warning when ``skip_existing`` keeps results written at another threshold
    (another scanner, or another ``--threshold``): the batch would mix them."""
    other = {}
    for o in kept:
        was = stamp.get(_stamp_key(out, o.output)) if o.output is not None else None
        if was is not None and abs(was - threshold) > 1e-9:
            other[o.output] = was
    if not other:
        return
    first, was = next(iter(other.items()))
    values = ", ".join(format_threshold(t, [threshold]) for t in sorted(set(other.values())))
    log.warning(
        "%d of the %d result(s) kept (skip_existing) were written at threshold %s, this "
        "scan uses %s (another scanner or --threshold), e.g. %s: %s mixes them. Scan "
        "again without skip_existing (--skip-existing) to redo them all at one threshold.",
        len(other),
        len(kept),
        values,
        format_threshold(threshold, other.values()),
        first,
        COMBINED_CSV,
    )


def _report(
    inputs: Sequence[Input],
    outcomes: Sequence[FileOutcome],
    threshold: float,
    combined: Path | None,
    left_out: int = 0,
) -> BatchReport:
    return BatchReport(
        inputs=tuple(inputs),
        done=tuple(o for o in outcomes if o.kind == "done"),
        skipped=tuple(o for o in outcomes if o.kind == "skipped"),
        failed=tuple(o for o in outcomes if o.kind in ("missing", "failed")),
        threshold=threshold,
        combined=combined,
        left_out=left_out,
    )


@attrs.frozen
class _Earlier:
    """An existing file of a result's name in the output folder, read once."""

    detections: tuple[Detection, ...] | None  # None: not a result in the format
    error: str = ""
    names: frozenset[str] = frozenset()  # the recordings a CSV or JSON result names
    empty: bool = False


def _read_earlier(targets: Iterable[Path], fmt: OutputFormat) -> dict[Path, _Earlier]:
    """The existing files among ``targets``, each read back once as a result in ``fmt``."""
    from audio_embed.formats import read_result

    out = {}
    for target in targets:
        if not target.exists():
            continue
        empty = target.is_file() and target.stat().st_size == 0
        try:
            dets, names = read_result(target, fmt)
        except ResultFileError as exc:
            out[target] = _Earlier(None, str(exc), empty=empty)
        else:
            out[target] = _Earlier(tuple(dets), names=names, empty=empty)
    return out


def refuse_beside_recordings(
    inputs: Sequence[Input], targets: dict[Path, Path], fmt: OutputFormat
) -> None:
    """An output folder that is a recording's own folder, where its result would replace
    an existing file of the result's name that is not an earlier result in ``fmt``:
    that file may be the person's own labels (``rec.wav`` + ``rec.txt`` is how
    ``train`` finds Audacity labels), so nothing is scanned. An earlier result (it
    reads back as one) is replaced, or kept with ``skip_existing``."""
    _refuse_beside(inputs, targets, _read_earlier(targets.values(), fmt))


def _refuse_beside(
    inputs: Sequence[Input], targets: dict[Path, Path], earlier: dict[Path, _Earlier]
) -> None:
    clash = []
    for inp in inputs:
        found = earlier.get(targets[inp.path])
        if (  # an empty file holds nothing to lose
            found is not None
            and found.detections is None
            and not found.empty
            and targets[inp.path].parent.resolve() == inp.path.parent.resolve()
        ):
            clash.append((inp.path, targets[inp.path]))
    if clash:
        (audio, target), more = clash[0], len(clash) - 1
        raise InvalidInputError(
            f"{target} exists next to its recording {audio.name}"
            + (f" (and {more} more)" if more else "")
            + ": it is not an earlier scan result, it may be that recording's labels (train "
            "reads rec.wav + rec.txt) or subtitles (rec.srt), and its scan result would "
            "replace it. Write the "
            "results to another folder (--out), or move the file away."
        )


def _refuse_foreign_combined(path: Path) -> None:
    """A ``detections.csv`` in the output folder that is not an earlier batch's combined
    CSV (another tool's table, a person's list) would be replaced: nothing is scanned."""
    if not path.is_file():
        return
    with path.open("rb") as fh:
        head = fh.read(4096).decode("utf-8", "replace").lstrip("\ufeff")
    first = head.splitlines()[0].strip() if head.strip() else ""
    if first in ("", "file,start,end,peak,score"):
        return
    raise InvalidInputError(
        f"{path} exists and is not the combined detections of an earlier scan (it starts "
        f"{first[:60]!r}); a scan writes every detection there and would replace it. "
        "Write the results to another folder (--out), or move the file away."
    )


def _existing_results(
    out: Path,
    inputs: Sequence[Input],
    targets: dict[Path, Path],
    earlier: dict[Path, _Earlier],
    made: dict[str, _Made],
    settings: BatchSettings,
    tell: Callable[[FileOutcome], None],
    stream: int | str = 0,
) -> list[Input]:
    """The inputs to scan; with ``skip_existing``, the others' results as read back. A
    result whose recording has changed since it was scanned (another size or
    modification time than :data:`SCAN_STAMP` records: re-recorded, replaced, edited),
    or that :data:`SCAN_STAMP` records as decoded from another audio stream than
    ``stream`` (the first scan without ``--audio-stream``, this one with it), is scanned
    again."""
    todo = []
    for inp in inputs:
        target = targets[inp.path]
        found = earlier.get(target)
        if settings.skip_existing and found is not None:
            was = made.get(_stamp_key(out, target))
            if found.detections is None:
                tell(FileOutcome("rescan", str(inp.path), target, reason=found.error))
            elif was is not None and was.same_file(inp.path) and _changed(was, inp.path):
                why = f"{inp.path} has changed since {target} was written (size or time)"
                tell(FileOutcome("rescan", str(inp.path), target, reason=why))
            elif was is not None and was.audio_stream not in (None, stream):
                # `was` is this recording's, at its path or moved (another recording's
                # result of the name stopped the batch: _refuse_other_recordings)
                why = (
                    f"{target} holds the detections of audio stream {was.audio_stream} of "
                    f"{inp.path}; this scan decodes audio stream {stream}"
                )
                tell(FileOutcome("rescan", str(inp.path), target, reason=why))
            else:
                tell(FileOutcome("skipped", str(inp.path), target, found.detections))
                continue
        todo.append(inp)
    return todo


def _audio_stream_of(scanner: object) -> int | str:
    """The audio stream a scanner (or a runner that says, as Ray's does) decodes: 0 for
    the first (its ``audio_stream`` None)."""
    stream = getattr(scanner, "audio_stream", None)
    return 0 if stream is None else stream if isinstance(stream, str) else int(stream)


def _with_fingerprint(was: _Made, recording: Path) -> _Made:
    """``was`` (the recording before its scan) with the time its result is written, and
    the recording's :func:`_fingerprint` when it has not changed since (the same size
    and modification time: the content scanned)."""
    now = _made(recording, was.fmt, fingerprint=True)
    same = (now.size, now.mtime_ns) == (was.size, was.mtime_ns) and was.size is not None
    return attrs.evolve(was, written=time.time(), fingerprint=now.fingerprint if same else None)


def _changed(was: _Made, recording: Path) -> bool:
    """``recording`` is not the file ``was`` records, by the rule a moved file is
    recognised by (:meth:`_Made.same_content`: size, and time to 2 s); unknown: False."""
    now = _made(recording, was.fmt)
    known = None not in (was.size, was.mtime_ns, now.size, now.mtime_ns)
    return known and not was.same_content(now)


def _refuse_other_recordings(
    out: Path,
    inputs: Sequence[Input],
    targets: dict[Path, Path],
    earlier: dict[Path, _Earlier],
    made: dict[str, _Made],
) -> None:
    """A result file in the output folder that holds the detections of another recording
    of the same name (day1/REC0001.WAV, now day2/REC0001.WAV into the same folder) would
    be replaced, or with ``skip_existing`` kept as this one's: nothing is scanned.

    The recording is the one :data:`SCAN_STAMP` records for the result (any format);
    for a result it does not record (a folder from before it did), the one a CSV or
    JSON result names (best-effort, see :func:`_other_recording`)."""
    clash = []
    for inp in inputs:
        target = targets[inp.path]
        found = earlier.get(target)
        if found is None or found.detections is None:
            continue
        was = made.get(_stamp_key(out, target))
        if was is not None:
            other = _other_made(was, inp.path)
        else:
            other = _other_recording(found.names, inp.path)
        if other is not None:
            clash.append((inp.path, target, other))
    if clash:
        (audio, target, other), more = clash[0], len(clash) - 1
        raise InvalidInputError(
            f"{target} holds the detections of another recording, {other}"
            + (f" (and {more} more)" if more else "")
            + f"; scanning {audio} would replace them (or, with --skip-existing, report "
            "them as its own). Give each folder of recordings its own --out folder, or "
            "delete the result to scan the recording again."
        )


def _other_made(was: _Made, recording: Path) -> str | None:
    """The recording ``was`` records, when it is not ``recording``: another file that
    exists, or a file no longer there that ``recording`` is not (moved, it would have
    the size and modification time recorded). None: the same recording."""
    if was.same_file(recording):
        return None
    if os.path.exists(was.recording):
        return was.file
    now = _made(recording, was.fmt)
    if was.same_content(now):  # moved (or its folder renamed)
        return None
    if (  # copied without its modification time, the original gone
        was.fingerprint is not None
        and was.size == now.size
        and was.fingerprint == _fingerprint(recording)
    ):
        return None
    return (
        f"{was.file} (no longer there, and {recording} is not that file moved or copied: "
        "its size, modification time or content differ)"
    )


def _other_recording(names: frozenset[str], recording: Path) -> str | None:
    """The recording among ``names`` (those a CSV or JSON result names; other formats
    name none) that is an existing file other than ``recording`` (another of the same
    name, scanned into the same folder), else None. A named file that is not there
    (moved, named from another working folder, or a name edited by hand) is not held
    against it."""
    for name in sorted(names):
        try:
            if Path(name).exists() and not os.path.samefile(name, recording):
                return name
        except OSError:
            continue
    return None


def _write_combined(
    out: Path,
    inputs: Sequence[Input],
    targets: dict[Path, Path],
    outcomes: Sequence[FileOutcome],
    label: str,
    stamp: _Stamp,
    threshold: float,
) -> tuple[Path | None, int]:
    """Every detection of the results in ``out`` at ``threshold``, one result per
    recording, in one CSV (None, and none written, when no file of this batch has a
    result), and how many earlier results it leaves out (another threshold).

    First this batch's, in input order; then, by result file, those ``stamp`` records
    of other recordings (earlier scans into the folder): for a recording with several
    (two formats), the one written last, left out (with a warning) when it was written at
    another threshold than ``threshold``; a result file no longer there is left out."""
    from audio_embed.formats import atomic_write_text, format_detections, read_result

    by_path = {o.item: o for o in outcomes if o.kind in ("done", "skipped")}
    if not by_path:
        return None, 0

    def rows(detections: Iterable[Detection], file: str) -> str:
        text = format_detections(list(detections), "csv", file=file, label=label)
        return text.split("\n", 1)[1].replace(",nan,", ",,")

    parts = ["file,start,end,peak,score\n"]
    ours: set[str] = set()  # this batch's recordings (resolved)
    keys: set[str] = set()
    for inp in inputs:
        outcome = by_path.get(str(inp.path))
        if outcome is None:
            continue
        parts.append(rows(outcome.detections, _named(inp.path)))
        ours.add(os.path.normcase(os.path.realpath(inp.path)))
        keys.add(_stamp_key(out, targets[inp.path]))
    latest: dict[str, tuple[str, _Made]] = {}
    for key, was in stamp.made.items():
        recording = os.path.normcase(was.recording)
        if key in keys or recording in ours or not (out / key).is_file():
            continue
        if recording not in latest or was.written > latest[recording][1].written:
            latest[recording] = (key, was)
    other: dict[str, float | None] = {}
    for key, was in sorted(latest.values(), key=lambda kw: kw[0]):
        at = stamp.thresholds.get(key)
        if at is None or abs(at - threshold) > 1e-9:
            other[key] = at
            continue
        try:
            detections, _ = read_result(out / key, was.fmt)
        except ResultFileError as exc:
            log.warning("%s leaves it out: %s", COMBINED_CSV, exc)
            continue
        parts.append(rows(detections, was.file))
    if other:
        first = next(iter(other))
        shown = {
            "unknown" if t is None else format_threshold(t, [threshold]) for t in other.values()
        }
        values = ", ".join(sorted(shown))
        log.warning(
            "%s leaves out %d earlier result(s) in %s written at another threshold (%s; this "
            "scan: %s), e.g. %s: scan their recordings again at %s to list them.",
            COMBINED_CSV,
            len(other),
            out,
            values,
            format_threshold(threshold, known := [t for t in other.values() if t is not None]),
            first,
            format_threshold(threshold, known),
        )
    return atomic_write_text(out / COMBINED_CSV, "".join(parts)), len(other)

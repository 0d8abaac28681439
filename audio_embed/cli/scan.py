"""``audio-embed scan``: find the target sound in files and folders."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from audio_embed.batch import (
    COMBINED_CSV,
    BatchCancelled,
    BatchReport,
    BatchSettings,
    FileOutcome,
    ScansMany,
    scan_to_folder,
)
from audio_embed.cli.common import (
    apply_overrides,
    check_scanner_argument,
    load_scanner,
    make_cache,
)
from audio_embed.cli.distributed import ray_settings, runner_kwargs, scanner_command_options
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    positive_int,
    probability,
)
from audio_embed.cli.session import EXIT_FAILURE, PROG, Progress, Run, UsageError
from audio_embed.detect import format_threshold
from audio_embed.formats import list_formats

if TYPE_CHECKING:
    from audio_embed.errors import AudioEmbedError
    from audio_embed.scanner import ScanResult

__all__ = ["add_parser", "run", "scan_and_print"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``scan`` subcommand."""
    p = subparsers.add_parser(
        "scan",
        parents=scanner_command_options(),
        formatter_class=Formatter,
        usage=f"{PROG} scan [options] SCANNER FILE_OR_DIR [FILE_OR_DIR ...] --out DIR\n"
        f"       {PROG} scan [options] --store DIR --profile NAME [--model M] FILE_OR_DIR ... "
        "--out DIR",
        help="find the target sound in files and folders",
        description=(
            "Scan audio and video files (folders are searched recursively) and write one\n"
            "result file per input into --out, named after the input (rec.wav -> rec.csv,\n"
            "rec.json, rec.txt for Audacity, rec.selections.txt for Raven, rec.srt or\n"
            "rec.vtt subtitles for video players and editors; subfolders of a folder\n"
            "argument are kept), plus detections.csv with every detection of the results\n"
            "in --out at this scan's threshold (earlier scans' into it too, one result per\n"
            "recording; results of another threshold are left out, with a warning).\n"
            "A file that cannot be read is reported on stderr and skipped; the others still\n"
            "finish and the exit code is 1. Ctrl-C stops cleanly (exit code 130): results\n"
            "already written are complete, so --skip-existing resumes."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} scan horn.scanner recordings/ --out results/\n"
            f"  {PROG} scan horn.scanner film.mp4 --format audacity --label horn --out results/\n"
            f"  {PROG} scan horn.scanner film.mp4 --format srt --label horn --out results/\n"
            f"  {PROG} scan --store scanners/ --profile horn --model LOGMEL recordings/ "
            "--out results/\n"
            f"  {PROG} scan horn.scanner archive/ --out results/ --ray --skip-existing"
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
        choices=list_formats(),
        default="csv",
        help="format of the per-file results (srt/vtt: a subtitle cue 'label score' per "
        "detection, for video players and editors; a --plugin module may register more: "
        "audio_embed.formats.register_format)",
    )
    p.add_argument(
        "--threshold",
        type=probability,
        metavar="P",
        help="detection threshold (default: the one stored in the scanner)",
    )
    p.add_argument(
        "--label",
        metavar="TEXT",
        help="label text in Audacity/Raven/subtitle output (default: the target's name "
        "saved with the scanner (train --label, or its markers' label texts), else the "
        "profile name with --store, else 'target')",
    )
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip inputs whose result file exists (scanned again: a recording changed "
        "since its result was written, a result that cannot be read back, or one decoded "
        "from another audio stream than this scan's)",
    )
    g = p.add_argument_group("suggestions (active learning)")
    g.add_argument(
        "--suggest",
        type=positive_int,
        metavar="N",
        help="also list the N windows the scanner is least sure about (probability nearest "
        "the threshold, spread over files): the ones to mark next",
    )
    g.add_argument(
        "--markers-out",
        metavar="FILE.csv",
        help="with --suggest: write them as a markers CSV with an empty kind to fill",
    )
    return p


def run(run: Run) -> int:
    args = run.args
    items = list(args.paths)
    if args.store is None:
        if len(items) < 2:
            raise UsageError(
                "Usage: audio-embed scan SCANNER FILES_OR_DIRS... (or --store DIR --profile "
                "NAME [--model M] FILES_OR_DIRS...)."
            )
        args.scanner, items = items[0], items[1:]
        check_scanner_argument(args)
    else:
        args.scanner = None
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1]. Got {args.threshold}.")
    if args.markers_out and not args.suggest:
        raise UsageError("--markers-out goes with --suggest N.")
    if args.markers_out:  # before the scan: never over reviewed markers
        from audio_embed.review import check_review_target

        check_review_target(args.markers_out)
    settings = BatchSettings(
        fmt=args.format,
        label=args.label or "target",
        threshold=args.threshold,
        skip_existing=args.skip_existing,
        keep_results=bool(args.suggest),
    )
    scanner = _scanner(run)
    if not args.label:  # the name saved with the scanner, else the profile's
        store = args.profile if args.store is not None else None
        settings = attrs.evolve(settings, label=_saved_label(scanner) or store or "target")
    many = scanner.scan_many if args.ray else None  # a Ray runner draws its own bar
    rc, report = scan_and_print(run, scanner, items, Path(args.out), settings, many=many)
    if args.suggest:
        from audio_embed.cli.search import suggest

        results = list(report.results().values())
        suggest(run, results, scanner, report.threshold, threshold=report.threshold)
    return rc


def _saved_label(scanner: ScansMany) -> str | None:
    """The target's name saved with the scanner (``train --label``, or its markers'
    label texts); None for a scanner trained without one."""
    from audio_embed.scanner import Scanner

    if isinstance(scanner, Scanner):
        label = (scanner.training_summary or {}).get("label")
    else:  # a RayScanner: from its job
        label = getattr(scanner, "job", {}).get("label")
    return str(label) if label else None


def _scanner(run: Run) -> ScansMany:
    """The scanner, or with --ray the runner that ships it to the workers.

    With --ray and a scanner file (no --store, --model or --batch-size to apply
    first), only the workers build the model: the driver reads the file's
    threshold and sends its bytes."""
    args = run.args
    options = ray_settings(run)
    if options is None:
        scanner, _name = load_scanner(run, cache=make_cache(args))
        apply_overrides(scanner, args)
        return scanner
    from audio_embed.distributed import RayScanner

    if args.store is None and not args.model and not getattr(args, "batch_size", None):
        load: dict[str, Any] = (
            {"allow_mismatch": True} if getattr(args, "allow_mismatch", False) else {}
        )
        if getattr(args, "trust", None):
            load["trusted"] = list(args.trust)
        return RayScanner.from_scanner(
            Path(args.scanner),
            options,
            load_kwargs=load,
            audio_stream=args.audio_stream,
            **runner_kwargs(run),
        )
    scanner, _name = load_scanner(run, cache=None)
    apply_overrides(scanner, args)
    return RayScanner.from_scanner(scanner, options, **runner_kwargs(run))


def scan_and_print(
    run: Run,
    scanner: ScansMany,
    items: Sequence[str],
    out_dir: Path,
    settings: BatchSettings,
    *,
    many: Callable[..., Iterator[tuple[str, ScanResult | AudioEmbedError]]] | None = None,
) -> tuple[int, BatchReport]:
    """:func:`audio_embed.batch.scan_to_folder` (``many``: another runner than
    ``scanner.scan_many``, e.g. a Ray runner, which draws its own progress bar), a
    line per file as it finishes and a summary; returns the exit code and the report."""
    progress = Progress(run, 0, "scan") if run.show_progress and many is None else None
    try:
        report = scan_to_folder(
            scanner,
            items,
            out_dir,
            settings,
            progress=progress,
            cancel=run.cancel,
            on_file=lambda outcome: _print_outcome(run, outcome),
            many=many,
        )
    except BatchCancelled as exc:  # what finished, then the usual "cancelled" exit
        if progress is not None:
            progress.close()
            progress = None
        _print_summary(run, exc.report, out_dir)
        raise
    finally:
        if progress is not None:
            progress.close()
    _print_summary(run, report, out_dir)
    if report.failed:
        run.warn(f"{len(report.failed)} of {report.total} input(s) failed (see above).")
        return EXIT_FAILURE, report
    return 0, report


def _print_outcome(run: Run, o: FileOutcome) -> None:
    if o.kind in ("missing", "failed"):
        run.skipped(o.item, o.reason or "")
    elif o.kind == "skipped":
        run.echo(f"{o.item}: result exists, skipped ({o.output})")
    elif o.kind == "rescan":
        run.warn(f"{o.reason}; scanning {o.item} again.")
    else:
        # a file flagged beyond FLAGGED_WARNING_SHARE: scan_to_folder's log warning says so
        run.echo(f"{o.item}: {len(o.detections)} detection(s) -> {o.output}")


def _print_summary(run: Run, report: BatchReport, out_dir: Path) -> None:
    failed, skipped = len(report.failed), len(report.skipped)
    run.echo(
        f"Scanned {len(report.done)} of {report.total} input(s) at threshold "
        f"{format_threshold(report.threshold)}: {report.n_detections} detection(s)"
        + (f"; {skipped} skipped (result exists)" if skipped else "")
        + (f"; {failed} failed" if failed else "")
        + (f". Combined: {out_dir / COMBINED_CSV}" if report.combined is not None else "")
        + (
            f" ({report.left_out} earlier result(s) of another threshold left out)."
            if report.left_out
            else "."
        )
    )

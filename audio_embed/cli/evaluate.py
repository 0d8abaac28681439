"""``audio-embed evaluate``: measure a scanner on labelled recordings."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audio_embed.batch import Input
from audio_embed.cli.common import apply_overrides, each, load_scanner, make_cache
from audio_embed.cli.distributed import (
    each_on_ray,
    ray_settings,
    runner_kwargs,
    scanner_command_options,
)
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    probability,
)
from audio_embed.cli.session import EXIT_FAILURE, PROG, Run, UsageError
from audio_embed.detect import format_threshold
from audio_embed.errors import AudioEmbedError

if TYPE_CHECKING:
    from audio_embed.evaluation import EvaluationReport, LabelledSet
    from audio_embed.scanner import ScanResult

__all__ = ["add_parser", "check_matplotlib", "print_report", "run", "show_report"]

log = logging.getLogger(__name__)


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        parents=scanner_command_options(),
        formatter_class=Formatter,
        usage=f"{PROG} evaluate [options] SCANNER --labels LABELS.csv --target LABEL\n"
        f"       {PROG} evaluate [options] --store DIR --profile NAME [--model M] "
        "--labels LABELS.csv --target LABEL",
        help="measure a scanner on labelled recordings",
        description=(
            "Scan the files of a labels CSV (split,file,onset,offset,label; file paths are\n"
            "relative to the CSV's folder) and report: event precision, recall and F1 three\n"
            "ways (one-to-one matches at IoU >= 0.3 as DCASE task 5; onset/offset collars as\n"
            "sed_eval; lenient: a labelled event is found when a detection overlaps it, and a\n"
            "detection that overlaps none is a false positive), window ROC AUC and average\n"
            "precision (a window is positive when it overlaps a target event), and\n"
            "calibration (Brier score, expected calibration error)."
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
        type=probability,
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
    return p


def check_matplotlib() -> None:
    """--plot without matplotlib is a usage error (exit code 2) before any work."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "--plot needs matplotlib, which is not installed: pip install 'audio_embed[plot]' "
            "(or pip install matplotlib)."
        )


def run(run: Run) -> int:
    from audio_embed.evaluation import (
        evaluate_results,
        read_labelled_set,
        relative_name,
        trained_on,
    )

    args = run.args
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1]. Got {args.threshold}.")
    if args.plot is not None:
        from audio_embed._io import check_output_folder

        check_matplotlib()
        check_output_folder(args.plot)  # before the scans, not after them
    labelled = read_labelled_set(args.labels, args.target, split=args.split)
    scanner, _name = load_scanner(run, cache=make_cache(args))
    apply_overrides(scanner, args)
    threshold = scanner.scan_threshold if args.threshold is None else args.threshold
    seen = [relative_name(f, labelled.root) for f in trained_on(labelled, scanner.training_summary)]
    if seen:  # before: scored with the others, without a word
        log.warning(
            f"{len(seen)} of the {len(labelled.files)} labelled file(s) are recordings the "
            f"scanner was trained on ({', '.join(seen[:3])}{', …' if len(seen) > 3 else ''})"
            ": it has learnt their marked sounds, so its scores on them are optimistic. "
            "Measure it on recordings it was not trained on (e.g. --split test)."
        )
    results: dict[str, ScanResult] = {}
    failed: list[str] = []
    inputs = [Input(p, Path(p.name)) for p in labelled.files]
    files = each(run, inputs, scanner.scan_many, "evaluate")
    if (options := ray_settings(run)) is not None:
        from audio_embed.distributed import RayScanner

        runner = RayScanner.from_scanner(scanner, options, ordered=True, **runner_kwargs(run))
        files = each_on_ray(run, inputs, runner.scan_many, "evaluate")
    for inp, result, _reason in files:
        if result is None:
            failed.append(str(inp.path))
        else:
            results[str(inp.path)] = result
            for warning in result.warnings:  # once per recording (scan_to_folder's too)
                log.warning("%s", warning)
    run.cancel.check()
    if not results:
        raise AudioEmbedError("No labelled file could be scanned; nothing to evaluate.")
    report = evaluate_results(results, labelled, threshold=threshold, unscanned=failed)
    show_report(
        run,
        report,
        results,
        labelled,
        plot_dir=Path(args.plot) if args.plot is not None else None,
        as_json=args.json,
        extra={"split": args.split, "failed": failed, "trained_on": seen},
    )
    if failed:
        run.warn(f"{len(failed)} labelled file(s) could not be scanned and are not counted.")
        return EXIT_FAILURE
    return 0


def show_report(
    run: Run,
    report: EvaluationReport,
    results: Mapping[str, ScanResult],
    labelled: LabelledSet,
    *,
    plot_dir: Path | None = None,
    as_json: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the report (as text or JSON), draw the plots into ``plot_dir``;
    returns the report as a dict."""
    data = report.as_dict(**(extra or {}))
    if as_json:
        run.echo(json.dumps(data, indent=2))
    else:
        print_report(run, report)
    if plot_dir is not None:
        from audio_embed.plot import plot_results

        pngs = plot_results(
            results, labelled, plot_dir, threshold=report.threshold, cancel=run.cancel
        )
        if not as_json:
            for png in pngs:
                run.echo(f"Plot: {png}")
    return data


def print_report(run: Run, report: EvaluationReport) -> None:
    """The report as text: a line per file, then the metrics."""
    ev, per_file = report.overall, report.per_file
    target, threshold = report.target, report.threshold

    def f(x: float, digits: int = 3) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"

    run.echo(
        f"Target {target!r} at threshold {format_threshold(threshold)}: {len(per_file)} file(s), "
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
    flagged = ev.flagged_minutes
    if ev.minutes:
        run.echo(
            f"Flagged:     {flagged:.1f} of {ev.minutes:.1f} min covered by detections "
            f"({flagged / ev.minutes:.0%})"
        )
    length = f"{ev.mean_detection_seconds:.2f} s" if ev.n_detections else "n/a"
    run.echo(f"Detections:  mean length {length} (labelled events: {ev.mean_event_seconds:.2f} s)")
    run.echo("Events               Precision  Recall  F1")
    for name, kind in (
        ("IoU >= 0.3, 1:1", "iou"),
        ("onset/offset collar", "collar"),
        ("lenient (overlap)", "lenient"),
    ):
        d = ev.as_dict()
        p, r, f1 = (d[f"{kind}_{m}"] for m in ("precision", "recall", "f1"))
        run.echo(f"  {name:<19} {f(p):>9}  {f(r):>6}  {f(f1)}")
    run.echo(f"Window ROC AUC {f(ev.window_auc)}, average precision {f(ev.window_ap)}")
    run.echo(
        f"Calibration: Brier score {f(ev.brier, 4)}, expected calibration error {f(ev.ece, 4)}"
    )

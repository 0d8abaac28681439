"""``audio-embed scan``: find the target sound in files and folders."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from audio_embed.batch import collect_inputs, output_paths
from audio_embed.cli.common import apply_overrides, each, load_scanner, make_cache
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    cache_options,
    common_options,
    model_options,
    probability,
    scanner_source_options,
)
from audio_embed.cli.session import EXIT_FAILURE, PROG, Run, UsageError

if TYPE_CHECKING:
    from audio_embed.scanner import Scanner, ScanResult

__all__ = ["COMBINED_CSV", "add_parser", "run", "scan_to_folder"]

COMBINED_CSV = "detections.csv"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``scan`` subcommand."""
    # scan
    p = subparsers.add_parser(
        "scan",
        parents=[common_options(), scanner_source_options(), model_options(), cache_options()],
        formatter_class=Formatter,
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
        type=probability,
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
    return p


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
    else:
        args.scanner = None
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1]. Got {args.threshold}.")
    scanner, _name = load_scanner(run, cache=make_cache(args))
    apply_overrides(scanner, args)
    label = args.label or (args.profile if args.store is not None else "target")
    threshold = scanner.threshold if args.threshold is None else args.threshold
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

    inputs, missing = collect_inputs(items)
    for item, reason in missing:
        run.warn(f"skipped {item}: {reason}")
    suffix = FORMAT_SUFFIXES[fmt]
    targets = output_paths(inputs, out_dir, suffix, reserved=(COMBINED_CSV,))
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
    for inp, result, _reason in each(run, todo, scanner.scan_many, "scan"):
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

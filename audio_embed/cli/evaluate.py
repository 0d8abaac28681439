"""``audio-embed evaluate``: measure a scanner on labelled recordings."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audio_embed._io import atomic_writer
from audio_embed.batch import Input, output_paths
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
from audio_embed.cli.train import short
from audio_embed.errors import AudioEmbedError

if TYPE_CHECKING:
    from audio_embed.evaluate import LabelledEvent
    from audio_embed.scanner import Detection, ScanResult

__all__ = ["add_parser", "check_matplotlib", "evaluate_results", "events_from_labels", "run"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``evaluate`` subcommand."""
    # evaluate
    p = subparsers.add_parser(
        "evaluate",
        parents=[common_options(), scanner_source_options(), model_options(), cache_options()],
        formatter_class=Formatter,
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


def events_from_labels(
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


def check_matplotlib() -> None:
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
        (short(k, root), evaluate({k: r}, {k: events.get(k, [])}, threshold))
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
        inputs = [Input(Path(k), Path(short(k, root))) for k in results]
        names = output_paths(inputs, plot_dir, ".png")
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


def run(run: Run) -> int:
    args = run.args
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1]. Got {args.threshold}.")
    if args.plot is not None:
        check_matplotlib()
    labels = Path(args.labels)
    files, events, every = events_from_labels(labels, args.split, args.target)
    scanner, _name = load_scanner(run, cache=make_cache(args))
    apply_overrides(scanner, args)
    threshold = scanner.threshold if args.threshold is None else args.threshold
    results: dict[str, ScanResult] = {}
    failed: list[str] = []
    inputs = [Input(p, Path(p.name)) for p in files]
    for inp, result, _reason in each(run, inputs, scanner.scan_many, "evaluate"):
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

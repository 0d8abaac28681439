"""``audio-embed demo``: the whole workflow on a synthetic example."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from audio_embed.batch import BatchSettings
from audio_embed.cli.common import embedder_from_args
from audio_embed.cli.evaluate import show_report
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    common_options,
    positive_float,
    positive_int,
)
from audio_embed.cli.scan import scan_and_print
from audio_embed.cli.session import PROG, Run, UsageError
from audio_embed.cli.train import fit, print_training

if TYPE_CHECKING:
    from audio_embed.demo import DemoSet
    from audio_embed.scanner import Scanner, ScanResult

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        parents=[common_options(threads=1)],
        formatter_class=Formatter,
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
    p.add_argument("--n-train", type=positive_int, default=3, help="training recordings")
    p.add_argument("--n-test", type=positive_int, default=2, help="test recordings")
    p.add_argument("--seconds", type=positive_float, default=120.0, help="length of each recording")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic set")
    p.add_argument("--no-plot", action="store_true", help="do not draw the evaluation plots")
    return p


def demo_events(seconds: float) -> tuple[int, int]:
    """Targets and distractors per demo recording: make_demo_set places one event per
    4-second slot (2, 6, 10… up to 3 s before the end), so short recordings get fewer."""
    if seconds < 60:
        raise UsageError(f"--seconds must be at least 60 for the demo. Got {seconds:g}.")
    slots = len(range(2, int(seconds) - 3, 4))
    targets = min(5, max(1, round(slots / 6)))  # leave room for negatives far from markers
    return targets, min(10, slots - targets)


#: Written into the demo's folder: a folder holding it may be written over by the demo.
DEMO_STAMP = ".audio-embed-demo"
#: Everything the demo writes into its folder; a folder holding only these, with the
#: demo's scanner among them, is an earlier demo's from a version before the stamp
#: (markers.csv, labels.csv, train/ and test/ alone could be a person's own bench).
DEMO_NAMES = frozenset(
    {
        DEMO_STAMP,
        "markers.csv",
        "labels.csv",
        "train",
        "test",
        "results",
        "plots",
        "evaluation.json",
        "demo.scanner",
    }
)


def _check_root(root: Path) -> None:
    """The demo writes markers.csv, labels.csv, train/, test/, … into ``root``: refuse a
    folder that holds anything but an earlier demo (it would overwrite a person's own
    markers.csv without a word)."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; give the demo a new or empty folder.")
    names = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    earlier = (root / DEMO_STAMP).is_file() or (
        "demo.scanner" in names and set(names) <= DEMO_NAMES
    )
    if names and not earlier:
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
        raise UsageError(
            f"{root} is not empty ({shown}) and is not an earlier demo's folder: the demo "
            "writes markers.csv, labels.csv, train/, test/, results/, plots/, "
            "evaluation.json and demo.scanner there and would overwrite files. Give a new "
            "or empty folder."
        )


def run(run: Run) -> int:
    args = run.args
    root = Path(args.dir)
    t0 = time.perf_counter()
    _check_root(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_STAMP).write_text("written by audio-embed demo; it may write here again\n")
    demo = _make_set(run, root)
    scanner = _train(run, root, demo.markers_csv)
    run.echo()
    run.echo("3. Scanning the test recordings:")
    run.indent = "   "
    rc, batch = scan_and_print(
        run,
        scanner,
        [str(f) for f in demo.test_files],
        root / "results",
        BatchSettings(label="horn", threshold=scanner.scan_threshold, keep_results=True),
    )
    run.indent = ""
    run.echo()
    run.echo("4. Evaluating against the labels (split 'test', target 'horn'):")
    run.indent = "   "
    plot_dir = None
    if not args.no_plot and importlib.util.find_spec("matplotlib") is not None:
        plot_dir = root / "plots"
    _evaluate(run, root, demo.labels_csv, batch.results(), scanner.scan_threshold, plot_dir)
    run.indent = ""
    run.echo(f"\nDone in {time.perf_counter() - t0:.0f} s.")
    run.echo(_next_steps(root, plot_dir is not None))
    return rc


def _make_set(run: Run, root: Path) -> DemoSet:
    from audio_embed.demo import make_demo_set

    args = run.args
    targets, distractors = demo_events(args.seconds)
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
    return demo


def _train(run: Run, root: Path, markers_csv: Path) -> Scanner:
    from audio_embed.formats import read_markers
    from audio_embed.scanner import Scanner

    run.echo()
    run.echo("2. Training a LOGMEL scanner on the markers:")
    scanner = Scanner(embedder_from_args("LOGMEL", run.args))
    fit(run, scanner, read_markers(markers_csv))
    scanner_path = scanner.save(root / "demo.scanner")
    run.indent = "   "
    print_training(run, scanner, root=root)
    run.echo(f"Saved: {scanner_path}")
    run.indent = ""
    return scanner


def _evaluate(
    run: Run,
    root: Path,
    labels_csv: Path,
    results: dict[str, ScanResult],
    threshold: float,
    plot_dir: Path | None,
) -> None:
    from audio_embed.evaluation import evaluate_results, read_labelled_set
    from audio_embed.formats import atomic_write_text

    labelled = read_labelled_set(labels_csv, "horn", split="test")
    report = evaluate_results(results, labelled, threshold=threshold)
    data = show_report(run, report, results, labelled, plot_dir=plot_dir)
    atomic_write_text(root / "evaluation.json", json.dumps(data, indent=2) + "\n")
    run.echo(f"Metrics: {root / 'evaluation.json'}")


def _next_steps(root: Path, plots: bool) -> str:
    q = shlex.quote
    r = str(root)
    return (
        "\nThe same steps as commands:\n"
        f"  {PROG} train --markers {q(r + '/markers.csv')} --model LOGMEL "
        f"--out {q(r + '/demo.scanner')}\n"
        f"  {PROG} scan {q(r + '/demo.scanner')} {q(r + '/test')} --label horn "
        f"--out {q(r + '/results')}\n"
        f"  {PROG} evaluate {q(r + '/demo.scanner')} --labels {q(r + '/labels.csv')} "
        "--target horn --split test" + (f" --plot {q(r + '/plots')}" if plots else "") + "\n"
        "\nWith your own recordings:\n"
        "  1. Mark the target sound in one recording or a few, every occurrence in each (an\n"
        "     unmarked one is trained as 'not the sound'): a CSV with the columns\n"
        "     file,time,kind (seconds; kind positive, negative or soft) like markers.csv\n"
        "     above, or Audacity label tracks / Raven selection tables saved next to each\n"
        "     recording (rec.wav + rec.txt).\n"
        f"  2. Choose a model: {PROG} models   (LOGMEL needs no download; pretrained ones\n"
        "     such as HUBERT_BASE_ML download their weights on first use).\n"
        f"  3. {PROG} train --markers markers.csv --model LOGMEL --out my.scanner\n"
        f"  4. {PROG} scan my.scanner recordings/ --format audacity --out results/\n"
        "     (in Audacity, with rec.wav open: File > Import > Labels… results/rec.txt;\n"
        "     for videos, --format srt writes results/rec.srt subtitles for the editor)\n"
        "  5. To measure it: label every event of a few other files in a CSV\n"
        "     (split,file,onset,offset,label), then\n"
        f"     {PROG} evaluate my.scanner --labels labels.csv --target LABEL --plot plots/"
    )

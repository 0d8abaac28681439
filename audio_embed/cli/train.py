"""``audio-embed train``: a scanner from moments marked in recordings."""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from audio_embed.cli.common import embedder_from_args, make_cache
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    audio_stream_options,
    cache_options,
    common_options,
    model_options,
    nonneg_float,
    positive_float,
    positive_int,
    probability,
    whole_number,
    window_options,
)
from audio_embed.cli.session import PROG, Progress, Run, UsageError

if TYPE_CHECKING:
    from audio_embed.batch import Input
    from audio_embed.scanner import Scanner
    from audio_embed.scanner.augmented import AugmentationSetting
    from audio_embed.windows import Markers, SlidingWindows

__all__ = ["adapt", "add_parser", "fit", "print_training", "run"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        parents=[
            common_options(),
            window_options(model_defaults=True),
            model_options(),
            cache_options(),
            audio_stream_options(
                "the first; with --index, the index's. The scanner keeps it: scan decodes "
                "the same stream"
            ),
        ],
        formatter_class=Formatter,
        help="train a scanner from marked moments",
        description=(
            "Train a scanner from moments marked in recordings.\n\n"
            "Markers (--markers FILE..., repeatable; the format is guessed, or set "
            "--markers-format):\n"
            "  CSV        file,time,kind  (kind: positive, negative or soft; default positive);\n"
            "             relative file names are read from the CSV's folder; selections\n"
            "             (a sound's extent) as file,start,end,kind.\n"
            "  Audacity   a label track export: start<TAB>end<TAB>label; the marker is the\n"
            "             label's midpoint, a label 'negative'/'soft' sets its kind.\n"
            "  Raven      a selection table (Begin Time (s), End Time (s), and an Annotation,\n"
            "             Label or Kind column naming the kind).\n"
            "For Audacity and Raven files the recording is the media file beside the label\n"
            "file with the same stem (rec.wav for rec.txt, rec.selections.txt or\n"
            "rec.Table.1.selections.txt), or the file named by an --audio right after that\n"
            "--markers.\n\n"
            "Mark every occurrence in each recording you mark: its unmarked moments are\n"
            "trained as 'not the sound' (moments reviewed in a recording marked only in\n"
            "part go in --reviewed). Mark a sound longer than the window (1 s for\n"
            "LOGMEL) as a selection (start and end), not a point."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} train --markers markers.csv --model HUBERT_BASE_ML --out horn.scanner\n"
            f"  {PROG} train --markers labels/*.txt --model LOGMEL "
            "--store scanners/ --profile horn\n"
            f"  {PROG} train --markers sel.txt --audio /data/night.flac --model LOGMEL "
            "--out owl.scanner"
        ),
    )
    _add_marker_options(p)
    p.add_argument(
        "--model",
        metavar="M",
        help="embedder name (see models); with --index, the index's unless given",
    )
    g = p.add_argument_group("output (one of)")
    g.add_argument("--out", metavar="SCANNER", help="write the scanner to this file")
    g.add_argument("--store", metavar="DIR", help="save into a scanner store (with --profile)")
    g.add_argument("--profile", metavar="NAME", help="profile name in --store")
    p.add_argument(
        "--label",
        metavar="TEXT",
        help="the target sound's name, saved with the scanner: scan labels its results "
        "with it (default: the most common label text of the Audacity or Raven markers "
        "that is not a kind name, e.g. 'boing'; none for a CSV: scan says 'target')",
    )
    p.add_argument(
        "--index",
        metavar="ARCHIVE.idx",
        help="train from this index's vectors (made by 'index' with the same --model) "
        "instead of decoding the marked files; its windows are used",
    )
    _add_classifier_options(p)
    g = p.add_argument_group("self-training on the recordings to scan")
    g.add_argument(
        "--adapt",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="after training, scan these unmarked recordings (folders are searched), take "
        "each one's best detection(s) as extra positives and its low-scoring windows far "
        "from any detection as extra negatives, and train again (pseudo-labels; helps with "
        "few markers, see the README)",
    )
    g.add_argument(
        "--adapt-top",
        type=positive_int,
        default=1,
        metavar="K",
        help="pseudo-positive detections per recording",
    )
    g = p.add_argument_group("augmentation")
    g.add_argument(
        "--augment",
        type=_augment_option,
        default="auto",
        metavar="auto|0|N",
        help="N: mix each marked sound into N new places of every marked recording (speed "
        "0.95-1.05, gain -4 to +4 dB, at least 8 s from every marker) and train on the "
        "windows holding it too; auto (default): N = 1 when the recordings hold 3 to 5 "
        "positive markers, 3 copies 0-10 dB quieter for more markers in at least 4 "
        "recordings (automatic classifier only), else none (measured, see the README); "
        "0: never",
    )
    g.add_argument(
        "--augment-draws",
        type=positive_int,
        default=1,
        metavar="K",
        help="with --augment N: K draws of the copies, one classifier each, their "
        "probabilities and thresholds averaged (auto: 3 for many markers, else 1)",
    )
    return p


def _augment_option(text: str) -> int | str:
    """``--augment``: ``auto`` or a whole number >= 0."""
    return text if text == "auto" else whole_number(text, 0, alternative="auto")


def _augmentation(value: int | str, draws: int = 1) -> AugmentationSetting:
    """The Scanner's ``augmentation`` for ``--augment`` and ``--augment-draws``."""
    from audio_embed.augment import AUTO_AUGMENTATION

    if value == "auto":
        return "auto"
    return attrs.evolve(AUTO_AUGMENTATION, copies=int(value), draws=draws) if value else None


def _add_marker_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("markers")
    g.add_argument(
        "--markers",
        action=_MarkersAction,
        nargs="+",
        required=True,
        metavar="FILE",
        help="markers files: a CSV, or Audacity / Raven label files next to their "
        "recordings (several at once, e.g. --markers labels/*.txt, or repeated)",
    )
    g.add_argument(
        "--reviewed",
        action=_MarkersAction,
        nargs="+",
        dest="markers",
        metavar="FILE",
        help="markers files of reviewed moments (search hits, suggestions: the kind "
        "column filled); a recording that only these mark is not complete: only its "
        "marked moments are training windows (no automatic negatives around them) and "
        "the threshold's cross-validation never holds it out; a recording that --markers "
        "marks keeps its automatic negatives",
    )
    g.add_argument(
        "--markers-format",
        choices=("auto", "csv", "audacity", "raven"),
        default="auto",
        help="format of every --markers file (auto: .csv is CSV, a header with "
        "'Begin Time (s)' is Raven, a header with file and time columns CSV (a .txt "
        "from a spreadsheet), anything else Audacity)",
    )
    g.add_argument(
        "--audio",
        action=_AudioAction,
        metavar="FILE",
        help="the recording marked by the Audacity/Raven label file given just before it "
        "(--markers rec.txt --audio /data/rec.flac)",
    )


def _add_classifier_options(p: argparse.ArgumentParser) -> None:
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
        type=nonneg_float,
        metavar="SEC",
        help="widen each positive marker by this much (default: 0 for overlap, 12 for targeted)",
    )
    g.add_argument(
        "--neg-margin",
        type=nonneg_float,
        metavar="SEC",
        help="windows at least this far from every marker are negatives (default: 8 for "
        "overlap, 120 for targeted; 0 = only marked negatives)",
    )
    g.add_argument(
        "--neg-stride",
        type=positive_float,
        metavar="SEC",
        help="spacing of automatic negatives with --labelling targeted (4)",
    )
    g.add_argument(
        "--classifier",
        choices=("auto", "hgb", "logreg", "extratrees", "prototype"),
        help="default: the model's own (logreg for WHISPER_TINY_EN and BIRDNET_V24), else "
        "auto: by the number of positive windows, a prototype similarity (fewer than 30), "
        "extra trees (fewer than 100) or gradient boosting",
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


def _auto_or_probability(value: str) -> float | str:
    if value.strip().lower() == "auto":
        return "auto"
    p = probability(value)
    if not 0.0 < p < 1.0:
        raise argparse.ArgumentTypeError(f"must be auto or a number in (0, 1), got {value!r}")
    return p


class _MarkersAction(argparse.Action):
    """``--markers FILE...`` appends ``[FILE, None, False]``, ``--reviewed FILE...``
    ``[FILE, None, True]`` for each; a following ``--audio`` fills the last None
    (when that option named one file)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        specs = list(getattr(namespace, self.dest, None) or [])
        reviewed = option == "--reviewed"
        specs.extend([f, None, reviewed] for f in values)
        setattr(namespace, self.dest, specs)
        namespace._last_markers_group = (option, list(values))


class _AudioAction(argparse.Action):
    """``--audio FILE``: the recording marked by the ``--markers`` just before it."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        specs: Any = getattr(namespace, "markers", None)
        if not specs or specs[-1][1] is not None:
            parser.error("--audio must follow the --markers or --reviewed label file it belongs to")
        group, files = getattr(namespace, "_last_markers_group", (None, []))
        if len(files) > 1:
            parser.error(
                f"--audio {values} follows {group} with {len(files)} files; it names the "
                f"recording of one label file: {group} {files[-1]} --audio {values}"
            )
        specs[-1][1] = values


def _markers_label(args: argparse.Namespace) -> str | None:
    """The target's name in the ``--markers`` label files
    (:func:`~audio_embed.formats.target_label`)."""
    from audio_embed.formats import target_label

    return target_label([Path(m) for m, _, r in args.markers if not r], fmt=args.markers_format)


def _read_marker_files(args: argparse.Namespace) -> tuple[dict[str, Markers], set[str]]:
    """``--markers`` and ``--reviewed``: every recording's markers, and the recordings
    only ``--reviewed`` marks (not complete)."""
    from audio_embed.formats import (
        guess_marker_format,
        merge_markers,
        one_name_per_file,
        read_marker_files,
    )

    specs = [(Path(m), Path(a) if a else None, r) for m, a, r in args.markers]
    for path, audio, reviewed in specs:  # --markers-format is --markers' own
        fmt = "auto" if reviewed else args.markers_format
        if audio is not None and path.is_file():
            if (fmt if fmt != "auto" else guess_marker_format(path)) == "csv":
                raise UsageError(
                    f"--audio {audio} follows {path}, a markers CSV, which names its "
                    "recordings itself; --audio belongs after an Audacity or Raven label file."
                )
    recordings: dict[str | os.PathLike[str], str | os.PathLike[str]] = {
        m: a for m, a, _ in specs if a is not None
    }
    marked = read_marker_files(
        [m for m, _, r in specs if not r], fmt=args.markers_format, recordings=recordings
    )
    answers = [m for m, _, r in specs if r]
    if not answers:
        return marked, set()
    name = one_name_per_file()  # a recording --markers marks keeps its spelling
    every = {name(f): m for f, m in marked.items()}
    for f, m in read_marker_files(answers, recordings=recordings).items():
        key = name(f)
        every[key] = merge_markers(every[key], m) if key in every else m
    return every, set(every) - set(marked)


def _train_windows(args: argparse.Namespace, sw: SlidingWindows) -> Any:
    from audio_embed.windows import TargetedWindows

    if args.labelling == "targeted":
        tw = TargetedWindows.original(sw.window)
    else:
        tw = TargetedWindows(sw.window, hop=sw.hop)
    changes: dict[str, Any] = {}
    if args.tolerance is not None:
        changes["tolerance"] = args.tolerance
    if args.neg_margin is not None:
        changes["neg_margin"] = args.neg_margin
    if args.neg_stride is not None:
        changes["neg_stride"] = args.neg_stride
    return attrs.evolve(tw, **changes) if changes else tw


def fit(
    run: Run, scanner: Scanner, markers: dict[str, Markers], partial: Collection[str] = ()
) -> None:
    from audio_embed.scanner import Recording

    recs = [Recording(f, m, complete=f not in partial) for f, m in sorted(markers.items())]
    progress = Progress(run, len(recs), "train") if run.show_progress else None
    try:
        scanner.fit(recs, progress=progress, cancel=run.cancel)
    finally:
        if progress is not None:
            progress.close()
    run.cancel.check()  # Ctrl-C during the classifier fit: save nothing


def _adapt_inputs(items: list[str]) -> list[Input]:
    """The recordings ``--adapt`` names; one missing (or a folder without media) is a
    usage error."""
    from audio_embed.batch import collect_inputs

    inputs, missing = collect_inputs(items)
    if missing:
        item, reason = missing[0]
        raise UsageError(f"--adapt {item}: {reason}.")
    return inputs


def adapt(run: Run, scanner: Scanner, items: list[str], top: int) -> Scanner:
    """``--adapt``: the scanner refitted with pseudo-labels from these recordings."""
    inputs = _adapt_inputs(items)
    progress = Progress(run, len(inputs), "adapt") if run.show_progress else None
    try:
        adapted = scanner.adapt(
            [i.path for i in inputs], top=top, progress=progress, cancel=run.cancel
        )
    finally:
        if progress is not None:
            progress.close()
    run.cancel.check()
    return adapted


def print_training(run: Run, scanner: Scanner, root: Path | None = None) -> None:
    for line in scanner.describe(root).splitlines():
        run.echo(line)


def run(run: Run) -> int:
    from audio_embed.classifier import CalibratedClassifier, make_base_estimator
    from audio_embed.scanner import Scanner, model_classifier, model_scan_windows
    from audio_embed.store import ScannerStore

    args = run.args
    if (args.out is None) == (args.store is None):
        raise UsageError("Give either --out SCANNER_FILE or --store DIR --profile NAME.")
    if args.store is not None and not args.profile:
        raise UsageError("--store needs --profile NAME.")
    from audio_embed.registry import get_spec

    explicit_augment = args.augment != "auto" and args.augment > 0
    for option, value in (("--adapt", args.adapt), ("--augment", explicit_augment)):
        if value and args.index is not None:
            raise UsageError(
                f"{option} needs the marked files themselves; it cannot follow --index."
            )
    if args.augment_draws != 1 and not explicit_augment:
        raise UsageError("--augment-draws needs --augment N (N > 0).")
    if args.model is None:  # before: required even with --index, whose model it must be
        if args.index is None:
            raise UsageError(
                "train needs --model M (see `audio-embed models`; LOGMEL needs no "
                "download), or --index ARCHIVE.idx to train with the index's model."
            )
        from audio_embed._index_store import read_manifest

        args.model = str(read_manifest(Path(args.index))["embedder"]["name"])
    get_spec(args.model)  # an unknown name fails before any work
    if args.adapt:  # so does an --adapt path that is not there (before: after the fit)
        _adapt_inputs(args.adapt)
    if args.store is not None:  # so does a profile name the store refuses (before: after)
        from audio_embed.errors import InvalidInputError

        try:
            ScannerStore(args.store).path(args.profile, get_spec(args.model).name)
        except InvalidInputError as exc:
            raise UsageError(f"--profile: {exc}") from exc
    if args.out is not None:  # so does an --out that cannot be written (a folder, …)
        from audio_embed._io import check_output_file

        check_output_file(args.out, example="my.scanner")
        _refuse_replacing_other_files(Path(args.out))
    markers, partial = _read_marker_files(args)
    label = args.label or _markers_label(args)  # before the fit: a bad file fails first
    index = None
    if args.index is not None:
        from audio_embed.cli.index import open_index

        index = open_index(run, Path(args.index), model=args.model)  # and its audio stream
        sw = index.windows
        _refuse_other_windows(args, sw, args.index)
        run.echo(f"Using the index's windows: {sw.window:g} s every {sw.hop:g} s, {sw.encoding}.")
        embedder = index.embedder()
    else:
        embedder = embedder_from_args(args.model, args)
        sw = model_scan_windows(embedder, args.window, args.hop, args.encoding)
    calibration = None if args.calibration == "none" else args.calibration
    if args.classifier is None:
        classifier = model_classifier(embedder, calibration=calibration)
    else:
        estimator = None if args.classifier == "auto" else make_base_estimator(args.classifier)
        classifier = CalibratedClassifier(estimator, calibration=calibration)
    scanner = Scanner(
        embedder,
        classifier=classifier,
        scan_windows=sw,
        train_windows=_train_windows(args, sw),
        normalization=args.normalization,
        cache=make_cache(args),
        batch_size=args.batch_size,
        threshold=args.threshold,
        augmentation=_augmentation(args.augment, args.augment_draws),
        audio_stream=args.audio_stream,
    )
    if index is not None:
        from audio_embed.review import fit_from_index

        fit_from_index(scanner, index, markers, partial=partial)
        run.cancel.check()
    else:
        fit(run, scanner, markers, partial)
    if args.adapt:
        scanner = adapt(run, scanner, args.adapt, args.adapt_top)
    if label:
        scanner.training_summary = {**(scanner.training_summary or {}), "label": label}
    if args.store is not None:
        path = ScannerStore(args.store).save(scanner, args.profile)
    else:
        path = scanner.save(args.out)
    print_training(run, scanner)
    run.echo(f"Saved: {path}")
    return 0


def _refuse_other_windows(args: argparse.Namespace, sw: SlidingWindows, index: str) -> None:
    """--window/--hop/--encoding with --index must be the index's: its vectors are of
    its windows (before: others were left out in silence, the scanner of the index's)."""
    given = {
        "--window": (args.window, sw.window),
        "--hop": (args.hop, sw.hop),
        "--encoding": (args.encoding, sw.encoding),
    }
    other = [
        f"{option} {asked:g}" if isinstance(asked, float) else f"{option} {asked}"
        for option, (asked, held) in given.items()
        if asked is not None
        and (asked != held if isinstance(asked, str) else abs(asked - held) > 1e-9)
    ]
    if other:
        raise UsageError(
            f"{' '.join(other)}: {index} holds windows of {sw.window:g} s every {sw.hop:g} s "
            f"({sw.encoding}), which a scanner trained from it uses; leave "
            "--window/--hop/--encoding out, or index the files again with them."
        )


def _refuse_replacing_other_files(out: Path) -> None:
    """An ``--out`` that exists and is not a scanner (``--out markers.csv``, or a
    recording, by a slip of tab completion) stops train before any work: saving would
    replace it (before: it did, the markers file or recording lost)."""
    import zipfile

    if not out.is_file():
        return
    try:
        with zipfile.ZipFile(out) as zf:
            if "scanner.json" in zf.namelist():
                return  # an earlier scanner: replaced, as asked
    except (zipfile.BadZipFile, OSError):
        pass
    raise UsageError(
        f"{out} exists and is not a scanner file; saving the scanner would replace it. "
        "Name a new file with --out (e.g. my.scanner), or delete it first."
    )

"""``audio-embed search``: the moments of an index that sound like a few examples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audio_embed.cli.common import make_cache
from audio_embed.cli.index import open_index
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    cache_options,
    common_options,
    model_options,
    positive_int,
)
from audio_embed.cli.session import PROG, Run, UsageError, write_stderr
from audio_embed.formats import list_formats

if TYPE_CHECKING:
    from collections.abc import Sequence

    from audio_embed.index import EmbeddingIndex, Hit
    from audio_embed.scanner import ScanResult
    from audio_embed.windows import Markers

__all__ = ["add_parser", "answered", "review_file_note", "run", "suggest"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``search`` subcommand."""
    p = subparsers.add_parser(
        "search",
        parents=[common_options(), model_options(), cache_options()],
        formatter_class=Formatter,
        help="find the moments of an index that sound like an example",
        description=(
            "Search an index (made by 'index') for the moments most like one or more\n"
            "examples, FILE:SECONDS; an example's file need not be in the index (it is\n"
            "embedded with the index's model). Scores are cosine similarities of the\n"
            "per-recording normalised vectors: the mean over the examples, minus the mean\n"
            "over the --negative examples. One hit per occurrence (file, start, end, peak,\n"
            "score), best first; it reaches from its best window over the windows around it\n"
            "that score at least half as high (whatever --top).\n\n"
            "Review loop: --markers-out writes the hits as a markers CSV with an empty kind\n"
            "column; fill it with positive / negative / soft and give it to 'train\n"
            "--markers' (rows left empty are ignored), with --index to train from the\n"
            "index's vectors without decoding anything."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} search archive.idx --example rec.wav:12.5 --top 30\n"
            f"  {PROG} search archive.idx --example a.wav:3 --example b.mp4:61 "
            "--negative a.wav:40 --format json --out hits.json\n"
            f"  {PROG} search archive.idx --example rec.wav:12.5 --markers-out review.csv\n"
            f"  {PROG} search archive.idx --scanner horn.scanner --suggest 20 "
            "--markers-out next.csv"
        ),
    )
    p.add_argument("archive", metavar="ARCHIVE.idx", help="an index made by 'index'")
    p.add_argument(
        "--example",
        action="append",
        default=[],
        metavar="FILE:SEC",
        help="a moment that holds the sound (repeat for several)",
    )
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="FILE:SEC",
        help="a moment that does not (its similarity is subtracted)",
    )
    p.add_argument("--top", type=positive_int, default=100, metavar="N", help="hits to list")
    p.add_argument(
        "--format",
        choices=list_formats(),
        default="csv",
        help="csv/json: one table (stdout, or --out FILE); audacity/raven/srt/vtt (and a "
        "format a --plugin module registers): one label or subtitle file per recording in "
        "--out DIR",
    )
    p.add_argument("--out", metavar="PATH", help="output file (csv/json) or folder")
    p.add_argument(
        "--markers-out",
        metavar="FILE.csv",
        help="also write the hits (or suggestions) as a markers CSV with an empty kind to fill",
    )
    p.add_argument(
        "--exact", action="store_true", help="score every window instead of using the graph"
    )
    p.add_argument(
        "--label", default="match", metavar="TEXT", help="label in Audacity/Raven/subtitles"
    )
    p.add_argument("--model", metavar="M", help="checked against the index's embedder")
    g = p.add_argument_group("suggestions (active learning)")
    g.add_argument("--scanner", metavar="SCANNER", help="a scanner trained on this index's model")
    g.add_argument(
        "--suggest",
        type=positive_int,
        metavar="N",
        help="with --scanner: list the N windows of the index the scanner is least sure "
        "about (nearest its threshold, spread over files) instead of searching",
    )
    return p


def run(run: Run) -> int:
    from audio_embed.index import Example

    args = run.args
    if args.markers_out:  # before any work: never over reviewed markers
        from audio_embed.review import check_review_target

        check_review_target(args.markers_out)
    if args.suggest is not None:
        return _suggest(run)
    if args.scanner is not None:
        raise UsageError("--scanner goes with --suggest N.")
    if not args.example:
        raise UsageError("Give at least one --example FILE:SECONDS (or --scanner S --suggest N).")
    examples = [Example.parse(e) for e in args.example]
    negatives = [Example.parse(e) for e in args.negative]
    if args.format not in ("csv", "json") and not args.out:
        raise UsageError(f"--format {args.format} writes one file per recording: give --out DIR.")
    if args.out and args.format in ("csv", "json"):
        _refuse_replacing_other_files(Path(args.out), args.format)
    index = open_index(run, Path(args.archive), model=args.model)
    hits = index.search(examples, negatives=negatives, top=args.top, exact=args.exact)
    _write_hits(run, hits, args)
    gone = sorted({h.file for h in hits if not Path(h.file).exists()})
    if gone:
        run.warn(
            f"{len(gone)} file(s) with hits are no longer there (e.g. {gone[0]}): moved or "
            f"deleted since they were indexed. Run index again (--prune drops them)."
        )
    if args.markers_out:
        from audio_embed.review import write_review_markers

        text = review_file_note(write_review_markers(args.markers_out, hits))
        if args.out:
            run.echo(text)
        else:  # stdout holds the hits
            write_stderr(text)
    return 0


def _refuse_replacing_other_files(out: Path, fmt: str) -> None:
    """``--out FILE`` that exists and is not an earlier search's hits (``--out
    markers.csv``, a person's list) stops the search: writing would replace it (before:
    it did). A folder is refused too (the hits are one file)."""
    import json

    if out.is_dir():
        raise UsageError(f"{out} is a folder; --format {fmt} writes one file (e.g. hits.{fmt}).")
    if not out.is_file():
        return
    try:
        text = out.read_text(encoding="utf-8").lstrip("\ufeff")
    except (OSError, UnicodeDecodeError):
        text = None
    if text is not None:
        if fmt == "csv" and text.partition("\n")[0].strip() in ("", "file,start,end,peak,score"):
            return
        if fmt == "json":
            try:
                items = json.loads(text)
            except ValueError:
                items = None
            if isinstance(items, list) and all(
                isinstance(i, dict) and {"file", "score"} <= set(i) for i in items
            ):
                return
    raise UsageError(
        f"{out} exists and is not the hits of an earlier search; writing them there would "
        "replace it. Name another file with --out, or move it away first."
    )


def _write_hits(run: Run, hits: list[Hit], args: argparse.Namespace) -> None:
    from audio_embed.formats import FORMAT_SUFFIXES, atomic_write_text, write_detections
    from audio_embed.review import format_hits, hits_by_file

    if args.format in ("csv", "json"):
        text = format_hits(hits, args.format)
        if args.out:
            atomic_write_text(args.out, text)
            run.echo(f"{len(hits)} hit(s) -> {args.out}")
        else:
            sys.stdout.write(text)
        return
    from audio_embed.batch import Input, output_paths, refuse_beside_recordings

    groups = hits_by_file(hits)
    inputs = [Input(Path(f), Path(Path(f).name)) for f in groups]
    paths = output_paths(inputs, Path(args.out), FORMAT_SUFFIXES[args.format])
    refuse_beside_recordings(inputs, paths, args.format)  # a film's own film.srt stays
    for inp in inputs:
        dets = groups[str(inp.path)]
        write_detections(paths[inp.path], dets, args.format, file=str(inp.path), label=args.label)
        run.echo(f"{inp.path}: {len(dets)} hit(s) -> {paths[inp.path]}")


def _suggest(run: Run) -> int:
    from audio_embed.review import score_index
    from audio_embed.scanner import Scanner

    args = run.args
    if args.scanner is None:
        raise UsageError("--suggest N needs --scanner SCANNER (a scanner to be unsure).")
    if args.example or args.negative:
        raise UsageError("--suggest lists uncertain windows; it takes no --example.")
    index: EmbeddingIndex = open_index(run, Path(args.archive), model=args.model)
    scanner = Scanner.load(args.scanner, embedder=index.embedder(), cache=make_cache(args))
    suggest(run, score_index(scanner, index), scanner, scanner.scan_threshold)
    return 0


def review_file_note(path: Path) -> str:
    """What to do with a review markers file just written."""
    return f"Markers to review: {path} (fill the kind column, then train --markers)"


def suggest(
    run: Run,
    results: Sequence[ScanResult],
    scanner: object,
    shown: float,
    threshold: float | None = None,
) -> None:
    """``--suggest N [--markers-out F]`` of ``search`` and ``scan``: the ``N`` windows
    of ``results`` the scanner is least sure about (``threshold``: each result's own
    when None; ``shown`` in the heading), leaving out the moments it was trained on,
    and written to F to review. When there is none, why is said and nothing written."""
    from audio_embed.detect import format_threshold
    from audio_embed.review import suggest_windows, write_review_markers

    if not results:  # (review: "every scanned window lies near …" of no file scanned)
        run.echo("No window to suggest: no recording was scanned (each skipped or failed).")
        return
    exclude = answered(run, scanner)
    picks = suggest_windows(results, run.args.suggest, threshold=threshold, exclude=exclude)
    if not picks:  # (review: "0 window(s) … least sure about", without why)
        run.echo(
            "No window to suggest: every scanned window lies near a moment the scanner "
            "was trained on."
        )
        return
    run.echo(
        f"{len(picks)} window(s) the scanner is least sure about (probability nearest "
        f"{format_threshold(shown)}):"
    )
    for h in picks:
        run.echo(f"  {h.file}  {h.start:9.2f}-{h.end:<9.2f}  p={h.score:.3f}")
    if run.args.markers_out:
        run.echo(review_file_note(write_review_markers(run.args.markers_out, picks)))


def answered(run: Run, scanner: object) -> dict[str, Markers] | None:
    """The markers ``scanner`` was trained on, which suggestions leave out; a note
    where it does not keep them (saved before scanners kept them)."""
    marked: dict[str, Markers] | None = getattr(scanner, "training_markers", None)
    if marked is None:
        run.echo(
            "(This scanner was saved before scanners kept their training markers, so a "
            "suggestion may be a moment already marked. Train it again to have those "
            "left out.)"
        )
    return marked


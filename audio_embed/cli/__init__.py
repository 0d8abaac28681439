"""The ``audio-embed`` command: a thin shell over the library.

Subcommands::

    audio-embed models [PATTERN]                      the embedders and their weights
    audio-embed embed FILES... --model M --out E.npz  sliding-window embeddings
    audio-embed train --markers M.csv --model M --out S.scanner
    audio-embed scan S.scanner FILES_OR_DIRS... --out DIR
    audio-embed evaluate S.scanner --labels L.csv --target LABEL
    audio-embed index FILES_OR_DIRS... --model M --out ARCHIVE.idx
    audio-embed search ARCHIVE.idx --example rec.wav:12.5 [--markers-out review.csv]
    audio-embed demo [DIR]                            the whole workflow on synthetic data

Exit codes: 0 success, 1 a failure (a file that could not be read, bad markers,
a damaged scanner…), 2 a usage error (bad option, unknown model), 130 cancelled
with Ctrl-C. Errors are one line, ``audio-embed: error: …``; ``--verbose``
adds the traceback.

Layout: one module per command (``models``, ``embed``, ``train``, ``scan``,
``evaluate``, ``index``, ``search``, ``demo``), each with ``add_parser(subparsers)`` returning its
parser and ``run(run) -> int``; :data:`COMMANDS` lists them once, in help
order. ``session`` holds the :class:`~audio_embed.cli.session.Run` a command
gets, exit codes and error text; ``options`` the shared option groups and
argparse types; ``common`` the scanner/embedder/cache loading and the per-file
loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import cast

from audio_embed.cli import demo, embed, evaluate, index, models, scan, search, train
from audio_embed.cli.session import (
    EXIT_CANCELLED,
    EXIT_FAILURE,
    EXIT_USAGE,
    PROG,
    Run,
    UsageError,
    describe_error,
    fail,
    session,
)
from audio_embed.errors import AudioEmbedError, Cancelled, InvalidInputError, UnknownEmbedderError

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order ``--help`` lists them: each module has
#: ``add_parser(subparsers) -> ArgumentParser`` and ``run(run: Run) -> int``.
COMMANDS: tuple[ModuleType, ...] = (models, embed, train, scan, evaluate, index, search, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``audio-embed`` argument parser (one subcommand per module of :data:`COMMANDS`)."""
    from audio_embed import __version__

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
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


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
        with session(args) as run:
            if getattr(args, "plugin", None):
                from audio_embed.registry import load_plugin

                # a file's path made absolute: Ray workers load it from another folder
                args.plugin = [os.path.abspath(m) if m.endswith(".py") else m for m in args.plugin]
                for module in args.plugin:
                    load_plugin(module)
            return func(run)
    except (Cancelled, KeyboardInterrupt):
        fail("cancelled (results already written are complete; nothing is half-written).")
        return EXIT_CANCELLED
    except (UsageError, UnknownEmbedderError, InvalidInputError) as exc:
        if verbose:
            traceback.print_exc()
        fail(str(exc))
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
        fail(describe_error(exc))
        return EXIT_FAILURE

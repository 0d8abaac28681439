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

``--plugin MODULE`` (before the command, or after it) imports a module of the
user's first, so the models, result formats and commands it registers
(:func:`register_command`) can be named.

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
import codecs
import io
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Protocol, cast

from audio_embed.cli import demo, embed, evaluate, index, models, scan, search, train
from audio_embed.cli.options import Subparsers
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

__all__ = ["COMMANDS", "build_parser", "main", "register_command"]

#: The subcommands, in the order ``--help`` lists them: each module has
#: ``add_parser(subparsers) -> ArgumentParser`` and ``run(run: Run) -> int``.
COMMANDS: tuple[ModuleType, ...] = (models, embed, train, scan, evaluate, index, search, demo)

#: Commands added by :func:`register_command` (a ``--plugin``'s), after the built-in ones.
_ADDED: list[Command] = []


class Command(Protocol):
    """What a command is: a module (or any object) with these two functions."""

    def add_parser(self, subparsers: Subparsers) -> argparse.ArgumentParser: ...

    def run(self, run: Run) -> int: ...


def register_command(command: Command | ModuleType) -> None:
    """Add a command of your own to ``audio-embed``: ``command`` has
    ``add_parser(subparsers)``, which adds its parser and returns it, and ``run(run) -> int``,
    as every built-in command module has (README, "Adding a command"). A ``--plugin`` module
    calls it on itself (``register_command(sys.modules[__name__])``) so the command can be
    named on the same command line. Registering the same object again does nothing; a name
    the command line already has is a usage error when the parser is built."""
    missing = [f for f in ("add_parser", "run") if not callable(getattr(command, f, None))]
    if missing:
        raise InvalidInputError(
            f"A command has add_parser(subparsers) and run(run) functions (README, 'Adding a "
            f"command'); {_origin(command)} lacks {missing[0]}."
        )
    if not any(c is command for c in _ADDED):
        _ADDED.append(cast(Command, command))


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
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        dest="plugins_first",
        metavar="MODULE",
        help="import this Python module before anything else, so the models and result "
        "formats it registers can be named by every command (repeatable; a module on the "
        "Python path, or a .py file's path; the same as a command's own --plugin)",
    )
    sub = cast(
        Subparsers,
        parser.add_subparsers(
            dest="command", metavar="COMMAND", required=True, parser_class=CommandParser
        ),
    )
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    for added in _ADDED:
        taken = set(sub.choices)
        try:
            added_parser = added.add_parser(sub)
        except argparse.ArgumentError as exc:  # Python 3.11+: a name already there
            raise UsageError(f"In {_origin(added)}: {exc}.") from exc
        clash = [n for n in sub.choices if n in taken and sub.choices[n] is added_parser]
        if clash:  # Python 3.10 replaces the command silently
            raise UsageError(f"In {_origin(added)}: conflicting subparser: {clash[0]}.")
        if "--plugin" not in added_parser._option_string_actions:  # as every command takes it
            added_parser.add_argument(
                "--plugin", action="append", default=[], metavar="MODULE", help=argparse.SUPPRESS
            )
        added_parser.set_defaults(func=added.run)
    return parser


class CommandParser(argparse.ArgumentParser):
    """A command's parser: its positionals may stand among its options, as ``cp`` and ``ls``
    take them (``scan my.scanner --threshold 0.5 day2/ --out r``; before: "unrecognized
    arguments: day2/"). A plug-in's parser that argparse cannot parse so (a ``REMAINDER``
    positional) is parsed as before."""

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        positionals = self._get_positional_actions()
        given = sys.argv[1:] if args is None else list(args)
        if (
            self._intermixing  # the two passes parse_known_intermixed_args makes
            # "--" (inputs that begin with "-"): the intermixed parse drops it (review)
            or "--" in given
            or any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in positionals)
            or any(
                a in positionals for g in self._mutually_exclusive_groups for a in g._group_actions
            )
        ):
            return super().parse_known_args(given, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(given, namespace)
        finally:
            self._intermixing = False


def _origin(command: object) -> str:
    name = getattr(command, "__name__", None) or type(command).__module__
    return f"the plug-in {name!r}"


def _printable_names() -> None:
    """Let stdout print any file name: one that is not UTF-8 (Linux, held with
    surrogates: ``caf\\xe9.wav``) as its own bytes, as ``ls`` does, and a character
    the output's encoding lacks (a Windows code page) as an escape (before:
    ``UnicodeEncodeError``, a traceback in the middle of a scan)."""
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper) and out.errors == "strict":
        try:
            utf8 = codecs.lookup(out.encoding).name == "utf-8"
        except LookupError:
            utf8 = False
        out.reconfigure(errors="surrogateescape" if utf8 else "backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``audio-embed`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Every ``--plugin`` module, before the command (``audio-embed --plugin my_models
    train …``) or after it (``audio-embed train --plugin my_models …``), is imported
    before the command line is parsed, so that the models and result formats it
    registers are valid choices everywhere (``scan --format``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _printable_names()
    verbose = any(a in ("-v", "--verbose") for a in argv)  # until the arguments are parsed
    try:
        plugins = _plugins_named(argv)
        _load_plugins(plugins)
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error (already printed)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        func = cast(Callable[[Run], int], args.func)
        verbose = bool(getattr(args, "verbose", False))
        # those before the command first; each once (Ray workers load the same list)
        given = [*args.plugins_first, *(getattr(args, "plugin", None) or ())]
        args.plugin = list(dict.fromkeys(_absolute(m) for m in given))
        with session(args) as run:
            _load_plugins(args.plugin)  # e.g. an abbreviated --plug, not seen before parsing
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


def _plugins_named(argv: Sequence[str]) -> list[str]:
    """The modules of every ``--plugin MODULE`` / ``--plugin=MODULE`` in ``argv``
    (before ``--``), wherever it stands, so they are loaded before parsing."""
    found: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if arg == "--plugin" and i + 1 < len(argv):
            found.append(argv[i + 1])
            i += 1
        elif arg.startswith("--plugin="):
            found.append(arg.partition("=")[2])
        i += 1
    return found


def _absolute(module: str) -> str:
    """A file's path made absolute (Ray workers load it from another folder)."""
    return os.path.abspath(module) if module.endswith(".py") else module


def _load_plugins(modules: Sequence[str]) -> None:
    if not modules:
        return
    from audio_embed.registry import load_plugin

    for module in modules:
        load_plugin(_absolute(module))

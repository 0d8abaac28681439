"""Helpers the commands that run a model share: the embedder, the cache and the
scanner named on the command line, and the loop that runs a ``*_many`` call over
files, reporting and skipping the ones that fail."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from audio_embed.batch import Input, run_many
from audio_embed.cli.session import Progress, Run, UsageError, describe_error, log
from audio_embed.errors import AudioEmbedError, ScannerFileError

if TYPE_CHECKING:  # the heavy modules are imported by the commands that need them
    from audio_embed.cache import EmbeddingCache
    from audio_embed.embedders.base import Embedder
    from audio_embed.scanner import Scanner

__all__ = [
    "apply_overrides",
    "each",
    "embedder_from_args",
    "embedder_kwargs",
    "load_scanner",
    "make_cache",
]

T = TypeVar("T")


def embedder_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments --model-option, --device and --checkpoint ask for."""
    options = list(getattr(args, "model_option", None) or ())
    twice = sorted(k for k, n in Counter(k for k, _ in options).items() if n > 1)
    if twice:
        raise UsageError(f"--model-option {', '.join(twice)} given more than once.")
    kwargs: dict[str, Any] = dict(options)
    if getattr(args, "device", None):
        kwargs["device"] = args.device
    if getattr(args, "checkpoint", None):
        kwargs["checkpoint"] = args.checkpoint
    return kwargs


def embedder_from_args(name: str, args: argparse.Namespace) -> Embedder:
    """The embedder ``name`` with the --device / --checkpoint given.

    Every registered factory takes ``device=`` and, unless its spec says
    ``takes_checkpoint=False``, ``checkpoint=`` (the spec contract), so nothing
    is probed.
    """
    from audio_embed.registry import create_embedder, get_spec

    spec = get_spec(name)  # UnknownEmbedderError with close matches
    kwargs = embedder_kwargs(args)
    if "checkpoint" in kwargs and not spec.takes_checkpoint:
        raise UsageError(f"The {spec.name} embedder has no weights: it takes no --checkpoint.")
    return create_embedder(spec.name, **kwargs)


def make_cache(args: argparse.Namespace) -> EmbeddingCache | None:
    """The embedding cache of --cache-dir (None with --no-cache)."""
    if getattr(args, "no_cache", False):
        return None
    from audio_embed.cache import EmbeddingCache

    return EmbeddingCache(getattr(args, "cache_dir", None))


def load_scanner(run: Run, *, cache: EmbeddingCache | None) -> tuple[Scanner, str]:
    """The scanner named on the command line, and a label for it (for output text)."""
    from audio_embed.scanner import Scanner
    from audio_embed.store import ScannerStore

    args = run.args
    if args.store is not None:
        if not args.profile:
            raise UsageError("--store needs --profile NAME (and usually --model M).")
        store = ScannerStore(args.store)
        model = args.model
        if model is None:
            stored = [s for s in store.list() if s.profile == args.profile]
            if not stored:  # before: "Name the model of profile … (stored for it: none)"
                raise store.missing(args.profile)
            if len(stored) != 1:
                have = ", ".join(s.embedder for s in stored) or "none"
                raise UsageError(
                    f"Name the model of profile {args.profile!r} with --model "
                    f"(stored for it: {have})."
                )
            model = stored[0].embedder
        from audio_embed.registry import get_spec

        model = get_spec(model).name
        scanner = store.load(args.profile, model, cache=cache, **_load_options(args))
        return scanner, str(store.path(args.profile, model))
    if args.scanner is None:
        raise UsageError("Name a scanner file, or use --store DIR --profile NAME.")
    path = Path(args.scanner)
    check_scanner_argument(args)
    if not path.is_file():  # before building a model for it
        raise ScannerFileError(f"Scanner file not found: {path}")
    if args.model:  # another model than the scanner's: said before building (downloading) it
        from audio_embed.registry import get_spec

        wanted, saved = get_spec(args.model).name, Scanner.read_metadata(path)["embedder"]
        name = str(saved.get("name")) if isinstance(saved, dict) else None
        if name is not None and name != wanted:
            raise ScannerFileError(
                f"{path} was trained with embedder {name}; --model {wanted} names another, "
                f"and a scanner works only with its own. Leave --model out (the scanner "
                f"rebuilds {name}), or use a scanner trained with {wanted}."
            )
    embedder = embedder_from_args(args.model, args) if args.model else None
    scanner = Scanner.load(path, embedder=embedder, cache=cache, **_load_options(args))
    return scanner, str(path)


def check_scanner_argument(args: argparse.Namespace) -> None:
    """A usage error when the SCANNER argument is a folder or a media file: the
    arguments were most likely given in the wrong order."""
    from audio_embed.scanner.persistence import not_a_scanner

    if args.scanner is None:
        return
    path = Path(args.scanner)
    if path.is_dir() and any(path.glob("*.scanner")):
        raise UsageError(
            f"{path} is a folder of scanners, not a scanner file: name one of its .scanner "
            f"files, or use --store {path} --profile NAME."
        )
    reason = not_a_scanner(path)
    if reason is not None:
        command = getattr(args, "command", None) or "scan"
        rest = "--labels L.csv --target LABEL" if command == "evaluate" else "FILES_OR_DIRS..."
        raise UsageError(
            f"{reason}. The scanner file comes first: audio-embed {command} SCANNER {rest} "
            f"(e.g. audio-embed {command} my.scanner "
            + ("--labels labels.csv --target horn" if command == "evaluate" else "recordings/")
            + ")."
        )


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``Scanner.load`` / ``ScannerStore.load`` from the command line."""
    options: dict[str, Any] = {"embedder_kwargs": embedder_kwargs(args) or None}
    if getattr(args, "allow_mismatch", False):
        options["allow_mismatch"] = True
    if getattr(args, "trust", None):
        options["trusted"] = list(args.trust)
    return options


def apply_overrides(scanner: Scanner, args: argparse.Namespace) -> None:
    """Settings given on the command line that override the loaded scanner's:
    --batch-size, --audio-stream (without it the scanner's own stream applies, and
    ``args.audio_stream`` is set to it for the progress bars' probe)."""
    if getattr(args, "batch_size", None):
        scanner.batch_size = args.batch_size
    if getattr(args, "audio_stream", None) is not None:
        scanner.audio_stream = args.audio_stream
    elif hasattr(args, "audio_stream"):
        args.audio_stream = scanner.audio_stream


def each(
    run: Run,
    inputs: Sequence[Input],
    many: Callable[..., Iterator[tuple[str, T | AudioEmbedError]]],
    desc: str,
) -> Iterator[tuple[Input, T | None, str | None]]:
    """:func:`audio_embed.batch.run_many` with progress bars; yields
    ``(input, result, None)`` or ``(input, None, reason)``, and reports each file
    that fails on stderr (the others go on; Ctrl-C stops everything)."""
    progress = Progress(run, len(inputs), desc) if run.show_progress else None
    try:
        for inp, result in run_many(many, inputs, progress=progress, cancel=run.cancel):
            if isinstance(result, Exception):
                yield inp, None, _skip(run, inp, result, desc)
            else:
                yield inp, result, None
    finally:
        if progress is not None:
            progress.close()


def _skip(run: Run, inp: Input, exc: BaseException, desc: str) -> str:
    reason = describe_error(exc)
    log.info("%s %s failed", desc.capitalize(), inp.path, exc_info=exc)
    run.skipped(inp.path, reason)
    return reason

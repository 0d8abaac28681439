"""``audio-embed index``: embed every sliding window of files into a searchable archive."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from audio_embed.cli.common import embedder_from_args, embedder_kwargs, make_cache
from audio_embed.cli.distributed import ray_options, ray_settings, runner_kwargs
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    audio_stream_options,
    cache_options,
    common_options,
    model_options,
    positive_float,
)
from audio_embed.cli.session import EXIT_FAILURE, PROG, Progress, Run, UsageError

if TYPE_CHECKING:
    from audio_embed.cache import CachedEmbeddings
    from audio_embed.errors import AudioEmbedError
    from audio_embed.index import EmbeddingIndex

__all__ = ["add_parser", "open_index", "run"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``index`` subcommand."""
    p = subparsers.add_parser(
        "index",
        parents=[
            common_options(),
            model_options(),
            cache_options(),
            ray_options(),
            audio_stream_options(
                "the first; a new index records it in its manifest, an existing one keeps its own"
            ),
        ],
        formatter_class=Formatter,
        help="build or extend a searchable archive of window embeddings",
        description=(
            "Embed every sliding window of audio and video files (folders are searched\n"
            "recursively) into an index: a directory ARCHIVE.idx holding the vectors\n"
            "(normalised per recording as a scanner does; float16), their files and times,\n"
            "the embedder and window settings, and a nearest-neighbour index (FAISS).\n"
            "Run it again to add files: unchanged files (same size and time, or same\n"
            "content) are skipped, changed ones replaced, moved ones renamed; --prune drops\n"
            "files that are no longer there. Embeddings go through the same\n"
            "cache as scan, so files already scanned are not decoded again. A file that\n"
            "cannot be read is reported and skipped (exit code 1); Ctrl-C leaves the\n"
            "archive as it was. With --ray the embedding runs on Ray workers (the same\n"
            "vectors); the driver writes the index."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} index recordings/ --model LOGMEL --out archive.idx\n"
            f"  {PROG} index new/ --out archive.idx          (adds; model from the archive)\n"
            f"  {PROG} index /mnt/archive/ --model HUBERT_BASE --out archive.idx --ray\n"
            f"  {PROG} search archive.idx --example recordings/a.wav:12.5"
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio/video files or folders")
    p.add_argument("--out", required=True, metavar="ARCHIVE.idx", help="the index directory")
    p.add_argument(
        "--prune",
        action="store_true",
        help="drop the windows of indexed files that are no longer there (deleted, or moved "
        "and not given again: a moved file given again is recognised by its content); the files "
        "of a folder none of whose files is left are kept (a drive not mounted looks like that)",
    )
    p.add_argument(
        "--prune-all",
        action="store_true",
        help="--prune, and also drop the files of folders none of whose files is left",
    )
    p.add_argument(
        "--model",
        metavar="M",
        help="embedder name (see models); required for a new index, checked for an existing one",
    )
    g = p.add_argument_group(
        "windows (a new index only; default: the model's scan windows, as train uses, "
        "else 1 s every 0.1 s; shared)"
    )
    g.add_argument("--window", type=positive_float, metavar="SEC", help="window length")
    g.add_argument("--hop", type=positive_float, metavar="SEC", help="step between windows")
    g.add_argument(
        "--encoding", choices=("per_window", "shared"), help="how windows reach the encoder"
    )
    g.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="storage of the vectors (float16 halves the size; see the README for its effect)",
    )
    return p


def open_index(run: Run, path: Path, *, model: str | None = None) -> EmbeddingIndex:
    """Open the index at ``path`` with the embedder it was built with, changed by
    --device/--checkpoint/--model-option (a change of its vectors is refused); a
    --model or --audio-stream given must be the index's (``args.audio_stream`` becomes
    the index's: what a scanner trained from it and the progress bars decode)."""
    from audio_embed.index import EmbeddingIndex
    from audio_embed.registry import embedder_from_config

    args = run.args
    index = EmbeddingIndex.open(path, cache=make_cache(args), batch_size=args.batch_size)
    if model is not None:
        from audio_embed.registry import get_spec

        if get_spec(model).name != index.embedder_name:
            raise UsageError(
                f"{path} holds {index.embedder_name} vectors; drop --model or give "
                f"--model {index.embedder_name}."
            )
    if hasattr(args, "audio_stream"):
        asked, held = args.audio_stream, index.audio_stream or 0
        if asked is not None and asked != held:
            raise UsageError(
                f"--audio-stream {asked}: {path} holds the vectors of audio stream {held}; "
                "leave --audio-stream out (the index's is used), or build another index "
                f"for stream {asked}."
            )
        args.audio_stream = index.audio_stream
    saved = index.manifest["embedder"].get("config")
    # the embedder the vectors were made with (its settings and weights), with what
    # --device/--checkpoint/--model-option change; a plugin's model not loaded says which
    embedder = (
        embedder_from_config(saved, where=str(path), **embedder_kwargs(args))
        if saved
        else embedder_from_args(index.embedder_name, args)
    )
    return EmbeddingIndex.open(
        path, embedder=embedder, cache=make_cache(args), batch_size=args.batch_size
    )


def _create(run: Run, path: Path) -> EmbeddingIndex:
    from audio_embed.index import EmbeddingIndex
    from audio_embed.scanner.defaults import model_scan_windows

    args = run.args
    if args.model is None:
        raise UsageError(f"{path} does not exist yet: name its embedder with --model M.")
    embedder = embedder_from_args(args.model, args)
    return EmbeddingIndex.create(
        path,
        embedder,
        windows=model_scan_windows(embedder, args.window, args.hop, args.encoding),
        dtype=args.dtype,
        cache=make_cache(args),
        batch_size=args.batch_size,
        audio_stream=args.audio_stream,
    )


def _ray_runner(
    run: Run, index: EmbeddingIndex
) -> Callable[..., Iterator[tuple[str, CachedEmbeddings | AudioEmbedError]]] | None:
    """With --ray: the workers' ``sliding_embeddings_many`` with the index's model,
    windows and audio stream, in input order (as ``EmbeddingIndex.add`` needs); else None."""
    options = ray_settings(run)
    if options is None:
        return None
    from audio_embed.distributed import RayScanner

    sw = index.windows
    runner = RayScanner.for_embedding(
        index.embedder_name,
        options,
        window=sw.window,
        hop=sw.hop,
        encoding=sw.encoding,
        batch_size=run.args.batch_size,
        audio_stream=index.audio_stream,
        ordered=True,
        **runner_kwargs(run),
    )
    return runner.sliding_embeddings_many


def _deleted_from_folders_still_there(index: EmbeddingIndex, gone: list[str]) -> list[str]:
    """The missing files of folders where another indexed file is still there: a folder
    none of whose files is left (gone, emptied, or the empty mount point of a drive that
    is not mounted) may come back, so its files are not pruned without --prune-all."""
    missing = set(gone)
    alive = {str(Path(f.path).parent) for f in index.files if f.path not in missing}
    return [f for f in gone if str(Path(f).parent) in alive]


def _prune_or_warn(run: Run, index: EmbeddingIndex, *, prune: bool, folders: bool) -> None:
    gone = index.missing()
    if prune:
        drop = gone if folders else _deleted_from_folders_still_there(index, gone)
        if drop:
            dropped = index.remove(drop)
            run.echo(f"Pruned {len(drop)} file(s) no longer there ({dropped} window(s)).")
        kept = sorted(set(gone) - set(drop))
        if kept:
            folders_gone = sorted({str(Path(f).parent) for f in kept})
            run.warn(
                f"kept {len(kept)} indexed file(s) of folders none of whose files is there "
                f"({', '.join(folders_gone[:3])}{' …' if len(folders_gone) > 3 else ''}): "
                "a drive that is not mounted looks like this. Mount it, or pass --prune-all "
                "to drop them too."
            )
    elif gone:
        run.warn(
            f"{len(gone)} indexed file(s) are no longer there (e.g. {gone[0]}): their windows "
            "still come up in searches. Index them again from their new place (a moved "
            "file is recognised by its content) or pass --prune to drop them."
        )


def run(run: Run) -> int:
    from audio_embed.batch import collect_inputs

    args = run.args
    path = Path(args.out)
    inputs, missing = collect_inputs(args.inputs)
    for item, reason in missing:
        run.skipped(item, reason)
    if path.exists():
        if any(v is not None for v in (args.window, args.hop, args.encoding)):
            raise UsageError(
                f"{path} exists: its windows are fixed; drop --window/--hop/--encoding."
            )
        index = open_index(run, path, model=args.model)
        created = False
    else:
        index = _create(run, path)
        created = True
    try:
        many = _ray_runner(run, index)
        show = run.show_progress and many is None  # a Ray runner draws its own bar
        progress = Progress(run, len(inputs), "embed") if show else None
        try:
            paths = [inp.path for inp in inputs]
            report = index.add(paths, progress=progress, cancel=run.cancel, many=many)
        finally:
            if progress is not None:
                progress.close()
    except BaseException:  # Ctrl-C, a failure: a new archive is not left behind empty
        if created and not index.files:
            shutil.rmtree(path, ignore_errors=True)
        raise
    for file, reason in report.failed:
        run.skipped(file, reason)
    if created and not index.files:
        shutil.rmtree(path, ignore_errors=True)
        run.warn(f"nothing was indexed, so {path} was not created.")
        return EXIT_FAILURE
    sw = index.windows
    run.echo(
        f"Indexed {len(inputs)} input(s) into {path}: {len(report.added)} added, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged"
        + (f", {len(report.moved)} moved (windows kept)" if report.moved else "")
        + (f", {len(report.failed)} failed" if report.failed else "")
        + f"; {report.windows_added} window(s) embedded."
    )
    _prune_or_warn(run, index, prune=args.prune or args.prune_all, folders=args.prune_all)
    run.echo(
        f"The index holds {len(index.files)} file(s), {len(index)} windows of {sw.window:g} s "
        f"every {sw.hop:g} s ({index.embedder_name}, {index.manifest['vector_dtype']})."
    )
    return EXIT_FAILURE if report.failed or missing else 0

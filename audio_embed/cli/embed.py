"""``audio-embed embed``: sliding-window embeddings of files into one ``.npz``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from audio_embed._io import atomic_writer
from audio_embed.bandwidth import SILENT_EMBEDDING, recording_silence_warning
from audio_embed.batch import collect_inputs
from audio_embed.cli.common import each, embedder_from_args, make_cache
from audio_embed.cli.distributed import each_on_ray, ray_options, ray_settings, runner_kwargs
from audio_embed.cli.options import (
    Formatter,
    Subparsers,
    audio_stream_options,
    cache_options,
    common_options,
    model_options,
    window_options,
)
from audio_embed.cli.session import EXIT_FAILURE, PROG, Run, UsageError
from audio_embed.errors import AudioEmbedError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``embed`` subcommand."""
    p = subparsers.add_parser(
        "embed",
        parents=[
            common_options(),
            window_options(),
            model_options(),
            cache_options(),
            ray_options(),
            audio_stream_options(),
        ],
        formatter_class=Formatter,
        help="write sliding-window embeddings of files to a .npz",
        description="Embed every sliding window of each file and write one .npz (no pickle): "
        "'files' (the input paths), and for the i-th file 'i/starts' (window start times, s), "
        "'i/embeddings' (float32 [windows, dim]) and 'i/duration'; plus 'model', 'window', "
        "'hop', 'audio_stream' (the audio stream decoded: its number, or 'mix'); 'i/band_edge' "
        "(Hz) and 'i/peak' (largest absolute sample) where known. Files "
        "that cannot be read are reported and skipped (exit code 1).",
        epilog=f"example:\n  {PROG} embed a.wav b.mp4 --model LOGMEL --out emb.npz\n"
        "  python -c \"import numpy as np; print(np.load('emb.npz')['0/embeddings'].shape)\"",
    )
    p.add_argument("files", nargs="+", metavar="FILE_OR_DIR", help="audio/video files or folders")
    p.add_argument("--model", required=True, metavar="M", help="embedder name (see models)")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="output file")
    return p


def run(run: Run) -> int:
    from audio_embed.scanner import Scanner
    from audio_embed.windows import SlidingWindows, TargetedWindows

    args = run.args
    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out must name a .npz file. Got {args.out!r}.")
    options = ray_settings(run)
    if options is None:
        embedder = embedder_from_args(args.model, args)
        scanner = Scanner(
            embedder,
            scan_windows=SlidingWindows(args.window, args.hop, args.encoding),
            train_windows=TargetedWindows(args.window),
            cache=make_cache(args),
            batch_size=args.batch_size,
            audio_stream=args.audio_stream,
        )
        model = embedder.name
    else:  # the model is built on the workers only
        from audio_embed.distributed import RayScanner
        from audio_embed.registry import get_spec

        model = get_spec(args.model).name
        runner = RayScanner.for_embedding(
            model,
            options,
            window=args.window,
            hop=args.hop,
            encoding=args.encoding,
            batch_size=args.batch_size,
            audio_stream=args.audio_stream,
            ordered=True,
            **runner_kwargs(run),
        )
    inputs, missing = collect_inputs(args.files)
    failed = [item for item, _ in missing]
    for item, reason in missing:
        run.skipped(item, reason)
    arrays: dict[str, Any] = {}
    files: list[str] = []
    if options is None:
        loop = each(run, inputs, scanner.sliding_embeddings_many, "embed")
    else:
        loop = each_on_ray(run, inputs, runner.sliding_embeddings_many, "embed")
    for inp, entry, _reason in loop:
        if entry is None:
            failed.append(str(inp.path))
            continue
        i = len(files)
        files.append(str(inp.path))
        arrays.update(entry.arrays(f"{i}/"))
        silent = recording_silence_warning(
            inp.path, entry.peak, args.audio_stream, SILENT_EMBEDDING
        )
        if silent is not None:
            run.warn(silent)
        run.echo(
            f"{inp.path}: {len(entry.starts)} windows × {entry.embeddings.shape[1]} "
            f"({entry.duration:.1f} s)"
        )
    run.cancel.check()
    if not files:
        raise AudioEmbedError("No file could be embedded; nothing was written.")
    arrays.update(
        files=np.array(files, dtype=str),
        model=np.array(model),
        window=np.float64(args.window),
        hop=np.float64(args.hop),
        audio_stream=np.array(args.audio_stream or 0),  # a number, or "mix"
    )
    with atomic_writer(out) as fh:
        np.savez(fh, **arrays)
    run.echo(
        f"Wrote {len(files)} file(s) to {out} (keys: files, <i>/starts, <i>/embeddings, "
        "<i>/band_edge and <i>/peak where known)."
    )
    if failed:
        run.warn(f"{len(failed)} of {len(failed) + len(files)} input(s) failed.")
        return EXIT_FAILURE
    return 0

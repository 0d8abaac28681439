"""``--ray``: the options that run ``scan``, ``embed`` and ``evaluate`` on Ray, and
the per-file loop for a runner that draws its own progress bar."""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from audio_embed.cli.common import embedder_kwargs
from audio_embed.cli.options import (
    audio_stream_options,
    cache_options,
    common_options,
    model_options,
    positive_int,
    scanner_source_options,
)
from audio_embed.cli.session import Run, UsageError, describe_error

if TYPE_CHECKING:
    from audio_embed.batch import Input
    from audio_embed.distributed import RayOptions
    from audio_embed.errors import AudioEmbedError

__all__ = [
    "each_on_ray",
    "ray_options",
    "ray_settings",
    "runner_kwargs",
    "scanner_command_options",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


def scanner_command_options() -> list[argparse.ArgumentParser]:
    """The option groups of a command that runs a scanner over files (``scan``,
    ``evaluate``): common, scanner source, model, cache, Ray and audio stream options."""
    return [
        common_options(),
        scanner_source_options(),
        model_options(),
        cache_options(),
        ray_options(),
        audio_stream_options(
            "the scanner's own, the one it was trained on (the first for a scanner saved "
            "without one)"
        ),
    ]


def ray_options() -> argparse.ArgumentParser:
    """--ray, --ray-address, --workers."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("scale out on Ray (pip install 'audio_embed[ray]')")
    g.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray: the cluster at --ray-address or $RAY_ADDRESS, else a local Ray "
        "started for this run; same results as without. The embedding cache is used only "
        "with --cache-dir, a folder every node reads and writes at the same path",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join, e.g. auto or ray://head:10001 (with --ray)",
    )
    g.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="model workers with --ray (default: one per GPU, else one per CPU; --threads "
        "sets each CPU worker's threads)",
    )
    return parser


def ray_settings(run: Run) -> RayOptions | None:
    """The :class:`~audio_embed.distributed.RayOptions` asked for, or None without --ray."""
    args = run.args
    if not getattr(args, "ray", False):
        given = [
            o for o, v in (("--ray-address", args.ray_address), ("--workers", args.workers)) if v
        ]
        if given:
            raise UsageError(
                f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --ray."
            )
        return None
    if importlib.util.find_spec("ray") is None:
        raise UsageError("--ray needs Ray, which is not installed: pip install 'audio_embed[ray]'.")
    from audio_embed.distributed import RayOptions

    cache_dir = None if getattr(args, "no_cache", False) else getattr(args, "cache_dir", None)
    return RayOptions(
        address=args.ray_address,
        workers=args.workers,
        threads=args.threads,
        embedder_kwargs=embedder_kwargs(args),
        cache_dir=cache_dir,
        plugins=tuple(getattr(args, "plugin", None) or ()),
    )


def each_on_ray(
    run: Run,
    inputs: Sequence[Input],
    many: Callable[..., Iterator[tuple[str, T | AudioEmbedError]]],
    desc: str,
) -> Iterator[tuple[Input, T | None, str | None]]:
    """As :func:`audio_embed.cli.common.each` for a Ray runner (which draws the one
    progress bar): yields ``(input, result, None)`` or ``(input, None, reason)``,
    reporting each failed file on stderr."""
    from audio_embed.batch import run_many

    for inp, result in run_many(many, inputs, cancel=run.cancel):
        if isinstance(result, Exception):
            reason = describe_error(result)
            log.info("%s %s failed", desc.capitalize(), inp.path, exc_info=result)
            run.skipped(inp.path, reason)
            yield inp, None, reason
        else:
            yield inp, result, None


def runner_kwargs(run: Run) -> dict[str, Any]:
    """How a runner started from the CLI shows progress."""
    return {"progress_bar": bool(run.show_progress)}

"""Option helpers shared by the commands: the help formatter, argparse types for
numbers, and the option groups several commands take (each function returns a
new parent parser: parents share their action objects)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = [
    "Formatter",
    "Subparsers",
    "audio_stream",
    "audio_stream_options",
    "cache_options",
    "common_options",
    "model_options",
    "nonneg_float",
    "number_type",
    "positive_float",
    "positive_int",
    "probability",
    "scanner_source_options",
    "whole_number",
    "window_options",
]

#: What ``ArgumentParser.add_subparsers`` returns; each command's ``add_parser`` takes it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written; adds "(default: X)" where a default says something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def number_type(
    ok: Callable[[float], bool], expected: str, constraint: str
) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite float satisfying ``ok``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {constraint}, got {text!r}")
        return value

    return parse


positive_float = number_type(lambda v: v > 0, "a number of seconds", "> 0")
nonneg_float = number_type(lambda v: v >= 0, "a number", ">= 0")
probability = number_type(lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]", "in [0, 1]")


def whole_number(text: str, minimum: int, *, alternative: str = "") -> int:
    """``text`` as a whole number >= ``minimum`` (argparse ``type``); the error
    messages name ``alternative`` (e.g. ``"auto"``) when the option also takes it."""
    either = f"{alternative} or " if alternative else ""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {either}a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {either}>= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def model_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of --model-option: VALUE read as JSON (``2``, ``true``,
    ``[1, 2]``), else kept as text (``frames=chunk``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. audio_speed=2), got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def common_options(threads: int | None = None) -> argparse.ArgumentParser:
    """-q, -v, --threads (a new parser each call: parents share their action objects)."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("output and resources")
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars and no warnings (errors and skipped files are still reported)",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="log at INFO level; tracebacks on errors"
    )
    g.add_argument(
        "--threads",
        type=positive_int,
        default=threads,
        metavar="N",
        help="CPU threads for torch and scikit-learn (default: "
        + (f"{threads}" if threads else "their own choice")
        + "; 1 is often fastest on a busy shared machine)",
    )
    g.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this Python module first, so the models it registers can be named "
        "(repeatable; a module on the Python path, --plugin my_models, or a file's path, "
        "--plugin ./my_models.py)",
    )
    return common


def model_options() -> argparse.ArgumentParser:
    """--device, --checkpoint, --batch-size, --model-option."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("model")
    g.add_argument("--device", help="torch device for the model, e.g. cpu, cuda, cuda:1")
    g.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="load the model's weights from this local file instead of the default location",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="windows per model call (default: sized automatically from memory)",
    )
    g.add_argument(
        "--model-option",
        type=model_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the model, as create_embedder(NAME, KEY=VALUE) takes it "
        "(repeatable; VALUE read as JSON, else as text), e.g. --model-option audio_speed=2 "
        "for BIRDNET_V24; a scanner or index keeps its model's settings; "
        "`audio-embed models NAME --settings` lists them with their defaults",
    )
    return parser


def cache_options() -> argparse.ArgumentParser:
    """--cache-dir, --no-cache."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("embedding cache")
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where sliding-window embeddings are cached (default: $AUDIO_EMBED_CACHE_DIR or "
        "the user cache folder, ~/.cache/audio_embed/embeddings on Linux). It grows by about "
        "37 MB per hour of audio for LOGMEL, 0.44 GB for a 3072-wide _ML model, and is "
        "never pruned: delete the folder to reclaim the space",
    )
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    return parser


def window_options(*, model_defaults: bool = False) -> argparse.ArgumentParser:
    """--window, --hop, --encoding; with ``model_defaults`` they default to None
    (the model's own scan settings apply, see ``model_scan_windows``)."""
    from audio_embed.windows import SlidingWindows

    generic = SlidingWindows()
    own = "the model's own, else " if model_defaults else ""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("windows")
    g.add_argument(
        "--window",
        type=positive_float,
        default=None if model_defaults else generic.window,
        metavar="SEC",
        help=f"window length (default: {own}{generic.window:g})",
    )
    g.add_argument(
        "--hop",
        type=positive_float,
        default=None if model_defaults else generic.hop,
        metavar="SEC",
        help=f"step between windows (default: {own}{generic.hop:g})",
    )
    g.add_argument(
        "--encoding",
        choices=("per_window", "shared"),
        default=None if model_defaults else generic.encoding,
        help="encode each window alone, or each stretch once and pool frames per window "
        f"(layered models with frame hooks; default: {generic.encoding})",
    )
    return parser


def audio_stream(text: str) -> int | str:
    """An ``--audio-stream`` value: a whole number >= 0, or ``mix`` (argparse ``type``)."""
    return "mix" if text == "mix" else whole_number(text, 0, alternative="mix")


def audio_stream_options(default: str = "the first") -> argparse.ArgumentParser:
    """--audio-stream N|mix; ``default`` says what applies without it."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("input")
    g.add_argument(
        "--audio-stream",
        type=audio_stream,
        default=None,
        metavar="N|mix",
        help="which audio stream of a file with several to decode: its position among the "
        "file's audio streams, from 0 as ffmpeg's -map 0:a:N (e.g. 1 for an OBS "
        "recording's second track; a file without it is reported, naming the streams it "
        "has), or mix: all of them averaged, on the file's clock (the file is read once "
        f"per stream); default: {default}",
    )
    return parser


def scanner_source_options() -> argparse.ArgumentParser:
    """--store, --profile, --model (a scanner from a store instead of a file),
    --allow-mismatch, --trust."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("scanner from a store (instead of a SCANNER file)")
    g.add_argument("--store", metavar="DIR", help="a folder of scanners made by train --store")
    g.add_argument("--profile", metavar="NAME", help="the profile name in --store")
    g.add_argument(
        "--model",
        metavar="M",
        help="the embedder of the scanner (with --store; with a SCANNER file it must match "
        "the one it was trained with)",
    )
    g = parser.add_argument_group("loading a scanner")
    g.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="load a scanner even when its embedder's settings or weights differ from the "
        "ones it was trained with (a warning instead of an error; scores may be wrong)",
    )
    g.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="TYPE",
        help="a type the scanner's classifier may hold besides scikit-learn's and numpy's "
        "(your own estimator: --trust my_parts.MyEstimator; repeatable; only for files "
        "you trust)",
    )
    return parser

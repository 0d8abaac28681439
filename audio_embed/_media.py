"""Which files are audio or video, by extension (no decoder imported: torch-free)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from audio_embed.errors import InvalidInputError

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "is_media_file",
    "path_list",
    "same_stem_files",
    "same_stem_hint",
]

_P = TypeVar("_P")

# production sound and field recorders write Broadcast Wave (.bwf) and, past 4 GB, RF64 /
# Sony Wave64: a folder scan skipped them without a word, as .au, .aifc, .m4b, .ape, .tta
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff",
     ".mka", ".caf", ".amr", ".ac3", ".wv", ".mp2", ".bwf", ".rf64", ".w64", ".au", ".snd",
     ".aifc", ".m4b", ".ape", ".tta", ".spx"}
)  # fmt: skip
# camcorders write .mts/.m2ts (AVCHD), phones .3gp, broadcast .mxf: a folder scan skipped them
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv",
     ".mts", ".m2ts", ".3gp", ".3g2", ".mxf", ".ogv", ".vob", ".dv", ".asf"}
)  # fmt: skip
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def is_media_file(path: str | os.PathLike[str]) -> bool:
    """True when the extension is one of :data:`MEDIA_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


def path_list(items: Iterable[_P], taker: str) -> list[_P]:
    """``items`` as a list, refusing one path where ``taker`` takes several.

    A string is iterable: before, ``scan_to_folder(scanner, "film.mp4", ...)`` took
    its characters for files, and the ``.`` among them scanned the current folder.

    Raises:
        InvalidInputError: ``items`` is a ``str``, ``bytes`` or path object.
    """
    if isinstance(items, str | bytes | os.PathLike):
        one = os.fsdecode(items)
        raise InvalidInputError(
            f"{taker} takes a list of paths. Got the single path {one!r} instead: pass [{one!r}]."
        )
    return list(items)


def same_stem_hint(path: str | os.PathLike[str]) -> str:
    """For a file that is not there: the media files of its folder that differ from
    it by their extension only, as " (did you mean 'rec.wav'?)", else "".

    A markers or labels table often names ``rec`` or ``rec.mp3`` for ``rec.wav``
    (before: "no such file" alone, with the right file beside it).
    """
    near = same_stem_files(path, is_media_file)
    if not near:
        return ""
    return f" (did you mean {' or '.join(repr(n) for n in near[:3])}?)"


def same_stem_files(path: str | os.PathLike[str], keep: Callable[[str], bool]) -> list[str]:
    """The names of the files beside ``path`` that differ from it by their extension
    only (or add one to it) and that ``keep`` takes, sorted; none when its folder
    cannot be read."""
    p = Path(path)
    stems = {p.name.casefold(), p.stem.casefold()}
    try:
        with os.scandir(p.parent) as entries:
            return sorted(
                e.name
                for e in entries
                if keep(e.name)
                and Path(e.name).stem.casefold() in stems
                and e.name != p.name
                and e.is_file()
            )
    except OSError:
        return []

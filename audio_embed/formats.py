"""Reading markers and writing detections in the formats people already use.

Markers: ``file,time,kind`` CSV; Audacity label tracks (``start\\tend\\tlabel``)
and Raven selection tables, where the label / annotation names the kind.

Label files next to recordings: :func:`recording_next_to` finds the recording
an Audacity or Raven file marks, :func:`read_marker_files` reads and merges
several markers files of any of the three formats.

Detections: CSV and JSON (file, start, end, peak, score), Audacity label
tracks, Raven selection tables, and SubRip (``.srt``) and WebVTT (``.vtt``)
subtitles for video players and editors (one cue per detection, the text
``label score``), written by :func:`write_detections` and read back by
:func:`read_detections`. Every writer writes atomically: a
temporary file, then a rename, so an interrupted run leaves no partial file.
Each format is a :class:`ResultFormat` in one registry, the built-ins too:
:func:`register_format` adds one of your own (``scan --format NAME`` once its
module is loaded, ``--plugin MODULE``).

Nothing here imports torch or scikit-learn.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any, Literal, Protocol, TypeAlias

from attrs import frozen

from audio_embed._io import atomic_writer
from audio_embed._media import is_media_file, path_list, same_stem_files, same_stem_hint
from audio_embed.errors import InvalidInputError, MarkerError, ResultFileError
from audio_embed.types import Detection
from audio_embed.windows import MARKER_KINDS, Markers

__all__ = [
    "FORMAT_SUFFIXES",
    "MarkerFormat",
    "OutputFormat",
    "ResultFormat",
    "ResultReader",
    "ResultWriter",
    "atomic_write_text",
    "clock_seconds",
    "format_detections",
    "guess_marker_format",
    "list_formats",
    "merge_markers",
    "read_audacity_labels",
    "read_detections",
    "read_marker_files",
    "read_markers",
    "read_raven_table",
    "read_result",
    "read_review_markers",
    "recording_next_to",
    "register_format",
    "result_format",
    "target_label",
    "write_detections",
    "write_markers",
]

log = logging.getLogger(__name__)

#: A result format's name: a built-in (``csv``, ``json``, ``audacity``, ``raven``,
#: ``srt``, ``vtt``) or one registered with :func:`register_format`.
OutputFormat: TypeAlias = str
MarkerFormat = Literal["csv", "audacity", "raven"]


class ResultWriter(Protocol):
    """Detections as the text of one result file. ``file``: the recording (its absolute
    path in a scan); ``label``: the label text (``--label``, default ``target``)."""

    def __call__(self, detections: Sequence[Detection], *, file: str, label: str) -> str: ...


class ResultReader(Protocol):
    """The detections in the text of a result file this format's writer wrote; a
    ValueError (or KeyError, IndexError, TypeError) when it is not one (a person's own
    file of that name)."""

    def __call__(self, text: str) -> list[Detection]: ...


@frozen
class ResultFormat:
    """A format of scan results: ``--format name`` writes ``write``'s text to
    ``<recording><suffix>``. ``read`` (optional) reads one back: without it, an
    existing file of the result's name is never taken for an earlier result (it is
    not replaced beside its recording, ``--skip-existing`` scans again, and
    ``detections.csv`` leaves out earlier scans' results in it). ``recordings``
    (optional): the recordings a result names (CSV's and JSON's ``file`` field),
    which catches a result of another recording of the same name."""

    name: str
    suffix: str
    write: ResultWriter
    read: ResultReader | None = None
    recordings: Callable[[str], Iterable[str]] | None = None


_FORMATS: dict[str, ResultFormat] = {}


class _Suffixes(Mapping[str, str]):
    """The suffix of each registered format, by name (a live, read-only view)."""

    def __getitem__(self, name: str) -> str:
        return _FORMATS[name].suffix

    def __iter__(self) -> Iterator[str]:
        return iter(dict(_FORMATS))

    def __len__(self) -> int:
        return len(_FORMATS)

    def __repr__(self) -> str:
        return repr(dict(self))


#: The file suffix of each result format, by name (the registered ones, plug-ins' too).
FORMAT_SUFFIXES: Mapping[str, str] = _Suffixes()


def register_format(
    name: str,
    suffix: str,
    writer: ResultWriter,
    reader: ResultReader | None = None,
    *,
    recordings: Callable[[str], Iterable[str]] | None = None,
    overwrite: bool = False,
) -> ResultFormat:
    """Add the result format ``name`` (``scan --format name``, ``BatchSettings(fmt=name)``,
    :func:`write_detections`): ``writer(detections, file=..., label=...)`` returns the
    file's text, written to ``<recording><suffix>``; ``reader(text)`` (optional) reads
    it back (see :class:`ResultFormat`). The built-in formats are registered so too.
    A name already registered is an :class:`~audio_embed.errors.InvalidInputError`
    unless ``overwrite``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise InvalidInputError(
            f"A result format's name is letters, digits, '_', '-' or '.' (it is given as "
            f"--format NAME). Got {name!r} instead."
        )
    if not re.fullmatch(r"\.[^/\\\s]+", suffix or ""):
        raise InvalidInputError(
            f"A result format's suffix starts with '.' and names no folder (e.g. '.tsv'). "
            f"Got {suffix!r} instead."
        )
    if not callable(writer) or (reader is not None and not callable(reader)):
        raise InvalidInputError(f"The writer and reader of format {name!r} must be callables.")
    if name in _FORMATS and not overwrite:
        raise InvalidInputError(
            f"The result format {name!r} is already registered; pass overwrite=True to replace it."
        )
    fmt = ResultFormat(name, suffix, writer, reader, recordings)
    _FORMATS[name] = fmt
    return fmt


def result_format(name: str) -> ResultFormat:
    """The registered format ``name``; an :class:`~audio_embed.errors.InvalidInputError`
    naming those there are when it is not registered."""
    found = _FORMATS.get(name)
    if found is None:
        raise InvalidInputError(
            f"Unknown output format {name!r}; use {', '.join(_FORMATS)} (a format of your "
            "own: register_format in a module loaded first, --plugin MODULE)."
        )
    return found


def list_formats() -> tuple[str, ...]:
    """The names of the registered result formats, the built-ins first."""
    return tuple(_FORMATS)


_KIND_ALIASES = {
    "positive": "positive",
    "pos": "positive",
    "p": "positive",
    "target": "positive",
    "yes": "positive",
    "y": "positive",  # as "n" is negative (before: "unknown marker kind 'y'")
    "1": "positive",
    "soft": "soft",
    "maybe": "soft",
    "ambiguous": "soft",
    "?": "soft",
    "negative": "negative",
    "neg": "negative",
    "n": "negative",
    "no": "negative",
    "0": "negative",
}


def _kind(value: str, where: str) -> str:
    kind = _KIND_ALIASES.get(value.strip().lower())
    if kind is None:
        raise MarkerError(
            f"{where}: unknown marker kind {value!r}; use positive, soft or negative "
            "(or yes/no/maybe, y/n/?, 1/0)."
        )
    return kind


def clock_seconds(value: str) -> float:
    """Seconds from ``12.5``, or a clock time as players and video editors show it:
    ``M:SS.s`` (``1:23.5`` = 83.5) or ``H:MM:SS.s`` (``1:02:03`` = 3723).

    Raises:
        ValueError: anything else, among them ``HH:MM:SS:FF`` timecodes (their frames
            need the frame rate).
    """
    parts = value.strip().split(":")
    if len(parts) == 1:
        return float(value)
    if len(parts) > 3:
        raise ValueError(
            f"{value!r} looks like a timecode with frames (HH:MM:SS:FF), which needs the "
            "frame rate: give seconds (83.5) or H:MM:SS.sss (0:01:23.5)"
        )
    *whole, sec = parts
    bad = ValueError(f"{value!r} is not a clock time (M:SS.s or H:MM:SS.s)")
    try:
        seconds = float(sec)
        units = [int(p) for p in whole]
    except ValueError:
        raise bad from None
    if (
        not 0 <= seconds < 60
        or any(p.strip().startswith("-") for p in whole)  # "-0:30" (before: +30 s)
        or (len(units) == 2 and units[1] >= 60)
    ):
        raise bad
    for i, u in enumerate(reversed(units)):
        seconds += u * 60 ** (i + 1)
    return seconds


def _time(value: str, where: str) -> float:
    try:
        t = clock_seconds(value)
    except ValueError as exc:
        if "frames" in str(exc):
            raise MarkerError(f"{where}: {exc}.") from None
        comma = (
            " A decimal comma is read only in a CSV whose columns are separated by ';' or "
            "tabs: write the time with a point (26.5), or separate the columns with ';'."
            if "," in value
            else ""
        )
        raise MarkerError(
            f"{where}: {value!r} is not a time in seconds (or M:SS.s, H:MM:SS.s).{comma}"
        ) from None
    except TypeError:
        raise MarkerError(f"{where}: {value!r} is not a time in seconds.") from None
    if not math.isfinite(t) or t < 0:
        raise MarkerError(f"{where}: marker time must be a finite number >= 0. Got {value!r}.")
    return t


def listed_file(name: str, root: Path) -> Path:
    """The file a markers or labels CSV names: relative names against ``root``. A
    name written on Windows (``train\\rec.wav``) that does not exist here, where
    ``\\`` is not a separator, is read with ``/`` when that file exists; one starting
    with ``~`` (``~/rec.wav``, as a shell reads it) from the home folder, unless the
    CSV's folder holds a folder named ``~`` with it (before: ``m/~/rec.wav``, no such
    file)."""
    p = Path(name)
    full = p if p.is_absolute() else root / p
    if name.startswith("~") and len(p.parts) > 1 and not full.exists():
        # "~/rec.wav", "~alice/rec.wav": a home folder; "~rec.wav" (an Office lock or
        # backup file) is a name, and a user not known here is one too (review:
        # expanduser's RuntimeError "Could not determine home directory")
        try:
            return p.expanduser()
        except RuntimeError:
            pass
    if os.sep == "/" and "\\" in name and not full.exists():
        alt = Path(name.replace("\\", "/"))
        alt_full = alt if alt.is_absolute() else root / alt
        if alt_full.exists():
            return alt_full
    return full


def read_from_here_hint(missing: Iterable[str | os.PathLike[str]], root: Path, what: str) -> str:
    """For files a table names that are not there: when one is there read from the
    current folder instead of the table's (``recordings/a.wav`` in
    ``labels/markers.csv``, meant from the folder above), a sentence saying so;
    else ""."""
    for m in missing:
        try:
            rel = Path(m).relative_to(root)
        except ValueError:
            continue
        if root != Path(".") and not rel.is_absolute() and rel.is_file():
            fix = Path(os.path.relpath(rel, root))
            return (
                f" {rel} is there from the current folder, but the names in {what} are "
                f"read from its own folder, {root}: write them relative to it ({fix}) "
                "or as absolute paths."
            )
    return ""


def csv_table(text: str) -> tuple[str, int, str]:
    """A CSV's text from its header line on, how many lines come before the header, and a
    hint for the error of a file whose header is not found: blank lines (or rows of
    empty cells, ``,,``) and comment lines (starting with ``#``, a note a script or
    spreadsheet export writes) above the header are left out (before: the first of
    them was taken for the header, so such a file was refused). Below the header,
    a line is a row unless it is a comment (:func:`csv_comment_row`)."""
    lines = text.split("\n")
    n = 0
    hint = ""
    while n < len(lines):
        line = lines[n].strip()
        if line.startswith("#") and not _names_a_table(_header_fields(line)):
            # (a header whose first column is named '#', row numbers, is the header)
            if not hint and _names_a_table(_header_fields(line.lstrip("#"))):
                hint = (
                    f" Line {n + 1}, {line[:60]!r}, looks like the header written as a "
                    "comment: delete its '#' (lines starting with '#' above the header "
                    "are comments, left out)."
                )
        elif line.strip(",;\t "):
            break
        n += 1
    return "\n".join(lines[n:]), n, hint


def csv_separator(text: str) -> str:
    """The separator of a CSV, from its header line: ``,``; else ``;`` (what a
    spreadsheet writes where the decimal mark is a comma) or a tab when the header
    holds one of those and no comma."""
    header = text.split("\n", 1)[0]
    if "," not in header:
        for sep in (";", "\t"):
            if sep in header:
                return sep
    return ","


def decimal_point(value: str) -> str:
    """``value`` with a decimal comma (``3,25``, as some locales write) as a point."""
    return value.replace(",", ".")


def csv_number(value: str, separator: str) -> str:
    """``value`` with a decimal comma read as a point in a ``;``- or tab-separated CSV
    (in a comma-separated one a comma cannot be inside a number)."""
    return decimal_point(value) if separator in (";", "\t") else value


#: The header lines of a markers CSV, to name the one a table without its header lacks
#: (three cells ending in a number: a selection without its kind, ``file,start,end``).
_MARKER_HEADERS = ("file,time,kind", "file,time", "file,start,end,kind", "file,start,end")


def _is_time(text: str) -> bool:
    try:
        clock_seconds(text)
    except ValueError:
        return False
    return True


def csv_headerless_hint(
    names: Sequence[str | None] | None, separator: str, headers: Sequence[str]
) -> str:
    """A hint for a CSV whose first line is a row of values (a time among them), not
    its column names: a table exported without its header. It names the one of
    ``headers`` with as many columns as the line, else the first."""
    cells = [(n or "").strip() for n in names or ()]
    if not any(_is_time(csv_number(cell, separator)) for cell in cells):
        return ""
    fits = [h for h in headers if h.count(",") + 1 == len(cells)]
    if _is_time(csv_number(cells[-1], separator)):  # no kind: times at the end
        fits = [h for h in fits if not h.endswith("kind")] or fits
    header = (fits or list(headers))[0].replace(",", separator)
    return (
        f" Its first line ({separator.join(cells)}) holds values, not column names: "
        f"add the line {header} above it."
    )


def csv_blank_row(row: Mapping[str | None, object]) -> bool:
    """A row of empty cells (``,,`` or ``;;``): what a spreadsheet exports for rows it
    once held, or for the blank lines below a table."""
    cells = [c for v in row.values() for c in (v if isinstance(v, list) else [v])]
    return all(not str(c or "").strip() for c in cells)


def csv_comment_row(
    row: Mapping[str | None, object],
    fieldnames: Sequence[str],
    times: Collection[str],
    separator: str,
) -> bool:
    """Whether a row below a CSV's header is a comment: its first cell starts with ``#``
    and none of its ``times`` columns (lower-case names: ``time``, ``start``, ``onset``…)
    holds a time (``# reviewed up to here``, ``# take 2, from 1:00``). A file named
    ``#1.wav`` with its time is a row (before: every ``#`` line below the header was a
    row, so a review file's comment counted as a row left unanswered, and a markers or
    labels CSV's was refused)."""
    if not fieldnames or not str(row.get(fieldnames[0]) or "").lstrip().startswith("#"):
        return False
    for name in fieldnames:
        value = row.get(name)
        if name.strip().lower() in times and isinstance(value, str) and value.strip():
            # a time, or what was meant for one ("1:75", "12 s", a timecode): a row, to
            # be refused with its reason (review: "#take.wav,1:75" was left out silently)
            if value.strip()[0].isdigit() or _is_time(csv_number(value, separator)):
                return False
    return True


def csv_extra_fields(row: Mapping[str | None, object], where: str, separator: str) -> None:
    """Refuse a row with more fields than its header (``csv.DictReader`` files them
    under None): usually a name holding the separator, not quoted."""
    extra = row.get(None)
    if extra:
        n = len(row) - 1 + len(extra)  # type: ignore[arg-type]
        raise MarkerError(
            f"{where}: {n} fields where the header has {len(row) - 1}. A name holding "
            f'{separator!r} must be in double quotes (e.g. "my rec{separator} take 1.wav").'
        )


def csv_duplicate_columns(
    fieldnames: Sequence[str] | None, where: str, used: Iterable[str]
) -> None:
    """Refuse a header naming a column it reads twice (``file,time,time,kind``, or
    ``Time`` and ``time``): ``csv.DictReader`` keeps the last one's values, silently."""
    names = [(f or "").strip().lower() for f in fieldnames or []]
    twice = sorted({n for n in used if names.count(n) > 1})
    if twice:
        raise MarkerError(
            f"{where}: the header names the column {twice[0]!r} {names.count(twice[0])} "
            "times, and only one can be read. Rename or delete the others."
        )


#: How a zip file (Excel's .xlsx, LibreOffice's .ods) and an OLE2 compound file (Excel's
#: older .xls) start.
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read_text_file(p: Path, what: str = "markers") -> str:
    """A markers or labels file's text: UTF-8 (with or without a BOM), UTF-16 with a
    BOM (Excel's "Unicode Text"), else Windows-1252, what Excel on Windows writes as
    "CSV (Comma delimited)" (names that decode wrongly then name files that do not
    exist, which training and evaluation report). Line ends are ``\\n`` whatever
    the file's (CRLF, or CR alone as Excel for Mac writes).

    Raises:
        MarkerError: unreadable, or not text (NUL bytes, or not Windows-1252 either).
    """
    if is_media_file(p) and p.is_file():  # before: the whole video read, "NUL bytes"
        raise MarkerError(
            f"Cannot read {what} file {p}: it is a recording (audio or video), not a {what} file."
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise MarkerError(f"Cannot read {what} file {p}: {exc}") from exc
    if raw.startswith((_ZIP_MAGIC, _OLE_MAGIC)):  # before: "not a text file (NUL bytes)"
        raise MarkerError(
            f"Cannot read {what} file {p}: it is a workbook (Excel .xlsx or .xls, "
            "LibreOffice .ods, …), not text. Save the sheet as CSV (Excel: File › Save As › "
            "CSV UTF-8; LibreOffice: File › Save As › Text CSV) and give that file."
        )
    try:
        # Excel's "Unicode Text" is UTF-16 with a byte-order mark
        text = raw.decode("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig")
    except UnicodeDecodeError as exc:
        escaped = raw.decode("utf-8-sig", errors="surrogateescape")
        if any(c > "\x7f" and not "\udc80" <= c <= "\udcff" for c in escaped):
            # UTF-8 text holding a file name that is not (as this library writes one:
            # its bytes escaped); Windows-1252 would garble the file's UTF-8 names
            text = escaped
        else:
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError:
                raise MarkerError(
                    f"Cannot read {what} file {p}: {exc}. Save it as UTF-8 text."
                ) from exc
            log.info("%s is not UTF-8; read as Windows-1252", p)
    if "\x00" in text:
        raise MarkerError(f"Cannot read {what} file {p}: not a text file (NUL bytes).")
    # line ends as text mode reads them: CRLF (Windows) and CR alone (Excel for Mac's
    # "CSV (Macintosh)"; before: "new-line character seen in unquoted field")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_text(p: Path) -> str:
    return read_text_file(p)


def file_key(path: str | os.PathLike[str]) -> str:
    """One key for every spelling of a file (``a.wav``, ``/data/a.wav``, ``x/../a.wav``,
    a link to it)."""
    return os.path.normcase(os.path.realpath(path))


def one_name_per_file() -> Callable[[str], str]:
    """A function giving every spelling of one recording (:func:`file_key`) the first
    spelling it saw: two spellings trained as two recordings would label each one's
    marked sounds negative in the other."""
    seen: dict[str, str] = {}
    spelt: dict[str, str] = {}  # realpath once per spelling, not once per row

    def name(file: str) -> str:
        if file not in spelt:
            spelt[file] = seen.setdefault(file_key(file), file)
        return spelt[file]

    return name


def _collect(
    rows: Iterable[tuple[str, float, str]],
    spans: Iterable[tuple[str, float, float]] = (),
) -> dict[str, Markers]:
    grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    extents: dict[str, list[tuple[float, float]]] = defaultdict(list)
    name = one_name_per_file()
    for file, t, kind in rows:
        grouped[name(file)][kind].append(t)
    for file, a, b in spans:
        extents[name(file)].append((a, b))
    return {
        f: Markers(**{k: tuple(v) for k, v in kinds.items()}, spans=tuple(extents.get(f, ())))
        for f, kinds in grouped.items()
    }


def read_markers(
    path: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
) -> dict[str, Markers]:
    """Read a ``file,time,kind`` CSV into ``{file: Markers}``.

    Selections (a sound's start and end) are ``file,start,end,kind`` rows: the
    marker is the selection's midpoint and a positive one gives its extent
    (:attr:`Markers.spans`), as an Audacity label does.

    Comma-separated, or ``;``-separated with decimal commas (``3,25``) or
    tab-separated as spreadsheets export them (told apart by the header line).
    Blank lines and comment lines (starting with ``#``) are left out, above the
    header and below it, where a ``#`` line with a time is a row (a file may be
    named ``#1.wav``).

    Relative file names are resolved against ``base`` (default: the CSV's
    folder). A missing ``kind`` column means every row is positive; a row
    whose ``kind`` cell is empty (a review file not filled in yet, see
    ``audio-embed search --markers-out``) is skipped, with a warning that
    counts them.
    """
    markers, skipped = read_review_markers(path, base=base)
    _warn_unanswered(path, skipped)
    return markers


def _warn_unanswered(path: Path | str | os.PathLike[str], skipped: int) -> None:
    """The warning of a markers CSV's rows left with an empty kind (not reviewed)."""
    if skipped:
        log.warning("%s: %d row(s) with an empty kind were ignored (not reviewed).", path, skipped)


def read_review_markers(
    path: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Markers], int]:
    """:func:`read_markers`, also returning how many rows had an empty kind (skipped)."""
    p = Path(path)
    root = Path(base) if base is not None else p.parent
    text, above, commented = csv_table(_read_text(p))
    sep = csv_separator(text)
    reader = csv.DictReader(io.StringIO(text), delimiter=sep)
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    hint = commented or _looks_like_labels(text.partition("\n")[0])
    # file,start,end: selections (before: refused); a review file's start and end
    # (file,time,kind,start,end,score) are its hit's, and time its marker
    csv_duplicate_columns(reader.fieldnames, str(p), ("file", "time", "kind", "start", "end"))
    selections = "time" not in fields and {"start", "end"} <= fields and not hint
    if not ({"file", "time"} <= fields or ("file" in fields and selections)):
        raise MarkerError(
            f"{p}: a markers CSV needs the columns file,time[,kind] (or file,start,end[,kind] "
            f"for selections). Found: {', '.join(sorted(fields)) or 'none'}.{hint}"
            + ("" if hint else csv_headerless_hint(reader.fieldnames, sep, _MARKER_HEADERS))
        )
    rows = []
    spans = []
    skipped = 0
    for raw in reader:
        where = f"{p}, line {above + reader.line_num}"
        if csv_blank_row(raw):  # before: "the file column is empty", of ",," rows
            continue
        if csv_comment_row(raw, reader.fieldnames or [], ("time", "start", "end"), sep):
            continue  # before: a row, counted as unanswered in a review file
        csv_extra_fields(raw, where, sep)
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not row.get("file"):
            raise MarkerError(f"{where}: the file column is empty.")
        if "kind" in fields and not row.get("kind"):
            skipped += 1
            continue
        file = str(listed_file(row["file"], root))
        kind = _kind(row.get("kind") or "positive", where)
        if not selections:
            rows.append((file, _time(csv_number(row["time"], sep), where), kind))
            continue
        start, end = (_time(csv_number(row[c], sep), where) for c in ("start", "end"))
        if end < start:
            raise MarkerError(f"{where}: the selection ends ({end:g} s) before it starts.")
        rows.append((file, (start + end) / 2.0, kind))
        if kind == "positive" and end > start:
            spans.append((file, start, end))
    return _collect(rows, spans), skipped


def read_audacity_labels(path: str | os.PathLike[str], audio: str) -> dict[str, Markers]:
    """Read an Audacity label track (``start\\tend\\tlabel``) marking ``audio``.

    Times may use a decimal comma (``3,250000``: what Audacity wrote in some
    locales); lines starting with a backslash (frequency ranges) are skipped.

    The marker time is the label's midpoint; the label text names the kind
    (a label that is not a kind name counts as positive). A positive label
    that spans time also gives its extent (:attr:`Markers.spans`).
    """
    p = Path(path)
    rows = []
    spans = []
    names: list[str] = []
    for n, parts in _audacity_lines(p):
        where = f"{p}, line {n}"
        if len(parts) < 2:
            raise MarkerError(f"{where}: expected start<TAB>end<TAB>label.")
        start, end = (_time(decimal_point(v), where) for v in parts[:2])
        label = _audacity_label(parts)
        kind = _KIND_ALIASES.get(label.lower(), "positive")
        rows.append((audio, (start + end) / 2.0, kind))
        names.append(label)
        if kind == "positive" and end > start:
            spans.append((audio, start, end))
    _warn_several_targets(p, names)
    return _collect(rows, spans)


def _audacity_lines(p: Path) -> Iterator[tuple[int, list[str]]]:
    """An Audacity label file's label lines (number, tab-separated parts): blank lines
    and those of frequency ranges (starting with a backslash) left out."""
    for n, line in enumerate(_read_text(p).splitlines(), start=1):
        if line.strip() and not line.startswith("\\"):
            yield n, line.split("\t")


def _audacity_label(parts: Sequence[str]) -> str:
    """The label text of an Audacity label line split at its tabs."""
    return parts[2].strip() if len(parts) > 2 else ""


def _raven_label(row: Mapping[str, str | None]) -> str:
    """The label text of a Raven selection: its Annotation, Label or Kind column."""
    return next((row[c] or "" for c in ("Annotation", "Label", "Kind") if row.get(c)), "").strip()


#: The score scan writes after the label in Audacity and Raven results (``boing 0.87``).
_RESULT_SCORE = re.compile(r"\s+\d\.\d\d$")


def _target_names(labels: Iterable[str]) -> Counter[str]:
    """The label texts that name the target (any but a kind name), counted; a scan
    result's score after the name (its results corrected and marked again) left out."""
    names = (_RESULT_SCORE.sub("", t) for t in labels)
    return Counter(t for t in names if t and t.lower() not in _KIND_ALIASES)


def target_label(
    files: Sequence[str | os.PathLike[str]], *, fmt: MarkerFormat | Literal["auto"] = "auto"
) -> str | None:
    """The name the markers files give the target sound: the most common label text of
    their Audacity labels and Raven selections that is not a kind name (``wolf`` in a
    track of ``wolf`` and ``negative`` labels); None when they give none (a
    ``file,time,kind`` CSV). ``fmt`` as :func:`read_marker_files` takes it."""
    names: Counter[str] = Counter()
    for path in map(Path, files):
        kind = fmt if fmt != "auto" else guess_marker_format(path)
        if kind == "audacity":
            names += _target_names(_audacity_label(parts) for _, parts in _audacity_lines(path))
        elif kind == "raven":
            names += _target_names(_raven_label(row) for row in _raven_rows(path)[0])
    return names.most_common(1)[0][0] if names else None


def _warn_several_targets(path: Path, labels: Sequence[str]) -> None:
    """A warning when the labels of one file that count as the target (any text but a
    kind name) have several names: a track labelling every sound (wolf, dog, car) trains
    a scanner for all of them at once (before: without a word)."""
    names = _target_names(labels)
    if len(names) < 2:
        return
    listed = ", ".join(f"{name!r} ×{n}" for name, n in names.most_common(4))
    log.warning(
        "%s: labels of %d different names are all taken as the target sound (%s%s): any "
        "label text but negative / soft (or no, maybe, …) marks the target. Keep one "
        "sound's labels in the file, or rename the other sounds' labels 'negative'.",
        path,
        len(names),
        listed,
        ", …" if len(names) > 4 else "",
    )


_RAVEN_FILE_COLUMNS = ("Begin Path", "Begin File")
_RAVEN_OFFSET = "File Offset (s)"


def _raven_rows(p: Path) -> tuple[list[dict[str, str | None]], bool]:
    """A Raven table's rows, and whether it names each selection's file (``Begin Path``
    or ``Begin File`` with ``File Offset (s)``, as Raven writes them)."""
    reader = csv.DictReader(io.StringIO(_read_text(p)), delimiter="\t")
    rows = list(reader)
    head = reader.fieldnames or []
    return rows, _RAVEN_OFFSET in head and any(c in head for c in _RAVEN_FILE_COLUMNS)


def _raven_files(p: Path) -> list[str]:
    """The recordings a Raven table's selections name, once each (none: no such columns)."""
    rows, per_file = _raven_rows(p)
    if not per_file:
        return []
    return list({file_key(f): f for f in (_raven_recording(r, p.parent) for r in rows)}.values())


def _raven_recording(row: Mapping[str, str | None], folder: Path) -> str:
    """The recording a selection lies in: ``Begin Path`` when that file is here, else the
    file named by ``Begin File`` (or by the path's last part) in the table's folder."""
    full = (row.get("Begin Path") or "").strip()
    if full and Path(full).is_file():
        return full
    # a path from the machine that made the table (C:\\...\\rec.wav reads on any system)
    name = (row.get("Begin File") or "").strip() or PureWindowsPath(full).name
    return str(folder / name)


def read_raven_table(path: str | os.PathLike[str], audio: str | None = None) -> dict[str, Markers]:
    """Read a Raven selection table marking ``audio``.

    The marker time is the selection's midpoint; the kind comes from a column
    named ``Annotation``, ``Label`` or ``Kind`` when present (positive otherwise).
    With ``audio`` None the table must name each selection's file (``Begin Path`` or
    ``Begin File`` and ``File Offset (s)`` columns, as Raven writes for a list of
    files, where ``Begin Time (s)`` counts from the first file's start): each
    selection then marks its own file at its offset in it. ``audio`` names the one
    recording of a table whose selections all lie in one file.
    """
    p = Path(path)
    table, per_file = _raven_rows(p)
    if audio is None and not per_file:
        raise MarkerError(f"{p}: name the recording this Raven table marks.")
    if audio is not None and len(named := _raven_files(p)) > 1:
        raise MarkerError(
            f"{p}: the table marks {len(named)} files (its Begin File / Begin Path "
            f"column), so --audio {audio} cannot say which one it means. Leave --audio "
            "out: each selection then marks its own file, found by that column (a path "
            "that is not on this machine is looked for by name in the table's folder)."
        )
    rows = []
    spans = []
    names: list[str] = []
    for n, row in enumerate(table, start=2):
        where = f"{p}, line {n}"
        if "Begin Time (s)" not in row or "End Time (s)" not in row:
            raise MarkerError(f"{p}: not a Raven selection table (no Begin/End Time (s) columns).")
        start, end = (
            _time(decimal_point(row[c] or ""), where) for c in ("Begin Time (s)", "End Time (s)")
        )
        if per_file:  # the time in its own file
            offset = _time(decimal_point(row[_RAVEN_OFFSET] or ""), where)
            start, end = offset, offset + (end - start)
        file = audio if audio is not None else _raven_recording(row, p.parent)
        label = _raven_label(row)
        kind = _KIND_ALIASES.get(label.lower(), "positive")
        rows.append((file, (start + end) / 2.0, kind))
        names.append(label)
        if kind == "positive" and end > start:
            spans.append((file, start, end))
    _warn_several_targets(p, names)
    return _collect(rows, spans)


def write_markers(path: str | os.PathLike[str], markers: dict[str, Markers]) -> Path:
    """Write ``{file: Markers}`` as a ``file,time,kind`` CSV (inverse of :func:`read_markers`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "time", "kind"])
    for file in sorted(markers):
        for kind in MARKER_KINDS:
            for t in getattr(markers[file], kind):
                w.writerow([file, repr(float(t)), kind])
    return atomic_write_text(path, buf.getvalue())


def format_detections(
    detections: Sequence[Detection], fmt: OutputFormat, *, file: str = "", label: str = "target"
) -> str:
    """Detections as text in ``fmt`` (a registered format: see :func:`register_format`)."""
    return result_format(fmt).write(detections, file=file, label=label)


def _write_csv(detections: Sequence[Detection], *, file: str, label: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "start", "end", "peak", "score"])
    for d in detections:
        w.writerow([file, f"{d.start:.3f}", f"{d.end:.3f}", f"{d.peak:.3f}", f"{d.score:.4f}"])
    return buf.getvalue()


def _write_json(detections: Sequence[Detection], *, file: str, label: str) -> str:
    items = [  # microseconds, as Audacity and Raven get (not 3.4499999999999997)
        {
            "file": file,
            "start": round(d.start, 6),
            "end": round(d.end, 6),
            "peak": round(d.peak, 6) if math.isfinite(d.peak) else None,  # JSON has no NaN
            "score": round(d.score, 6),
        }
        for d in detections
    ]
    return json.dumps(items, indent=2) + "\n"


def _one_field(label: str) -> str:
    """``label`` as one field of a tab-separated line (before: a tab in it made a column
    more, and a line break a line)."""
    return " ".join(label.split())


def _write_audacity(detections: Sequence[Detection], *, file: str, label: str) -> str:
    label = _one_field(label)
    return "".join(f"{d.start:.6f}\t{d.end:.6f}\t{label} {d.score:.2f}\n" for d in detections)


def _write_raven(detections: Sequence[Detection], *, file: str, label: str) -> str:
    label = _one_field(label)
    head = (
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
        "High Freq (Hz)\tAnnotation\tScore\n"
    )
    body = "".join(
        f"{i}\tSpectrogram 1\t1\t{d.start:.6f}\t{d.end:.6f}\t0.0\t8000.0\t{label}\t{d.score:.4f}\n"
        for i, d in enumerate(detections, start=1)
    )
    return head + body


def _write_srt(detections: Sequence[Detection], *, file: str, label: str) -> str:
    text = _cue_text(label, "srt")
    return "".join(
        f"{i}\n{_timing(d, ',')}\n{text}{d.score:.2f}\n\n"
        for i, d in enumerate(detections, start=1)
    )


def _write_vtt(detections: Sequence[Detection], *, file: str, label: str) -> str:
    text = _cue_text(label, "vtt")
    return "WEBVTT\n\n" + "".join(
        f"{i}\n{_timing(d, '.')}\n{text}{d.score:.2f}\n\n"
        for i, d in enumerate(detections, start=1)
    )


def _timing(d: Detection, decimal: str) -> str:
    """A cue's ``start --> end`` to the millisecond, at least 1 ms long (players skip
    an empty cue)."""
    start = max(0, round(d.start * 1000))
    end = max(start + 1, round(d.end * 1000))
    return f"{_timestamp(start, decimal)} --> {_timestamp(end, decimal)}"


def _timestamp(ms: int, decimal: str) -> str:
    """``HH:MM:SS,mmm`` (SubRip) or ``HH:MM:SS.mmm`` (WebVTT): hours keep counting
    past 24 (``25:00:00,000``, ``100:00:00,000``), as both formats allow."""
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def _cue_text(label: str, fmt: Literal["srt", "vtt"]) -> str:
    """The label as the start of a one-line cue text (``"wolf "``; ``""`` for no label):
    line breaks and runs of blanks become one space (a blank line would end the cue),
    ``-->`` (a timing line's arrow) is broken up, and in WebVTT ``&``, ``<`` and ``>``
    are escaped."""
    text = " ".join(label.split())
    if fmt == "vtt":
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    else:
        text = text.replace("-->", "->")
    return text + " " if text else ""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and a rename (all or nothing)."""
    with atomic_writer(path, text=True) as fh:
        fh.write(text)
    return Path(path)


def write_detections(
    path: str | os.PathLike[str],
    detections: Sequence[Detection],
    fmt: OutputFormat,
    *,
    file: str = "",
    label: str = "target",
) -> Path:
    """Write detections to ``path`` in ``fmt``, atomically."""
    return atomic_write_text(path, format_detections(detections, fmt, file=file, label=label))


def read_detections(path: str | os.PathLike[str], fmt: OutputFormat) -> list[Detection]:
    """Read back detections that :func:`write_detections` wrote in ``fmt``.

    Audacity labels, Raven tables and SubRip / WebVTT subtitles do not store the
    peak: it comes back as NaN; subtitles keep times to the millisecond and the
    score to two decimals (as Audacity labels), Raven tables to 6 and 4 decimals.
    Raises :class:`~audio_embed.errors.ResultFileError` when the file is missing or
    is not a result file of that format (subtitles that are not cues ``label score``
    with one label for all, e.g. a film's own, are not).
    """
    return read_result(path, fmt)[0]


def read_result(
    path: str | os.PathLike[str], fmt: OutputFormat
) -> tuple[list[Detection], frozenset[str]]:
    """:func:`read_detections`, and the recordings a CSV or JSON result names in its
    ``file`` field (none for the other formats, which do not say)."""
    p = Path(path)
    names: set[str] = set()
    try:
        # a file name of other bytes than UTF-8 as atomic_writer wrote it
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
        rows = _parse_detections(text, fmt, names)
    except (OSError, ValueError, KeyError, IndexError, TypeError, csv.Error) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ResultFileError(f"{p} is unreadable ({detail})") from exc
    return rows, frozenset(names - {""})


def _parse_detections(text: str, fmt: OutputFormat, names: set[str]) -> list[Detection]:
    found = _FORMATS.get(fmt)
    if found is None:
        raise ValueError(f"unknown result format {fmt!r}; use {', '.join(_FORMATS)}")
    if found.read is None:
        raise ValueError(f"the {fmt} format has no reader: a file in it is not read back")
    rows = list(found.read(text))
    if found.recordings is not None:
        names.update(found.recordings(text))
    return rows


def _csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    _has_columns(reader.fieldnames, ("file", "start", "end", "peak", "score"))
    return list(reader)


def _read_csv(text: str) -> list[Detection]:
    return [
        Detection(float(r["start"]), float(r["end"]), float(r["score"]), float(r["peak"]))
        for r in _csv_rows(text)
    ]


def _csv_recordings(text: str) -> list[str]:
    return [r["file"] or "" for r in _csv_rows(text)]


def _json_items(text: str) -> list[dict[str, Any]]:
    items = json.loads(text)
    if not isinstance(items, list):  # e.g. a recorder's or a person's {} beside it
        raise ValueError(f"a JSON {type(items).__name__}, not a list of detections")
    return items


def _read_json(text: str) -> list[Detection]:
    rows = []
    for d in _json_items(text):
        peak = math.nan if d["peak"] is None else float(d["peak"])
        rows.append(Detection(float(d["start"]), float(d["end"]), float(d["score"]), peak))
    return rows


def _json_recordings(text: str) -> list[str]:
    return [str(d.get("file") or "") for d in _json_items(text)]


def _read_audacity(text: str) -> list[Detection]:
    rows: list[Detection] = []
    labels = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        said = _LABEL_SCORE.fullmatch(parts[2]) if len(parts) == 3 else None
        if said is None:  # a person's notes or labels in rec.txt are not a result
            raise ValueError(f"line {n} is not 'start<TAB>end<TAB>label score'")
        labels.add(said.group(1) or "")
        if len(labels) > 1:
            raise ValueError(f"line {n}: {parts[2]!r} has another label than the lines before")
        rows.append(Detection(float(parts[0]), float(parts[1]), float(said.group(2)), math.nan))
    return rows


def _read_raven(text: str) -> list[Detection]:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    _has_columns(reader.fieldnames, ("Begin Time (s)", "End Time (s)", "Score"))
    rows = []
    for r in reader:
        start, end = float(r["Begin Time (s)"]), float(r["End Time (s)"])
        rows.append(Detection(start, end, float(r["Score"]), math.nan))
    return rows


def _has_columns(found: Sequence[str] | None, needed: tuple[str, ...]) -> None:
    """A result table's header holds ``needed`` (an empty file or another table does not)."""
    missing = [c for c in needed if c not in (found or ())]
    if missing:
        raise ValueError(
            f"not a result table: no column {', '.join(missing)} in its header "
            f"({', '.join(found or ()) or 'empty file'})"
        )


_TIME = r"(\d+):([0-5]\d):([0-5]\d)[,.](\d{3})"
_TIMING = re.compile(rf"{_TIME} --> {_TIME}")
#: ``label score`` as the Audacity and subtitle writers put it (the score with two decimals,
#: in [0, 1]): a person's own labels ("1", "wolf 1", "horn 0.5") are not taken for a result
_LABEL_SCORE = re.compile(r"(?:(.*) )?((?:0\.\d\d)|(?:1\.00))")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _parse_cues(text: str, fmt: Literal["srt", "vtt"]) -> list[Detection]:
    """The cues of a SubRip or WebVTT file :func:`format_detections` wrote, strictly:
    every cue ``[number] / start --> end / label score`` with one label for all, so
    that a person's own subtitles (``rec.srt`` beside ``rec.mp4``) are not taken for
    an earlier result (and replaced)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    blocks = [b for b in re.split(r"\n[ \t]*\n", text.strip("\n")) if b.strip()]
    if fmt == "vtt":
        if not blocks or not re.fullmatch(r"WEBVTT([ \t].*)?", blocks[0].split("\n")[0]):
            raise ValueError("not a WebVTT file (no WEBVTT line)")
        blocks = blocks[1:]
    rows: list[Detection] = []
    labels = set()
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        if fmt == "vtt" and len(lines) == 2:  # WebVTT cue numbers are optional
            lines = ["", *lines]
        if len(lines) != 3 or (fmt == "srt" and not lines[0].strip().isdigit()):
            raise ValueError(f"cue {n} is not a number, a timing line and 'label score'")
        timing = _TIMING.fullmatch(lines[1].strip())
        said = _LABEL_SCORE.fullmatch(lines[2].strip())
        if timing is None or said is None:
            raise ValueError(f"cue {n}: {lines[1]!r} / {lines[2]!r} is not a timing and a score")
        labels.add(said.group(1) or "")
        if len(labels) > 1:
            raise ValueError(f"cues with different labels ({' / '.join(sorted(labels))})")
        g = timing.groups()
        rows.append(Detection(_seconds(*g[:4]), _seconds(*g[4:]), float(said.group(2)), math.nan))
    return rows


def _read_srt(text: str) -> list[Detection]:
    return _parse_cues(text, "srt")


def _read_vtt(text: str) -> list[Detection]:
    return _parse_cues(text, "vtt")


# The built-in formats, registered as a plug-in's are (the order of --help).
register_format("csv", ".csv", _write_csv, _read_csv, recordings=_csv_recordings)
register_format("json", ".json", _write_json, _read_json, recordings=_json_recordings)
register_format("audacity", ".txt", _write_audacity, _read_audacity)
register_format("raven", ".selections.txt", _write_raven, _read_raven)
register_format("srt", ".srt", _write_srt, _read_srt)
register_format("vtt", ".vtt", _write_vtt, _read_vtt)


def guess_marker_format(path: str | os.PathLike[str]) -> MarkerFormat:
    """``csv`` for a ``.csv`` file, ``raven`` for a header with ``Begin Time (s)``,
    ``csv`` for a header with ``file`` and ``time`` (or ``start`` and ``end``)
    columns (a markers CSV saved as ``.txt``: Excel's "Text (Tab delimited)" and
    "Unicode Text"; before: read as
    Audacity labels, "cannot tell which recording these labels mark"), else
    ``audacity``."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return "csv"
    # Windows-1252 too, as the readers; comment lines above the header left out
    head = csv_table(read_text_file(p))[0].partition("\n")[0]
    if "Begin Time (s)" in head:
        return "raven"
    fields = _header_fields(head)
    markers = {"file", "time"} <= fields or {"file", "start", "end"} <= fields
    return "csv" if markers else "audacity"


def _is_table_name(name: str) -> bool:
    """Whether a file name's extension is one a markers file has (.txt, .csv, .tsv)."""
    return Path(name).suffix.lower() in (".txt", ".csv", ".tsv")


def _names_a_table(fields: set[str]) -> bool:
    """Whether a header's columns are those of a markers or labels CSV: a file and a
    time, a start or an onset."""
    return "file" in fields and bool(fields & {"time", "start", "onset"})


def _header_fields(header: str) -> set[str]:
    """The column names of a CSV header line, lower-cased (as the readers match them)."""
    row = next(csv.reader([header.strip()], delimiter=csv_separator(header)), [])
    return {f.strip().lower() for f in row}


def _looks_like_labels(header: str) -> str:
    """A hint for a markers CSV whose header is an Audacity label or a Raven line, or
    that is a scan's results (``detections.csv``)."""
    if {"file", "start", "end", "peak", "score"} <= _header_fields(header):
        return (
            " It holds scan results (file,start,end,peak,score), not markers: for the "
            "detections you checked, rename the peak column to time and add a kind column "
            "(positive or negative), or have them listed to review with scan --suggest N "
            "--markers-out FILE."
        )
    if "Begin Time (s)" in header:
        kind, what = "raven", "a Raven selection table"
    else:
        first = header.replace("\t", ",").split(",", 1)[0].strip()
        try:
            float(decimal_point(first))
        except ValueError:
            return ""
        kind, what = "audacity", "an Audacity label track (start, end, label; no header)"
    return (
        f" It looks like {what}: read it as one (train --markers-format {kind}; Python: "
        f"read_marker_files([path], fmt={kind!r})), its recording beside it (rec.wav + "
        "rec.txt) or named with --audio."
    )


def recording_next_to(labels: str | os.PathLike[str]) -> Path:
    """The media file beside ``labels`` whose stem starts its name (``rec.wav`` for
    ``rec.txt``, ``rec.selections.txt`` or ``rec.Table.1.selections.txt``).

    The longest matching stem wins; none or several equally long ones raise
    :class:`~audio_embed.errors.MarkerError`.
    """
    labels = Path(labels)
    try:
        candidates = [
            p
            for p in labels.parent.iterdir()
            if p.is_file() and is_media_file(p) and labels.name.startswith(p.stem + ".")
        ]
    except OSError:
        candidates = []
    if candidates:
        longest = max(len(p.stem) for p in candidates)
        candidates = [p for p in candidates if len(p.stem) == longest]
    if len(candidates) != 1:
        found = ", ".join(p.name for p in sorted(candidates)) or "none"
        raise MarkerError(
            f"{labels}: cannot tell which recording these labels mark (audio files beside it "
            f"named like it: {found}). Put the label file next to its recording with the same "
            "stem (rec.wav + rec.txt), or name the recording with --audio FILE right after "
            "this --markers."
        )
    return candidates[0]


def _raven_recording_of(path: Path) -> Path | None:
    """The one recording a Raven table marks: the one beside it named like it, else the
    one file its selections name; None for a table over several files (each selection
    then marks its own)."""
    named = _raven_files(path)
    if len(named) > 1:
        return None
    try:
        return recording_next_to(path)
    except MarkerError:
        if named and Path(named[0]).is_file():
            return Path(named[0])
        raise


def merge_markers(a: Markers, b: Markers) -> Markers:
    """The markers of ``a`` and ``b`` in one :class:`Markers` (duplicates merged)."""
    return Markers(
        **{k: getattr(a, k) + getattr(b, k) for k in MARKER_KINDS}, spans=a.spans + b.spans
    )


def read_marker_files(
    files: Sequence[str | os.PathLike[str]],
    *,
    fmt: MarkerFormat | Literal["auto"] = "auto",
    recordings: Mapping[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> dict[str, Markers]:
    """Read and merge markers files into ``{recording: Markers}``.

    ``fmt`` is the format of every file (``auto``: :func:`guess_marker_format`
    per file). A CSV names its recordings itself; an Audacity or Raven file
    marks ``recordings[file]`` when given, else :func:`recording_next_to`.
    Raises :class:`~audio_embed.errors.MarkerError` when a file is missing,
    when there are no markers at all, or when a marked recording does not exist.
    """
    paths = [Path(f) for f in path_list(files, "read_marker_files")]
    for path in paths:
        if path.is_dir():  # before: "Markers file not found", of a folder that is there
            raise MarkerError(
                f"{path} is a folder, not a markers file: name the files in it (e.g. "
                f"--markers {shlex.quote(str(path))}{os.sep}*.txt for its Audacity labels)."
            )
        if not path.is_file():
            raise MarkerError(f"Markers file not found: {path}")
        if is_media_file(path):  # before: "not a text file (NUL bytes)"
            beside = same_stem_files(path, _is_table_name)
            raise MarkerError(
                f"{path} is a recording, not a markers file: give the file that marks it "
                f"(its Audacity labels {path.with_suffix('.txt').name} beside it, a Raven "
                "selection table, or a file,time,kind CSV)"
                + (f"; beside it: {', '.join(repr(n) for n in beside[:3])}" if beside else "")
                + "."
            )
    pairs = {Path(m): Path(a) for m, a in (recordings or {}).items()}
    merged: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    merged_spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    name = one_name_per_file()
    csvs = []
    unanswered: dict[Path, int] = {}
    for path in paths:
        kind = fmt if fmt != "auto" else guess_marker_format(path)
        if kind == "csv":
            csvs.append(path)
            read, unanswered[path] = read_review_markers(path)
        elif kind == "audacity":
            read = read_audacity_labels(path, str(pairs.get(path) or recording_next_to(path)))
        else:
            rec = pairs.get(path) or _raven_recording_of(path)
            read = read_raven_table(path, None if rec is None else str(rec))
        for file, m in read.items():
            for k in MARKER_KINDS:
                merged[name(file)][k].extend(getattr(m, k))
            merged_spans[name(file)].extend(m.spans)
    if not merged:
        raise MarkerError(
            f"No markers in {', '.join(map(str, paths))}."
            + (  # a review file not filled in yet (before: "No markers" alone)
                f" {sum(unanswered.values())} row(s) have an empty kind column: answer "
                "each with positive, negative or soft (yes/no/maybe) first."
                if any(unanswered.values())
                else ""
            )
        )
    for path, skipped in unanswered.items():  # (review: warned of, then the error again)
        _warn_unanswered(path, skipped)
    missing = [f for f in merged if not Path(f).is_file()]
    if missing:
        here = [read_from_here_hint(missing, p.parent, "a markers CSV") for p in csvs]
        raise MarkerError(
            "The markers name recordings that do not exist: "
            + ", ".join(m + same_stem_hint(m) for m in missing[:5])
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + " (relative names are read from the markers file's folder)."
            + next((h for h in here if h), "")
        )
    return {
        f: Markers(**{k: tuple(v) for k, v in kinds.items()}, spans=tuple(merged_spans[f]))
        for f, kinds in merged.items()
    }

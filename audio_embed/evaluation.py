"""Evaluating scan results against a labels CSV (``split,file,onset,offset,label``).

:func:`read_labelled_set` reads the labels for one target (and optionally one
split) into a :class:`LabelledSet`: the files to scan and their events.
:func:`evaluate_results` scores scan results of those files, overall and per
file, into an :class:`EvaluationReport` that prints or serialises as JSON. The
metrics themselves are :func:`audio_embed.evaluate.evaluate`'s; the pictures
are :mod:`audio_embed.plot`'s.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

from audio_embed.errors import InvalidInputError
from audio_embed.formats import file_key, listed_file, read_from_here_hint

if TYPE_CHECKING:
    from audio_embed.evaluate import Evaluation, LabelledEvent
    from audio_embed.scanner import ScanResult

log = logging.getLogger(__name__)

__all__ = [
    "EvaluationReport",
    "LabelledSet",
    "evaluate_results",
    "read_labelled_set",
    "relative_name",
    "trained_on",
]


@frozen
class LabelledSet:
    """The labelled events of one target, keyed by the file's path as a string
    (relative names in the CSV are read from its folder, :attr:`root`)."""

    root: Path
    target: str
    split: str | None
    files: tuple[Path, ...]
    events: Mapping[str, tuple[tuple[float, float], ...]]
    every: Mapping[str, tuple[LabelledEvent, ...]]


def read_labelled_set(
    labels: str | os.PathLike[str], target: str, *, split: str | None = None
) -> LabelledSet:
    """The files of ``labels`` (only the rows of ``split`` when given), their
    ``target`` events and every labelled event.

    Raises :class:`~audio_embed.errors.InvalidInputError` when no row has that
    split or no event of the rows has that label (the message lists those
    there are), and :class:`~audio_embed.errors.MarkerError` for a bad CSV.
    """
    from audio_embed.evaluate import read_labels

    path = Path(labels)
    rows = read_labels(path)
    if split is not None:
        splits = sorted({r.split for r in rows})
        rows = [r for r in rows if r.split == split]
        if not rows and splits == [""]:  # before: "its splits: ''"
            raise InvalidInputError(
                f"{path} has no split column (or every row's split is empty), so no row "
                f"has split {split!r}: leave out split (--split) to use every row."
            )
        if not rows:
            raise InvalidInputError(
                f"No rows of {path} have split {split!r}; its splits: "
                f"{', '.join(repr(s) for s in splits) or 'none'}."
            )
    known = sorted({r.label for r in rows})
    if target not in known:
        import difflib

        same = [k for k in known if k.casefold() == target.casefold()]
        close = same or difflib.get_close_matches(target, known, n=1, cutoff=0.75)
        raise InvalidInputError(
            f"No event labelled {target!r} in {path}"
            + (f" (split {split!r})" if split else "")
            + (f". Did you mean {close[0]!r}? Labels are matched exactly" if close else "")
            + f"; its labels: {', '.join(known) or 'none'}."
        )
    root = path.parent
    files: dict[str, Path] = {}
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    every: dict[str, list[LabelledEvent]] = defaultdict(list)
    spelled: dict[Path, str] = {}  # one recording named two ways: its first spelling
    for r in rows:
        file = listed_file(r.file, root)
        key = spelled.setdefault(file.resolve(), str(file))
        files.setdefault(key, Path(key))
        every[key].append(r)
        if r.label == target:
            events[key].append((r.onset, r.offset))
    missing = [f for f in files.values() if not f.is_file()]
    if hint := read_from_here_hint(missing, root, "a labels CSV"):
        log.warning(  # before: "no such file" of each, then "nothing to evaluate"
            "%s names %d file(s) that are not there, e.g. %s.%s",
            path,
            len(missing),
            missing[0],
            hint,
        )
    return LabelledSet(
        root=root,
        target=target,
        split=split,
        files=tuple(files[k] for k in sorted(files)),
        events={k: tuple(v) for k, v in events.items()},
        every={k: tuple(v) for k, v in every.items()},
    )


def trained_on(
    labelled: LabelledSet, training_summary: Mapping[str, Any] | None
) -> tuple[Path, ...]:
    """The labelled files that are recordings a scanner was trained on (its
    ``training_summary["files"]``, by :func:`~audio_embed.formats.file_key`): its
    scores on them are optimistic, having learnt their marked sounds."""
    files = (training_summary or {}).get("files") or ()
    seen = {f["path"] for f in files if isinstance(f, Mapping) and "path" in f}
    return tuple(f for f in labelled.files if file_key(f) in seen)


def _keyed_like(results: Mapping[str, ScanResult], labelled: LabelledSet) -> dict[str, ScanResult]:
    """``results`` keyed as ``labelled`` names its files: a key that names a labelled
    file another way (relative or absolute, through a link) takes that file's name."""
    names = {str(f) for f in labelled.files}
    by_file: dict[str, str] = {}
    for f in labelled.files:
        by_file.setdefault(os.path.realpath(f), str(f))
    keyed: dict[str, ScanResult] = {}
    for key, result in results.items():
        name = key if key in names else by_file.get(os.path.realpath(key), key)
        taken = name in keyed or (name != key and name in results)  # another result is its own
        keyed[key if taken else name] = result
    return keyed


def relative_name(path: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as given."""
    if root is None:
        return str(path)
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


@frozen
class EvaluationReport:
    """Scores of scan results on a :class:`LabelledSet`: overall and per file
    (per-file names relative to the labels' folder)."""

    target: str
    threshold: float
    overall: Evaluation
    per_file: tuple[tuple[str, Evaluation], ...]

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        """JSON-able: target, threshold, files, every metric (NaN as None), then
        ``extra``, then ``per_file`` with the event counts of each file."""
        metrics = {
            k: (_finite(v) if isinstance(v, float) else v)
            for k, v in self.overall.as_dict().items()
        }
        report: dict[str, Any] = {
            "target": self.target,
            "threshold": self.threshold,
            "files": len(self.per_file),
            **metrics,
            **extra,
        }
        report["per_file"] = [
            {
                "file": name,
                "n_events": e.n_events,
                "n_found": e.n_found,
                "n_detections": e.n_detections,
                "n_false_positives": e.n_false_positives,
            }
            for name, e in self.per_file
        ]
        return report


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def evaluate_results(
    results: Mapping[str, ScanResult],
    labelled: LabelledSet,
    *,
    threshold: float,
    unscanned: Iterable[str] = (),
) -> EvaluationReport:
    """Score ``results`` (keyed like ``labelled.events``: the file path as a
    string) against the target events of ``labelled`` at ``threshold``.

    A result keyed by another name of a labelled file (its absolute path, as
    result files and ``detections.csv`` name recordings, or ``./a.wav``) is
    that file's result (before: a labelled file "without a result", its events
    left out, and a result "without labels", its detections false positives).

    A labelled file without a result is warned about (results and labels named
    differently), except those in ``unscanned``: files the caller could not scan and
    reports itself (``evaluate`` names each as skipped; before, it also warned that
    they "have no result" and to name results and labels alike)."""
    from audio_embed.evaluate import evaluate, score

    results = _keyed_like(results, labelled)
    # every labelled file, those without a target event too: their results are not
    # "results without labels" (they count as recordings without the target either way)
    left_out = {str(f) for f in unscanned}
    events = {
        str(f): labelled.events.get(str(f), ()) for f in labelled.files if str(f) not in left_out
    }
    overall = evaluate(results, events, threshold)
    per_file = tuple(
        (
            relative_name(k, labelled.root),
            score({k: r}, {k: events.get(k, ())}, threshold),  # evaluate warned
        )
        for k, r in results.items()
    )
    return EvaluationReport(
        target=labelled.target, threshold=threshold, overall=overall, per_file=per_file
    )

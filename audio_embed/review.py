"""The review loop: search hits → a markers file to fill → a scanner → what to mark next.

* :func:`write_review_markers` writes hits (or suggestions) as a markers CSV
  (``file,time,kind,start,end,score``) with an empty ``kind`` for a person to
  fill with positive / negative / soft; :func:`audio_embed.formats.read_review_markers`
  reads it back, skipping the rows still empty.
* :func:`fit_from_index` trains a :class:`~audio_embed.Scanner` from an
  :class:`~audio_embed.index.EmbeddingIndex`'s vectors, decoding nothing.
* :func:`suggest_windows` picks the windows a scanner is least sure about
  (probability nearest its threshold), spread over files and never two
  overlapping windows of one file: the next ones to mark (active learning).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from audio_embed.augment import MixAugmentation
from audio_embed.cache import CachedEmbeddings
from audio_embed.errors import InvalidInputError, MarkerError, TrainingDataError
from audio_embed.formats import (
    atomic_write_text,
    csv_comment_row,
    csv_table,
    file_key,
    read_text_file,
)
from audio_embed.index import EmbeddingIndex, Hit
from audio_embed.scanner import Detection, Recording, Scanner, ScanResult
from audio_embed.scanner.augmented import decide_augmentation
from audio_embed.windows import Markers

__all__ = [
    "check_review_target",
    "fit_from_index",
    "format_hits",
    "hits_by_file",
    "score_index",
    "suggest_windows",
    "write_review_markers",
]

_TOL = 1e-6


def check_review_target(path: str | os.PathLike[str]) -> None:
    """Refuse to write review markers over a file that holds someone's work: a markers
    CSV with a filled ``kind`` (or without a ``kind`` column: every row a marker), or
    any other file. A missing file, or an earlier review file whose ``kind`` column is
    still empty, may be written.

    Raises:
        InvalidInputError: saying what the file holds and what to do.
    """
    p = Path(path)
    if not p.exists():
        return
    if p.is_dir():
        raise InvalidInputError(f"{p} is a folder; name the markers CSV to write.")
    try:
        # as read back: a name's raw bytes kept, comment lines above the header left out
        text = csv_table(read_text_file(p, "review markers"))[0]
        if not text.strip():
            return
        reader = csv.DictReader(io.StringIO(text))
        names = list(reader.fieldnames or [])
        fields = {(f or "").strip().lower(): f for f in names}
        rows = list(reader)
    except (MarkerError, csv.Error):
        names, fields, rows = [], {}, []
    if "file" not in fields or "time" not in fields:
        raise InvalidInputError(
            f"{p} exists and is not a markers CSV; choose another file for the review markers."
        )
    kind = fields.get("kind")
    done = sum(
        1
        for r in rows
        if (kind is None or (r.get(kind) or "").strip())
        and not csv_comment_row(r, names, ("time", "start", "end"), ",")
    )
    if done:
        raise InvalidInputError(
            f"{p} already holds {done} reviewed marker(s) (a filled kind column); writing "
            "the review markers there would lose them. Choose another file, or move it "
            "away first."
        )


def write_review_markers(path: str | os.PathLike[str], hits: Sequence[Hit]) -> Path:
    """Write ``hits`` as a markers CSV with an empty ``kind`` column to fill in.

    ``time`` is each hit's peak (the centre of its best window); ``start``,
    ``end`` and ``score`` help the reviewer and are ignored when reading back.
    ``file`` is the recording's absolute path: a relative one (``scan --suggest`` of
    files named relative to here) would be read back from the markers file's own
    folder (before: ``--markers-out reviews/next.csv`` named recordings that do not
    exist, ``reviews/rec.wav``). A file holding reviewed markers is never written over
    (:func:`check_review_target` raises :class:`~audio_embed.errors.InvalidInputError`).
    """
    check_review_target(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "time", "kind", "start", "end", "score"])
    for h in hits:
        w.writerow(
            [
                os.path.abspath(h.file),
                f"{h.peak:.3f}",
                "",
                f"{h.start:.3f}",
                f"{h.end:.3f}",
                f"{h.score:.4f}",
            ]
        )
    return atomic_write_text(path, buf.getvalue())


def format_hits(hits: Sequence[Hit], fmt: str) -> str:
    """Hits of many files as one CSV or JSON text (file, start, end, peak, score), best first."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "start", "end", "peak", "score"])
        for h in hits:
            w.writerow(
                [h.file, f"{h.start:.3f}", f"{h.end:.3f}", f"{h.peak:.3f}", f"{h.score:.4f}"]
            )
        return buf.getvalue()
    if fmt == "json":
        items = [
            {"file": h.file, "start": h.start, "end": h.end, "peak": h.peak, "score": h.score}
            for h in hits
        ]
        return json.dumps(items, indent=2) + "\n"
    raise InvalidInputError(
        f"Hits of several files are written as csv or json; {fmt!r} files hold one recording "
        "each (see hits_by_file)."
    )


def hits_by_file(hits: Sequence[Hit]) -> dict[str, list[Detection]]:
    """Hits grouped by file, in time order, as detections (for label and subtitle files)."""
    out: dict[str, list[Detection]] = {}
    for h in hits:
        out.setdefault(h.file, []).append(Detection(h.start, h.end, h.score, h.peak))
    for dets in out.values():
        dets.sort(key=lambda d: d.start)
    return out


def _check_compatible(scanner: Scanner, index: EmbeddingIndex) -> None:
    want = index.manifest["embedder"]
    if scanner.embedder.name != want["name"] or scanner.embedder.dim != int(want["dim"]):
        raise InvalidInputError(
            f"The scanner uses {scanner.embedder.name} ({scanner.embedder.dim} dims) but "
            f"{index.path} holds {want['name']} vectors ({want['dim']} dims)."
        )
    if scanner.embedder.cache_id() != want["cache_id"]:
        raise InvalidInputError(
            f"The scanner's {want['name']} has other weights or settings than the one that "
            f"built {index.path}; its vectors would not match."
        )
    sw, iw = scanner.scan_windows, index.windows
    if abs(sw.window - iw.window) > _TOL or abs(sw.hop - iw.hop) > _TOL:
        raise InvalidInputError(
            f"The scanner's windows ({sw.window:g} s every {sw.hop:g} s) differ from the "
            f"index's ({iw.window:g} s every {iw.hop:g} s)."
        )
    if scanner.normalization != "recording":
        raise InvalidInputError(
            "An index holds per-recording normalised vectors; the scanner must use "
            f"normalization='recording'. Got {scanner.normalization!r}."
        )
    if (scanner.audio_stream or 0) != (index.audio_stream or 0):
        raise InvalidInputError(
            f"The scanner decodes audio stream {scanner.audio_stream or 0} of a file but "
            f"{index.path} holds the vectors of audio stream {index.audio_stream or 0}; set "
            f"the scanner's audio_stream to {index.audio_stream or 0}."
        )


def fit_from_index(
    scanner: Scanner,
    index: EmbeddingIndex,
    markers: dict[str, Markers],
    *,
    partial: Collection[str] = (),
) -> Scanner:
    """Train ``scanner`` on ``markers`` with the vectors stored in ``index``; returns it.

    ``partial``: the files of ``markers`` that are not complete (only the marked
    moments are known, e.g. reviewed search hits), as :class:`Recording(...,
    complete=False) <audio_embed.scanner.Recording>` in :meth:`Scanner.fit
    <audio_embed.Scanner.fit>`.

    Every marked file must be in the index. The labelled windows are the
    scanner's ``train_windows`` (their hop must put them on the index's window
    grid); their vectors are the index's, normalised per recording as the
    scanner would. The scanner's embedder, windows and normalisation must
    match the index's. Nothing is decoded: the classifier, the post-processing
    sized from the markers and the threshold (``"auto"``: chosen by
    cross-validation over the marked files, as :meth:`Scanner.fit
    <audio_embed.Scanner.fit>` chooses it) come from the index's vectors, through
    the same code as ``fit``.

    Raises:
        InvalidInputError: the scanner does not fit the index, or has a
            :class:`~audio_embed.augment.MixAugmentation` (mixing needs the
            recordings' audio; ``augmentation="auto"`` is skipped, and
            ``training_summary["augmentation"]`` says so).
        TrainingDataError: a file is not in the index, a window is not on its
            grid, or the markers give one class only.
    """
    _check_compatible(scanner, index)
    if isinstance(scanner.augmentation, MixAugmentation):
        raise InvalidInputError(
            "A scanner with an 'augmentation' cannot be trained from an index: mixing the "
            "marked sounds needs the recordings' audio. Train from the files, or use "
            "augmentation='auto' (skipped from an index) or None."
        )
    decision = decide_augmentation(
        scanner.augmentation,
        sum(len(m.positive) for m in markers.values()),
        from_index=True,
    )
    partial = set(partial)
    unknown = sorted(partial - set(markers))
    if unknown:
        raise InvalidInputError(f"partial names {unknown[0]}, which has no markers.")
    recs, grids, xs, ys = [], [], [], []
    for name in sorted(markers):
        entry = index.file(name)
        if entry is None:
            raise TrainingDataError(
                f"{name} is marked but not in the index {index.path}; add it "
                "(audio-embed index … --out INDEX) or train from the files."
            )
        rec = Recording(
            name, markers[name].within(entry.duration, name), complete=name not in partial
        )  # markers beyond the end: warned once, named
        labelled = scanner.labelling_of(rec).windows(entry.duration, rec.markers)
        grid = index.starts(entry)
        pos = np.clip(np.searchsorted(grid, labelled.starts - _TOL), 0, max(len(grid) - 1, 0))
        found = np.abs(grid[pos] - labelled.starts) < _TOL if len(grid) else pos < 0
        if not found.all():
            missing = labelled.starts[~found][:3]
            raise TrainingDataError(
                f"{name}: training windows at {', '.join(f'{t:g}' for t in missing)} s are "
                f"not on the index's grid (hop {index.windows.hop:g} s); use training windows "
                "with the index's hop."
            )
        vectors = index.vectors(slice(entry.first_row, entry.first_row + entry.n_rows))
        features = scanner.window_features(vectors, grid)
        recs.append(rec)
        embedded = CachedEmbeddings(grid, vectors, entry.duration, entry.band_edge, entry.peak)
        grids.append((embedded, features))
        xs.append(features[pos])
        ys.append(labelled.labels)
    data = scanner._training_data(recs, grids, xs, ys, scanner.threshold)
    scanner._fit_arrays(data, None)
    scanner.training_summary = {
        **(scanner.training_summary or {}),
        "from_index": str(index.path),
        "augmentation": decision.summary(),
    }
    return scanner


def score_index(scanner: Scanner, index: EmbeddingIndex) -> list[ScanResult]:
    """A trained scanner's window probabilities over every file of ``index`` (no decoding)."""
    _check_compatible(scanner, index)
    if not scanner.is_fitted:
        raise InvalidInputError("score_index needs a trained scanner.")
    results = []
    for f in index.files:
        x = index.vectors(slice(f.first_row, f.first_row + f.n_rows))
        starts = index.starts(f)
        results.append(
            ScanResult(
                source=f.path,
                starts=starts,
                probabilities=scanner.classifier.score_windows(scanner.window_features(x, starts)),
                window=index.windows.window,
                duration=f.duration,
                threshold=scanner.scan_threshold,
                postprocessing=scanner.scan_postprocessing,
            )
        )
    return results


def suggest_windows(
    results: Iterable[ScanResult],
    n: int,
    *,
    threshold: float | None = None,
    exclude: Mapping[str, Markers] | None = None,
) -> list[Hit]:
    """The ``n`` windows whose probability is nearest the threshold, spread over files.

    At most ``ceil(n / files)`` per file until every file has had its share,
    then the rest by uncertainty alone; never two overlapping windows of one
    file. ``threshold`` defaults to each result's own. ``exclude``: moments
    already answered, per recording (any spelling of its path), e.g. the
    scanner's :attr:`~audio_embed.Scanner.training_markers`: no window is
    suggested that overlaps a marker of any kind or a marked selection, widened
    by one window on each side. Returned as hits (the window, its centre as
    ``peak``, the probability as ``score``; ``row`` -1), most uncertain first.
    """
    if n < 1:
        raise InvalidInputError(f"The number of suggestions must be >= 1. Got {n!r}.")
    res = list(results)
    if not res:
        return []
    answered = _answered(res, exclude or {})
    files = np.concatenate([np.full(len(r.starts), i) for i, r in enumerate(res)])
    starts = np.concatenate([r.starts for r in res])
    probs = np.concatenate([r.probabilities for r in res]).astype(np.float64)
    thr = np.concatenate(
        [np.full(len(r.starts), r.threshold if threshold is None else threshold) for r in res]
    )
    order = np.argsort(np.abs(probs - thr), kind="stable")
    quota = math.ceil(n / len(res))
    taken: dict[int, list[float]] = {}
    picked: list[int] = []
    chosen: set[int] = set()
    for limit in (quota, n):
        per_file = Counter({k: len(v) for k, v in taken.items()})
        for i in order:
            if len(picked) >= n:
                break
            f, s = int(files[i]), float(starts[i])
            if per_file[f] >= limit or int(i) in chosen or answered[i]:
                continue
            if any(abs(s - t) < res[f].window - _TOL for t in taken.get(f, ())):
                continue
            taken.setdefault(f, []).append(s)
            per_file[f] += 1
            picked.append(int(i))
            chosen.add(int(i))
    hits = []
    for i in picked:
        r = res[int(files[i])]
        s = float(starts[i])
        e = min(s + r.window, max(r.duration, s))
        hits.append(Hit(r.source, s, e, (s + e) / 2.0, float(probs[i]), -1))
    return hits


def _answered(results: list[ScanResult], exclude: Mapping[str, Markers]) -> np.ndarray:
    """For every window of ``results`` (in order), whether it overlaps a moment of
    ``exclude`` widened by one window on each side."""
    moments = {file_key(k): _moments(m) for k, m in exclude.items()}
    out = []
    for r in results:
        spans = moments.get(file_key(r.source), np.zeros((0, 2))) if moments else np.zeros((0, 2))
        s = np.asarray(r.starts, dtype=np.float64)[:, None]
        near = (s < spans[:, 1] + r.window - _TOL) & (s + r.window > spans[:, 0] - r.window + _TOL)
        out.append(near.any(axis=1))
    return np.concatenate(out)


def _moments(markers: Markers) -> np.ndarray:
    """The marked moments as ``(start, end)`` rows: a marker ``(t, t)``, a selection its span."""
    rows = [(t, t) for t in markers.all] + list(markers.spans)
    return np.array(rows, dtype=np.float64).reshape(-1, 2)

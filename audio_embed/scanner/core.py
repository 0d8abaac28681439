"""The :class:`Scanner`: embedder + window strategies + calibrated classifier.

``fit`` learns from recordings with marked moments; ``scan`` scores every
sliding window of a new recording and fuses the windows above a threshold into
:class:`Detection` regions. Nothing here knows which model it is talking to.
Embedding and caching are in :mod:`~audio_embed.scanner.streaming`, saved files
in :mod:`~audio_embed.scanner.persistence`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import numpy as np
from attrs import Factory, define, field, frozen
from sklearn.base import clone

from audio_embed._media import path_list, same_stem_hint
from audio_embed.audio import (
    AudioStream,
    check_audio_stream,
    load_audio,
    probe_audio,
    resample,
)
from audio_embed.bandwidth import (
    MARGIN_HZ,
    bandwidth_warning,
    is_silent,
    recording_silence_warning,
)
from audio_embed.cache import CachedEmbeddings, EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.detect import (
    SHORT_FILE_SECONDS,
    Postprocessing,
    detect,
    flagged_share,
    short_file_advice,
    short_training_advice,
)
from audio_embed.embedders.base import Embedder
from audio_embed.errors import (
    AudioDecodeError,
    AudioEmbedError,
    AudioFileNotFoundError,
    InvalidInputError,
    TrainingDataError,
)
from audio_embed.formats import file_key, merge_markers
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent
from audio_embed.scanner import persistence
from audio_embed.scanner.adapt import FitData, adapt_scanner
from audio_embed.scanner.augmented import (
    AugmentationSetting,
    AugmentedPool,
    augmented_pools,
    check_augmentation,
    pools_summary,
)
from audio_embed.scanner.crossval import cross_validated_threshold
from audio_embed.scanner.defaults import (
    model_classifier,
    model_context,
    model_postprocessing,
    model_scan_windows,
    point_postprocessing,
    span_postprocessing,
)
from audio_embed.scanner.point_duration import point_durations
from audio_embed.scanner.streaming import (
    Source,
    StreamingEmbeddings,
    check_source,
    mono_array,
)
from audio_embed.threshold import (
    FALLBACK_THRESHOLD,
    FEW_MATCHES,
    ThresholdChoice,
    mean_choice,
    threshold_warning,
    training_threshold,
)
from audio_embed.types import Detection, check_sample_rate
from audio_embed.windows import (
    MARKER_KINDS,
    Markers,
    SlidingWindows,
    TargetedWindows,
    nearest_index,
)

__all__ = [
    "STD_FLOOR",
    "Normalization",
    "Recording",
    "ScanResult",
    "Scanner",
]

log = logging.getLogger(__name__)

#: A Scanner subclass: fit, load, from_name and adapt return the class they were called on.
_S = TypeVar("_S", bound="Scanner")

Normalization = Literal["recording", "targeted", "none"]
STD_FLOOR = 1e-6


def stack_training_windows(
    xs: list[np.ndarray], ys: list[np.ndarray], dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """One feature matrix and label vector from per-recording parts; none at all is an error."""
    X = np.concatenate(xs) if xs else np.zeros((0, dim), np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    if len(y) == 0:
        raise TrainingDataError(
            "The markers produced no training windows at all: check that the marked "
            "times fall inside the recordings."
        )
    return X, y


def training_summary(
    per_file: list[dict[str, Any]], y: np.ndarray, classifier: CalibratedClassifier, **extra: Any
) -> dict[str, Any]:
    """``Scanner.training_summary``: windows per class, the classifier's own summary, ``extra``."""
    return {
        "files": per_file,
        "windows_positive": int(y.sum()),
        "windows_negative": int(len(y) - y.sum()),
        **{f"classifier_{k}": v for k, v in classifier.summary_.items()},
        **extra,
    }


def _check_threshold(value: object) -> None:
    if value == "auto":
        return
    if not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise InvalidInputError(
            f"The 'threshold' must be 'auto' or a number in (0, 1). Got {value!r} instead."
        )


def _array_summary(values: np.ndarray) -> str:
    """An array in a repr: its size and range (before: every value of a file under
    100 s, so the repr of a batch report of such files ran to hundreds of lines)."""
    if values.size == 0:
        return "<0 values>"
    return f"<{values.size} values, {values.min():.6g} to {values.max():.6g}>"


@define
class ScanResult:
    """Window start times and probabilities for one recording; ``warnings``: what
    the scan found wrong with the recording (silence; a band narrower than the
    training recordings', :mod:`audio_embed.bandwidth`), each a sentence; ``scan``
    and batch scans log them."""

    source: str
    starts: np.ndarray = field(repr=_array_summary)
    probabilities: np.ndarray = field(repr=_array_summary)
    window: float
    duration: float
    threshold: float = 0.5
    postprocessing: Postprocessing = field(factory=Postprocessing)
    warnings: tuple[str, ...] = ()

    def detections(self, threshold: float | None = None) -> list[Detection]:
        """Occurrences at ``threshold`` (the scanner's when None); see :mod:`audio_embed.detect`."""
        t = self.threshold if threshold is None else threshold
        return detect(
            self.starts, self.probabilities, self.window, t, self.duration, self.postprocessing
        )

    def flagged_share(self, threshold: float | None = None) -> float:
        """The share of the recording its detections at ``threshold`` cover (0 to 1)."""
        return flagged_share(self.detections(threshold), self.duration)


def _unknown_scanner_settings(
    name: str, unknown: list[str], kwargs: dict[str, Any], known: list[str]
) -> str:
    """What :meth:`Scanner.from_name` says of keywords that are not Scanner settings:
    those of the model go in ``embedder_kwargs``; a close name is suggested."""
    import difflib

    from audio_embed.registry import embedder_settings

    model = embedder_settings(name)  # None: the model cannot say (a factory of **kwargs)

    def near(k: str) -> list[str]:
        return difflib.get_close_matches(k, [*known, *(model or [])], n=1, cutoff=0.75)

    theirs = {k: kwargs[k] for k in unknown if (k in model if model else not near(k))}
    hint = ""
    if theirs:
        hint += (
            f" A setting of the {name} model goes in embedder_kwargs: "
            f"Scanner.from_name({name!r}, embedder_kwargs={theirs!r})."
            if model is None
            else f" {', '.join(map(repr, theirs))}: a setting of the {name} model, given "
            f"as Scanner.from_name({name!r}, embedder_kwargs={theirs!r})."
        )
    for k in unknown:
        if k in theirs:
            continue
        close = near(k)
        if close:
            whose = "the model's" if close[0] in (model or []) else "Scanner's"
            hint += f" Did you mean {close[0]!r} ({whose})?"
    if {"window", "hop"} & set(unknown):
        hint += (
            " Windows are set as scan_windows=SlidingWindows(window, hop) (and "
            "train_windows=TargetedWindows(window, ...))."
        )
    models = f"; the {name} model's: {', '.join(model)}" if model else ""
    return (
        f"Scanner has no setting {', '.join(map(repr, unknown))}.{hint} Its settings: "
        f"{', '.join(known)}{models}."
    )


@frozen
class Recording:
    """One training recording: a file path (or an array and its rate) and its markers.

    ``complete`` (default): every occurrence of the target in the recording is
    marked, so its windows far from every marker are negatives and the
    threshold's cross-validation scores it. ``complete=False``: only the marked
    moments are known (the answers of a review: search hits, suggestions), so
    only the windows at its markers are labelled (positives at positive
    markers, negatives at negative markers), and the threshold's
    cross-validation never holds it out: an unmarked occurrence in it is
    neither a negative nor a false positive.
    """

    source: Source
    markers: Markers = field(factory=Markers)
    sample_rate: int | None = None
    complete: bool = True

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "source", check_source(self.source, "Recording"))
        if not isinstance(self.markers, Markers):
            raise InvalidInputError(
                f"The markers of Recording {self.label!r:.80} must be Markers (e.g. "
                f"Markers(positive=[12.5, 40.0])). Got a {type(self.markers).__name__}."
            )
        if isinstance(self.source, np.ndarray) and self.sample_rate is None:
            # before: fit said "Scanning an array needs its sample_rate (e.g. scan(...))"
            raise InvalidInputError(
                "A Recording of an array needs its sample_rate: Recording(audio, markers, "
                "sample_rate=16000) (load_audio decodes at 16000 Hz)."
            )
        if isinstance(self.source, np.ndarray):
            rate = check_sample_rate(self.sample_rate, "Recording")
            object.__setattr__(self, "sample_rate", rate)

    @property
    def label(self) -> str:
        return "<array>" if isinstance(self.source, np.ndarray) else str(self.source)


def _file_summary(rec: Recording, entry: CachedEmbeddings, y: np.ndarray) -> dict[str, Any]:
    """One recording's line of ``training_summary["files"]``: its name, windows per
    class, ``path`` (:func:`~audio_embed.formats.file_key`, a file only) and
    ``markers`` (the times of each kind, the selections as ``spans``)."""
    m = rec.markers
    marked: dict[str, Any] = {k: list(getattr(m, k)) for k in MARKER_KINDS if getattr(m, k)}
    return (
        {"source": rec.label, "positive": int(y.sum()), "negative": int(len(y) - y.sum())}
        | ({} if isinstance(rec.source, np.ndarray) else {"path": file_key(rec.source)})
        | {"markers": marked | ({"spans": [list(s) for s in m.spans]} if m.spans else {})}
        | ({} if rec.complete else {"complete": False})
        | ({} if entry.band_edge is None else {"band_edge_hz": entry.band_edge})
        | ({"silent": True} if is_silent(entry.peak) else {})
    )


def summary_markers(summary: dict[str, Any] | None) -> dict[str, Markers] | None:
    """The markers a scanner was trained on, from its ``training_summary``, per
    recording (:func:`~audio_embed.formats.file_key`; arrays left out); None when the
    summary does not keep them (a scanner trained before they were kept, or not
    trained)."""
    files = (summary or {}).get("files") or []
    if not files or any("markers" not in f for f in files):
        return None
    out: dict[str, Markers] = {}
    for f in files:
        if "path" in f:
            m = f["markers"]
            kept = Markers(
                **{k: m.get(k, ()) for k in MARKER_KINDS},
                spans=[tuple(s) for s in m.get("spans", ())],
            )
            # one file given twice (two spellings): both's markers (review: the last's only)
            had = out.get(f["path"])
            out[f["path"]] = kept if had is None else merge_markers(had, kept)
    return out


def _refuse_silence(silences: list[str], n: int) -> None:
    """Training recordings that are silent (:func:`~audio_embed.bandwidth.is_silent`):
    each warned of, or, when all ``n`` are, an error that says so (before: "The
    classifier gives every training window the same probability", or "only one
    class"; one among others trained without a word)."""
    if silences and len(silences) == n:
        raise TrainingDataError(
            f"Every training recording is silent, nothing can be learnt: {'; '.join(silences)}"
        )
    for warning in silences:
        log.warning("%s", warning)


def _check_files_exist(recs: list[Recording]) -> None:
    missing = [
        str(r.source)
        for r in recs
        if not isinstance(r.source, np.ndarray) and not Path(r.source).is_file()
    ]
    folders = [m for m in missing if Path(m).is_dir()]
    if folders:  # before: "no such file", of a folder that is there
        raise AudioFileNotFoundError(
            folders[0],
            "a folder, not a recording: a Recording is one audio or video file with its "
            "markers (e.g. [Recording(f, m) for f, m in read_markers('markers.csv').items()])",
        )
    if missing:
        raise AudioFileNotFoundError(
            missing[0],
            f"no such file; {len(missing)} of the {len(recs)} training recordings are "
            f"missing: {', '.join(m + same_stem_hint(m) for m in missing[:5])}"
            f"{' …' if len(missing) > 5 else ''}",
        )


def _check_files_readable(recs: list[Recording], audio_stream: AudioStream | None) -> None:
    """Every training file opens as audio (a header read each), so that all the
    unreadable ones are named at once, before any is embedded: training needs them
    all, and fixing one to meet the next after minutes of embedding is slow."""
    bad: list[AudioDecodeError] = []
    files = [r.source for r in recs if not isinstance(r.source, np.ndarray)]
    for source in files:
        try:
            probe_audio(source, audio_stream)
        except AudioDecodeError as exc:
            bad.append(exc)
    if len(bad) == 1:
        raise bad[0]
    if bad:
        first, more = bad[0], bad[1:]
        listed = "; ".join(f"{e.path} ({e.reason})" for e in more[:5])
        raise type(first)(
            first.path,
            f"{first.reason}; {len(more)} more of the {len(recs)} training recordings cannot "
            f"be read either: {listed}{' …' if len(more) > 5 else ''}",
        )


def _warn_contradicting_markers(
    recs: list[Recording], labellings: list[TargetedWindows], durations: list[float]
) -> None:
    """A warning per recording with moments marked both positive and negative (a
    review answer against a marker, one row of two files): the positive wins, as a
    window holding a positive marker is a positive (before: without a word); and one
    with negative markers inside a positive (or soft) marker's windows, which label
    no window negative for the same reason (before: without a word too)."""
    for rec, labelling, duration in zip(recs, labellings, durations, strict=True):
        both = sorted(set(rec.markers.positive) & set(rec.markers.negative))
        if both:
            log.warning(
                "%s: %d moment(s) are marked both positive and negative (%s): they are "
                "trained as positive. Remove the marker that is wrong.",
                rec.label,
                len(both),
                _times(both),
            )
        lost = sorted(set(labelling.lost_negatives(duration, rec.markers)) - set(both))
        if lost:
            log.warning(
                "%s: %d negative marker(s) (%s) lie inside the training windows of a "
                "positive or soft marker, which win: no window is trained as negative "
                "there. Move each farther from the positive one, or remove the marker "
                "that is wrong.",
                rec.label,
                len(lost),
                _times(lost),
            )


def _times(times: list[float]) -> str:
    return ", ".join(f"{t:g} s" for t in times[:5]) + (", …" if len(times) > 5 else "")


def _check_complete(recs: list[Recording]) -> None:
    """At least one recording must be complete (its unmarked windows are the negatives
    and the threshold's cross-validation scores it), and no file may be both."""
    kinds: dict[str, set[bool]] = {}
    for r in recs:
        if not isinstance(r.source, np.ndarray):
            kinds.setdefault(file_key(r.source), set()).add(r.complete)
    both = [k for k, v in kinds.items() if len(v) > 1]
    if both:
        raise InvalidInputError(
            f"{both[0]} is given both as a complete recording and as one that is not "
            "(complete=False): give it once, with all its markers, complete."
        )
    if not any(r.complete for r in recs):
        raise TrainingDataError(
            f"None of the {len(recs)} training recordings is complete (every occurrence "
            "marked): reviewed answers alone give no negatives beyond the marked ones and "
            "nothing to choose the threshold on. Mark every occurrence in at least one "
            "recording (Recording(..., complete=True); audio-embed train --markers) and "
            "give the reviewed ones with it (complete=False; --reviewed)."
        )


def _as_recording(item: Recording | tuple[Source, Markers]) -> Recording:
    if isinstance(item, Recording):
        return item
    how = (
        "fit() takes Recording(source, Markers(...)) objects or (source, Markers) pairs, "
        "e.g. [Recording(f, m) for f, m in read_markers('markers.csv').items()]"
    )
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InvalidInputError(f"{how}. Got {item!r:.80} instead.")
    source, markers = item
    if not isinstance(markers, Markers):
        raise InvalidInputError(
            f"{how}; the markers of {source!r:.80} are a {type(markers).__name__}, not "
            "Markers (times of the target: Markers(positive=[...]))."
        )
    return Recording(source=source, markers=markers)


def _audio_stream_or_none(value: object) -> AudioStream | None:
    """:attr:`Scanner.audio_stream` checked when set, at construction or after."""
    return None if value is None else check_audio_stream(value, "audio_stream of Scanner")


@define
class Scanner(StreamingEmbeddings):
    """Find a target sound in recordings from a few marked moments.

    Args:
        embedder: any :class:`~audio_embed.Embedder`.
        classifier: an unfitted :class:`CalibratedClassifier`.
        scan_windows: sliding windows for scanning (and for the
            per-recording normalisation statistics).

        ``classifier``, ``scan_windows``, ``context`` and ``postprocessing``
        left unset take the embedder's own measured settings
        (:meth:`Embedder.scan_defaults <audio_embed.Embedder.scan_defaults>`:
        Whisper tiny.en and BirdNET use logistic regression, BirdNET 3 s
        windows), else the library's defaults; what the caller passes wins.
        train_windows: labelled windows around markers for training; its
            ``window`` must equal ``scan_windows.window`` (the default
            ``TargetedWindows()`` takes it); its ``hop`` (None, the default)
            becomes ``scan_windows.hop``.
        normalization: ``"recording"`` (default): z-score each recording's
            embeddings with the mean and std of *all its sliding windows*, in
            fit and in scan alike. ``"targeted"``: the original behaviour,
            training statistics over the targeted windows only (scan still
            uses the sliding windows). ``"none"``.
        cache: an :class:`EmbeddingCache`, or None for no caching.
        batch_size: windows per encoder call; None (default) sizes batches
            from the device's free memory (:meth:`Embedder.auto_batch_size`).
        threshold: ``"auto"`` (default): :meth:`fit` chooses it by
            cross-validation over the training recordings (see
            :mod:`audio_embed.threshold`); or a number in (0, 1). The value in
            use after fit is :attr:`scan_threshold`.
        context: seconds of surrounding audio each window is compared with:
            the classifier sees each window's normalised embedding and its
            difference from the mean of the windows within ``context / 2``
            seconds on either side (0 = the embedding alone). It lets a short
            sound stand out from a changing background (measured on the wolf
            benchmark, see the README).
        postprocessing: how window scores become detections
            (:class:`~audio_embed.detect.Postprocessing`).
        postprocessing_from_spans: when the positive markers carry durations
            (selections: :attr:`Markers.spans <audio_embed.Markers.spans>`),
            :meth:`fit` sizes the post-processing from them
            (:func:`~audio_embed.scanner.defaults.span_postprocessing`: a minimum
            detection length of the median marked duration, and hysteresis
            0.5 for sounds of two windows or more); scans then use
            :attr:`scan_postprocessing`, and ``training_summary["postprocessing"]``
            says what was derived from what. False: always ``postprocessing`` as
            given.
        postprocessing_from_points: with point markers only (no selection), and
            ``postprocessing_from_spans``, :meth:`fit` estimates each marked
            sound's duration from how long the windows after its marker stay
            like the window starting there
            (:func:`~audio_embed.scanner.point_duration.embedding_run_durations`);
            when their median is at least two scan windows (a long sound) and
            there are at least ``MIN_POINT_MARKERS`` (10) of them, the
            post-processing is sized as from selections, from a second estimate
            that compares the windows with every window within that median
            (:func:`~audio_embed.scanner.point_duration.point_durations`,
            :func:`~audio_embed.scanner.defaults.point_postprocessing`;
            ``training_summary["postprocessing"]["source"]`` is then
            ``"points (estimated)"``); shorter sounds keep ``postprocessing``
            (the estimate is in the summary). Selections are never overridden.
            False: point markers keep ``postprocessing``.
        seed: seeds the cross-validation folds of the automatic threshold.
        augmentation: with a :class:`~audio_embed.augment.MixAugmentation`,
            :meth:`fit` adds new takes of the marked sounds mixed into other
            places of the training recordings as positive windows (see
            :mod:`audio_embed.scanner.augmented`); ``"auto"`` (default):
            :data:`~audio_embed.augment.AUTO_AUGMENTATION` for 3 to 5 positive
            markers, ``AUTO_MANY_AUGMENTATION`` for more in 4+ recordings with
            the automatic estimator (three draws of three copies, one classifier
            per draw, averaged), else none (wolf benchmark); None: none.
            ``training_summary["augmentation"]`` says whether it ran and why.
        audio_stream: which audio stream of a file fit, scan and every other
            decoding use: its position among the file's audio streams, 0-based
            as ``ffmpeg -map 0:a:N`` (an OBS recording's game track, a film's
            second language; see :func:`~audio_embed.audio.stream_audio`).
            None (default): the first, with a warning naming the others when a
            file has several. Saved with the scanner, so a scanner trained on
            track 1 scans track 1 after :meth:`load`; set the attribute to scan
            files whose tracks are laid out otherwise. It is part of the
            embedding cache key (track 0 and track 1 of a file never share
            cached embeddings).
    """

    embedder: Embedder
    classifier: CalibratedClassifier = field(
        default=Factory(lambda self: model_classifier(self.embedder), takes_self=True)
    )
    scan_windows: SlidingWindows = field(
        default=Factory(lambda self: model_scan_windows(self.embedder), takes_self=True)
    )
    train_windows: TargetedWindows = field(factory=TargetedWindows)
    normalization: Normalization = "recording"
    cache: EmbeddingCache | None = None
    batch_size: int | None = None
    threshold: float | Literal["auto"] = "auto"
    context: float = field(
        default=Factory(lambda self: model_context(self.embedder), takes_self=True)
    )
    postprocessing: Postprocessing = field(
        default=Factory(lambda self: model_postprocessing(self.embedder), takes_self=True)
    )
    seed: int = 0
    augmentation: AugmentationSetting = "auto"
    postprocessing_from_spans: bool = True
    postprocessing_from_points: bool = True
    audio_stream: AudioStream | None = field(default=None, converter=_audio_stream_or_none)
    training_summary: dict[str, Any] | None = field(default=None, init=False)
    threshold_: float | None = field(default=None, init=False)
    #: The post-processing fit sized from the marked selections, or from the durations
    #: estimated from point markers (None: ``postprocessing``).
    postprocessing_: Postprocessing | None = field(default=None, init=False)
    _fit_data: FitData | None = field(default=None, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self._check_parts()
        if self.train_windows == TargetedWindows():  # the default follows the scan windows
            self.train_windows = attrs.evolve(self.train_windows, window=self.scan_windows.window)
        if self.train_windows.hop is None:
            self.train_windows = attrs.evolve(self.train_windows, hop=self.scan_windows.hop)
        self._check_hops()
        if abs(self.train_windows.window - self.scan_windows.window) > 1e-9:
            raise InvalidInputError(
                "The training and scanning windows must have the same length. Got "
                f"{self.train_windows.window} s and {self.scan_windows.window} s."
            )
        if self.normalization not in ("recording", "targeted", "none"):
            raise InvalidInputError(
                "The 'normalization' parameter of Scanner must be 'recording', 'targeted' "
                f"or 'none'. Got {self.normalization!r} instead."
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInputError(
                f"The 'batch_size' must be >= 1, or None for automatic. Got {self.batch_size}."
            )
        _check_threshold(self.threshold)
        check_augmentation(self.augmentation)
        if not (np.isfinite(self.context) and self.context >= 0):
            raise InvalidInputError(
                f"The 'context' parameter of Scanner must be >= 0 seconds. Got {self.context!r}."
            )

    def _check_hops(self) -> None:
        """Refuse a hop shorter than one sample (``--hop 1e-9``): such windows are the
        same window over and over, and their grid alone filled the memory (before: 10 GB
        and no end for a two-minute recording)."""
        rate = int(self.embedder.sample_rate)
        for owner, hop in (
            ("SlidingWindows", self.scan_windows.hop),
            ("TargetedWindows", self.train_windows.hop),
        ):
            if hop is not None and hop * rate < 1.0 - 1e-6:
                raise InvalidInputError(
                    f"The 'hop' parameter of {owner} must be at least one sample of the "
                    f"{rate} Hz audio {self.embedder.name} takes ({1.0 / rate:.3g} s): "
                    f"windows closer together are the same window. Got {hop!r} instead "
                    "(the default is 0.1 s; audio-embed train --hop)."
                )

    def _check_parts(self) -> None:
        """Refuse parts of another type than the scanner can use, saying what to pass."""
        if not isinstance(self.classifier, CalibratedClassifier):
            name = type(self.classifier).__name__
            raise InvalidInputError(
                "The 'classifier' parameter of Scanner must be a CalibratedClassifier. Got "
                f"{name} instead; wrap it: CalibratedClassifier(estimator={name}(...)) "
                "(calibration=None keeps its own probabilities)."
            )
        sw = self.scan_windows
        if not isinstance(sw, SlidingWindows) or type(sw).starts is not SlidingWindows.starts:
            raise InvalidInputError(
                "The 'scan_windows' parameter of Scanner must be SlidingWindows(window, hop, "
                f"encoding). Got {type(sw).__name__} instead, with its own starts(): a scanner "
                "streams, caches and saves the grid 0, hop, 2·hop, … (plus one window at the "
                "end) only. Choose window and hop, or embed windows of your own "
                "(embedder.embed_windows) and score them with scanner.score_embeddings."
            )
        if not isinstance(self.train_windows, TargetedWindows):
            raise InvalidInputError(
                "The 'train_windows' parameter of Scanner must be TargetedWindows (or a "
                f"subclass). Got {type(self.train_windows).__name__} instead."
            )

    @property
    def scan_threshold(self) -> float:
        """The threshold scans use: the one fit chose (or was given), else the setting."""
        if self.threshold_ is not None:
            return self.threshold_
        return FALLBACK_THRESHOLD if self.threshold == "auto" else float(self.threshold)

    @property
    def scan_postprocessing(self) -> Postprocessing:
        """The post-processing scans use: the one fit sized from marked selections or
        from the durations estimated from points (``postprocessing_from_spans``,
        ``postprocessing_from_points``), else ``postprocessing``."""
        return self.postprocessing if self.postprocessing_ is None else self.postprocessing_

    def _sized_postprocessing(
        self, recordings: Iterable[tuple[Markers, float, np.ndarray, np.ndarray]]
    ) -> tuple[Postprocessing, dict[str, Any]]:
        """The post-processing for these recordings' markers (from the durations of their
        selections, else estimated from the points), and its summary. Each recording is
        (markers, duration, window starts, normalised window embeddings)."""
        recs = [(m.within(d), starts, x) for m, d, starts, x in recordings]
        durations = [b - a for m, _, _ in recs for a, b in m.spans if b > a]
        if not self.postprocessing_from_spans:
            return self.postprocessing, {
                "source": "given",
                "reason": "postprocessing_from_spans=False: the scanner's post-processing",
                "postprocessing": self.postprocessing.as_dict(),
            }
        window = self.scan_windows.window
        if durations or not self.postprocessing_from_points:
            return span_postprocessing(self.postprocessing, durations, window)
        estimates, sizes = point_durations(
            ((m.positive, starts, x) for m, starts, x in recs),
            window,
            smooth=self.postprocessing.smooth,
        )
        return point_postprocessing(self.postprocessing, estimates, window, sizes)

    @classmethod
    def from_name(
        cls: type[_S], name: str, *, embedder_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> _S:
        """A scanner over the registered embedder ``name`` (see :func:`list_embedders`);
        ``embedder_kwargs`` go to :func:`create_embedder` (the model's own settings,
        ``--model-option`` on the command line), ``kwargs`` to :class:`Scanner`.

        Raises:
            InvalidInputError: a keyword that is not a setting of :class:`Scanner`,
                named with the settings it has; a setting of the model is named as
                one for ``embedder_kwargs`` (before: a ``TypeError`` from
                ``Scanner.__init__``).
        """
        from audio_embed.registry import create_embedder

        known = [a.alias for a in attrs.fields(cls) if a.init and a.alias != "embedder"]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise InvalidInputError(_unknown_scanner_settings(name, unknown, kwargs, known))
        return cls(create_embedder(name, **(embedder_kwargs or {})), **kwargs)

    @staticmethod
    def _zscore(x: np.ndarray, stats_from: np.ndarray) -> np.ndarray:
        mean = stats_from.mean(axis=0)
        std = np.maximum(stats_from.std(axis=0), STD_FLOOR)
        centred = x - mean
        centred /= std  # in place: an hour of windows is held once, not three times
        out: np.ndarray = centred.astype(np.float32, copy=False)
        return out

    # ------------------------------------------------------------------ training

    def _normalise(self, x: np.ndarray, stats_from: np.ndarray) -> np.ndarray:
        return x if self.normalization == "none" else self._zscore(x, stats_from)

    def _with_context(
        self, x: np.ndarray, grid: np.ndarray, grid_starts: np.ndarray, at: np.ndarray
    ) -> np.ndarray:
        """Append ``x`` minus the mean of the ``grid`` windows around ``at`` (see ``context``)."""
        if self.context <= 0:
            return x
        from scipy.ndimage import uniform_filter1d

        hop = float(np.median(np.diff(grid_starts))) if len(grid_starts) > 1 else 1.0
        size = max(1, round(self.context / hop))
        size += 1 - size % 2
        # float32 out: scipy sums in double and rounds once, as the float64 copy did, at
        # a quarter of the memory (a whole recording's windows: it bounded long scans)
        local = uniform_filter1d(grid, size=size, axis=0, mode="nearest", output=np.float32)
        idx = nearest_index(grid_starts, at)
        if len(idx) != len(local) or np.any(idx != np.arange(len(idx))):
            local = local[idx]  # a scan asks for every window: no copy then
        d = x.shape[1]
        out: np.ndarray = np.empty((len(x), 2 * d), dtype=np.result_type(x, np.float32))
        out[:, :d] = x
        np.subtract(x, local, out=out[:, d:])
        return out

    def window_features(self, normalised: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """What the classifier sees, from one recording's normalised embeddings.

        ``normalised``: every sliding window of the recording, in time order,
        already normalised as ``normalization`` says (an index's vectors are);
        ``starts``: their start times. Appends the context features.

        A hook: a subclass that overrides it (more features, another context)
        changes what fit, the threshold's cross-validation, scans and
        ``fit_from_index`` all see; load its saved scanners with the subclass's
        :meth:`load`.
        """
        return self._with_context(normalised, normalised, starts, starts)

    def _scan_features(self, entry: CachedEmbeddings) -> np.ndarray:
        """What the classifier sees for every sliding window of a recording."""
        grid = self._normalise(entry.embeddings, entry.embeddings)
        return self.window_features(grid, entry.starts)

    def _training_windows(
        self, rec: Recording, entry: CachedEmbeddings
    ) -> tuple[np.ndarray, np.ndarray]:
        labelled = self.labelling_of(rec).windows(entry.duration, rec.markers)
        x = np.empty((len(labelled.starts), self.embedder.dim), dtype=np.float32)
        idx = np.searchsorted(entry.starts, labelled.starts - 1e-6)
        idx = np.clip(idx, 0, len(entry.starts) - 1)
        found = np.abs(entry.starts[idx] - labelled.starts) < 1e-6
        x[found] = entry.embeddings[idx[found]]
        if (~found).any():
            sr = self.embedder.sample_rate
            if isinstance(rec.source, np.ndarray):
                audio = resample(mono_array(rec.source), int(rec.sample_rate or sr), sr)
            else:
                audio = load_audio(rec.source, sr, self.audio_stream)
            x[~found] = self.embedder.embed_windows(
                audio,
                labelled.starts[~found],
                self.train_windows.window,
                batch_size=self.batch_size,
                encoding=self.scan_windows.encoding,
            )
        stats = x if self.normalization == "targeted" and len(x) else entry.embeddings
        grid = self._normalise(entry.embeddings, stats)
        if found.all():  # windows of the scan grid: the features a scan gives them
            return self.window_features(grid, entry.starts)[idx], labelled.labels
        if type(self).window_features is not Scanner.window_features:
            raise InvalidInputError(
                f"{type(self).__name__} has its own window_features(), which needs the "
                "training windows on the scan grid; these start between its windows (the "
                f"train_windows' hop {self.train_windows.hop} s, the scan hop "
                f"{self.scan_windows.hop} s): give TargetedWindows(hop=None) the scan hop."
            )
        x = self._with_context(self._normalise(x, stats), grid, entry.starts, labelled.starts)
        return x, labelled.labels

    def labelling_of(self, rec: Recording) -> TargetedWindows:
        """The training windows of ``rec``: ``train_windows``, without the automatic
        negatives when its markers are not ``complete``."""
        if rec.complete:
            return self.train_windows
        return attrs.evolve(self.train_windows, neg_margin=0.0)

    def fit(
        self: _S,
        recordings: Iterable[Recording | tuple[Source, Markers]],
        *,
        threshold: float | Literal["auto"] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> _S:
        """Train on recordings with markers; returns ``self``.

        ``threshold``: ``"auto"`` chooses the detection threshold by
        cross-validation (:mod:`audio_embed.threshold`), a number sets it;
        None (default) uses the scanner's ``threshold`` setting (``"auto"``
        unless given). The value and, when chosen, its cross-validated event
        F1 are in ``training_summary["threshold"]``.

        Raises:
            TrainingDataError: no recordings, or only one class among the windows.
            AudioDecodeError: a training file cannot be read (training needs them all).
            Cancelled: ``cancel`` was set; the scanner is left unchanged.
        """
        setting = self.threshold if threshold is None else threshold
        _check_threshold(setting)
        recs = [_as_recording(r) for r in recordings]
        sw = self.scan_windows
        if sw.hop > sw.window + 1e-9:  # said at training (not at every load or evolve)
            log.warning(
                "Windows of %g s every %g s leave %g s of every %g s unseen: a sound there "
                "is never detected. Use a hop no longer than the window.",
                sw.window,
                sw.hop,
                sw.hop - sw.window,
                sw.hop,
            )
        if not recs:
            raise TrainingDataError("fit() needs at least one recording with markers.")
        _check_complete(recs)
        _check_files_exist(recs)  # say so before any work, not after embedding others
        _check_files_readable(recs, self.audio_stream)
        xs, ys, grids = [], [], []
        # The next file is decoded while the current one is embedded.
        entries = self._embeddings_many(
            [(rec.source, rec.sample_rate) for rec in recs], progress, cancel
        )
        for i, entry in entries:
            if isinstance(entry, Exception):
                raise entry
            # markers beyond the end are dropped here, once, with a warning naming the
            # file (every later step would drop them again, and warn again, unnamed)
            rec = recs[i] = attrs.evolve(
                recs[i], markers=recs[i].markers.within(entry.duration, recs[i].label)
            )
            x, y = self._training_windows(rec, entry)
            grids.append((entry, self._scan_features(entry)))
            xs.append(x)
            ys.append(y)
            if progress is not None:
                progress(ProgressEvent("train-files", rec.label, i + 1, len(recs), "files"))
        data = self._training_data(recs, grids, xs, ys, setting)
        pools = augmented_pools(self, list(data.recordings), list(data.grids), cancel)
        self._fit_arrays(attrs.evolve(data, augmented=pools), cancel)
        return self

    def _training_data(
        self,
        recs: list[Recording],
        grids: list[tuple[CachedEmbeddings, np.ndarray]],
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        setting: float | Literal["auto"],
    ) -> FitData:
        """The training windows of ``recs`` (one entry each in the lists) as
        :class:`FitData`; refuses one class only, recordings none of which is
        complete and recordings that are all silent; warns of silent ones and of
        training bands that differ (:meth:`_check_training_bands`)."""
        _check_complete(recs)
        per_file = [
            _file_summary(rec, entry, y) for rec, (entry, _), y in zip(recs, grids, ys, strict=True)
        ]
        silences = [
            recording_silence_warning(
                rec.source,
                entry.peak,
                self.audio_stream,
                "its windows teach the scanner nothing of the sound",
            )
            for rec, (entry, _) in zip(recs, grids, strict=True)
        ]
        _refuse_silence([w for w in silences if w is not None], len(recs))
        short = [(r.label, e.duration) for r, (e, _) in zip(recs, grids, strict=True)]
        short = [s for s in short if s[1] < 2 * self.scan_windows.window]
        if short and self.normalization != "none":  # before: trained without a word
            log.warning("%s", short_training_advice(len(short), len(recs), *short[0]))
        self._check_training_bands(per_file)
        _warn_contradicting_markers(
            recs, [self.labelling_of(r) for r in recs], [g[0].duration for g in grids]
        )
        X, y = stack_training_windows(xs, ys, self.embedder.dim)
        self._refuse_no_negatives(y)
        return FitData(tuple(recs), tuple(grids), X, y, tuple(per_file), setting)

    def _refuse_no_negatives(self, y: np.ndarray) -> None:
        """Every labelled window positive: say what to change (the classifier's own
        one-class error cannot name the negative margin)."""
        if len(y) and y.all():
            margin = self.train_windows.neg_margin
            raise TrainingDataError(
                f"Training needs both classes but only one class was found: {len(y)} "
                f"positive and 0 negative window(s): no window lies {margin:g} s or more "
                "from every marker (the negative margin). Train on longer or more "
                "recordings, mark negatives, or lower the margin (TargetedWindows("
                "neg_margin=...), audio-embed train --neg-margin)."
            )

    def _fit_arrays(
        self,
        data: FitData,
        cancel: CancelToken | None,
        extra: tuple[np.ndarray, np.ndarray] | None = None,
        adaptation: dict[str, Any] | None = None,
    ) -> None:
        """Fit the classifier on ``data`` (plus ``extra`` pseudo-labelled windows) and
        choose the threshold; the scanner changes only when all of it succeeded.

        With several augmentation draws (``MixAugmentation.draws``) the classifier
        averages one model per draw and the threshold is the mean of each draw's own
        cross-validated threshold (README, "Several draws averaged")."""
        X, y = data.X, data.y
        if extra is not None:
            X, y = np.concatenate([X, extra[0]]), np.concatenate([y, extra[1]])
        classifier = clone(self.classifier)
        if cancel is not None:
            cancel.check()
        more: dict[str, Any] = {}
        ran = [p for p in data.augmented if p.ran]
        if not ran:
            classifier.fit(X, y)
        else:  # the estimator is chosen by the marked (and pseudo-labelled) positives
            draws = []
            for pool in ran:
                aug = pool.rows()
                draws.append(
                    (np.concatenate([X, aug]), np.concatenate([y, np.ones(len(aug), y.dtype)]))
                )
            classifier.fit_draws(draws, choose_by=int(y.sum()), cancel=cancel)
        pools: list[AugmentedPool | None] = [*ran] or [None]
        if data.augmented:
            more["augmentation"] = pools_summary(data.augmented)
        post, more["postprocessing"] = self._sized_postprocessing(
            # the first columns of the features are the normalised embeddings
            (r.markers, e.duration, e.starts, features[:, : self.embedder.dim])
            for r, (e, features) in zip(data.recordings, data.grids, strict=True)
        )
        if data.threshold == "auto":
            # Augmented, every fold fits the estimator this fit chose (by its own marked
            # windows a fold of 3 markers would fit the prototype scorer on the copies).
            choice = mean_choice(
                [
                    cross_validated_threshold(
                        self,
                        list(data.recordings),
                        list(data.grids),
                        cancel,
                        extra,
                        pool,
                        int(y.sum()),
                        post=post,
                    )
                    for pool in pools
                ]
            )
            if choice.method == "fallback" and data.y.sum() > 0:
                scores = classifier.score_windows(data.X)
                why = FEW_MATCHES if choice.note == FEW_MATCHES else "one positive marker"
                choice = training_threshold(scores[data.y == 1], scores[data.y == 0], why)
        else:
            choice = ThresholdChoice(float(data.threshold), None, "given", 0)
        if cancel is not None:  # a cancel during the fit leaves the scanner unchanged
            cancel.check()
        threshold = choice.as_dict()
        warning = threshold_warning(choice)
        if warning:
            log.warning("%s", warning)
            threshold["warning"] = warning
        self.classifier = classifier
        self.threshold_ = choice.value
        self.postprocessing_ = None if post == self.postprocessing else post
        if adaptation is not None:
            more["adaptation"] = adaptation
        self.training_summary = training_summary(
            list(data.per_file), data.y, classifier, threshold=threshold, **more
        )
        self._fit_data = data

    def adapt(
        self: _S,
        sources: Iterable[Source],
        *,
        top: int = 1,
        rounds: int = 1,
        negative_quantile: float = 0.5,
        sample_rate: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> _S:
        """A copy of this scanner refitted with pseudo-labels from ``sources``, the
        recordings to be scanned (self-training; see :mod:`audio_embed.scanner.adapt`).

        Each source is scanned; its ``top`` best detections become positive
        markers and its windows far from every detection, scoring at most its
        ``negative_quantile``, negatives; the classifier is refitted on the
        training windows plus these and the threshold chosen again as ``fit``
        did; ``rounds`` repeats it, each from the previous round's scanner.
        This scanner is not changed. ``training_summary["adaptation"]`` of the
        copy says how many pseudo-labels were used (in the last round). Only a scanner trained by
        :meth:`fit` in this session can adapt (a loaded one has no training
        windows). Array sources need ``sample_rate``.

        Raises:
            InvalidInputError: bad ``top``, ``rounds`` or ``negative_quantile``; no
                sources; a source that is also a training recording.
            TrainingDataError: the scanner was not trained by :meth:`fit` here.
            AudioDecodeError: a source cannot be read.
        """
        return adapt_scanner(
            self,
            sources,
            top=top,
            rounds=rounds,
            negative_quantile=negative_quantile,
            sample_rate=sample_rate,
            progress=progress,
            cancel=cancel,
        )

    @property
    def is_fitted(self) -> bool:
        return hasattr(self.classifier, "estimator_")

    @property
    def training_markers(self) -> dict[str, Markers] | None:
        """The markers it was trained on, per recording (its resolved path,
        :func:`~audio_embed.formats.file_key`), kept in ``training_summary["files"]``
        and so in a saved scanner; None for a scanner trained before they were kept
        (or not trained). :func:`audio_embed.review.suggest_windows` leaves them out."""
        return summary_markers(self.training_summary)

    @property
    def training_band_edge(self) -> float | None:
        """The lowest upper band edge (Hz) of the training recordings
        (:mod:`audio_embed.bandwidth`), which scans compare each recording's with;
        None when one of them has none (a scanner saved before the estimate existed,
        an embedding-cache entry made before it): then no check. Silent recordings
        (warned of at fit) have no band and are left out."""
        files = (self.training_summary or {}).get("files") or []
        edges = [f.get("band_edge_hz") for f in files if not f.get("silent")]
        if not edges or any(e is None for e in edges):
            return None
        return float(min(edges))

    def _f_max(self) -> float | None:
        """The top of the model's bands (its ``f_max`` setting), or None: the band check
        looks no higher."""
        f_max = self.embedder.settings().get("f_max")
        return float(f_max) if isinstance(f_max, int | float) and f_max > 0 else None

    def _check_training_bands(self, files: list[dict[str, Any]]) -> None:
        """Warn when the training recordings' bands differ (a codec's cut in some of them:
        the narrow ones lower the reference, so no scan would be warned of); say when the
        check is off because a recording has no band edge (silent ones, warned of
        already, are left out)."""
        files = [f for f in files if not f.get("silent")]
        found = [f.get("band_edge_hz") for f in files]
        edges = [float(e) for e in found if e is not None]
        if len(edges) < len(found):
            log.info(
                "No band check for this scanner: %d training recording(s) have no band edge "
                "(embedded by an earlier release, into the embedding cache or a search index: "
                "clear the cache, or build the index again, to have them measured).",
                len(found) - len(edges),
            )
            return
        f_max = self._f_max()
        seen = [min(e, f_max or e) for e in edges]  # what the model's bands see of each
        narrow = [i for i, e in enumerate(seen) if e < max(seen) - MARGIN_HZ]
        if not narrow:
            return
        names = ", ".join(str(files[i]["source"]) for i in narrow[:3])
        log.warning(
            "%d of the %d training recordings reach only %.1f kHz or less, the others %.1f kHz "
            "(a lossy codec?): %s%s. Scans are compared with the narrowest, and the classifier "
            "learns from bands the narrow ones lack; train on recordings of one kind%s.",
            len(narrow),
            len(files),
            max(seen[i] for i in narrow) / 1000,
            max(seen) / 1000,
            names,
            " …" if len(narrow) > 3 else "",
            f", or with --model-option f_max={100 * (min(seen) // 100):.0f}" if f_max else "",
        )

    # ------------------------------------------------------------------ scanning

    def describe(self, root: str | os.PathLike[str] | None = None) -> str:
        """The training summary as text, as ``audio-embed train`` prints it: the
        recordings and windows per class, the model's settings (``--model-option``)
        and weights that are not its defaults, classifier, calibration, augmentation,
        post-processing and the threshold with how it was chosen (in a notebook:
        ``print(scanner.describe())``). File names are relative to ``root`` if given."""
        from audio_embed.scanner.report import describe

        self._check_fitted()
        return describe(self, root)

    def scan(
        self,
        source: Source,
        *,
        sample_rate: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> ScanResult:
        """Score every sliding window of a file (or an array with ``sample_rate``)."""
        self._check_fitted()
        source = check_source(source)
        entry = self.sliding_embeddings(
            source, sample_rate=sample_rate, progress=progress, cancel=cancel
        )
        if entry.duration < SHORT_FILE_SECONDS and self.normalization != "none":
            name = "<array>" if isinstance(source, np.ndarray) else str(source)
            log.warning("%s", short_file_advice(1, 1, name, entry.duration))
        result = self._score(source, entry)
        for warning in result.warnings:
            log.warning("%s", warning)
        return result

    def scan_many(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, ScanResult | AudioEmbedError]]:
        """:meth:`scan` several files, decoding the next file while the current one is embedded.

        Yields ``(path, result)`` in order, or ``(path, error)`` for a file that
        cannot be decoded (the others are still scanned). Cancellation raises.
        A result's :attr:`~ScanResult.warnings` are not logged here (batch scans
        log them as each result is written).
        """
        self._check_fitted()
        sources = path_list(sources, "Scanner.scan_many")
        for path, entry in self.sliding_embeddings_many(sources, progress=progress, cancel=cancel):
            yield path, entry if isinstance(entry, Exception) else self._score(path, entry)

    def score_embeddings(self, entry: CachedEmbeddings, *, source: str = "<array>") -> ScanResult:
        """:meth:`scan` of sliding-window embeddings computed earlier
        (:meth:`sliding_embeddings` of this scanner, or an embedding-cache entry);
        ``source`` names the file in the result."""
        self._check_fitted()
        return self._score(source, entry)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This Scanner is not trained yet; call fit() or Scanner.load().")

    def _score(self, source: Source, entry: CachedEmbeddings) -> ScanResult:
        proba = self.classifier.score_windows(self._scan_features(entry))
        name = "<array>" if isinstance(source, np.ndarray) else str(source)
        narrow = bandwidth_warning(name, entry.band_edge, self.training_band_edge, self._f_max())
        silent = recording_silence_warning(source, entry.peak, self.audio_stream)
        return ScanResult(
            source=name,
            starts=entry.starts,
            probabilities=proba,
            window=self.scan_windows.window,
            duration=entry.duration,
            threshold=self.scan_threshold,
            postprocessing=self.scan_postprocessing,
            warnings=tuple(w for w in (silent, narrow) if w is not None),
        )

    # ------------------------------------------------------------------ persistence

    def _metadata(self) -> dict[str, Any]:
        return persistence.metadata(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trained scanner to one file (a zip of JSON + skops), atomically.

        The file gets ordinary permissions (``0o666`` less the umask), like
        every other output.
        """
        return persistence.save(self, path)

    @staticmethod
    def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
        """The JSON part of a saved scanner (embedder name, settings, summary)."""
        return persistence.read_metadata(path)

    @classmethod
    def load(
        cls: type[_S],
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
        embedder_kwargs: dict[str, Any] | None = None,
        allow_mismatch: bool = False,
        trusted: Sequence[str] = (),
    ) -> _S:
        """Load a scanner saved by :meth:`save`.

        The embedder is rebuilt from the saved config (registry name, settings,
        layers, pooling, weight source; ``embedder_kwargs`` such as ``device``
        or a local ``checkpoint`` go to its factory) unless given. Its config,
        weight fingerprint included, must equal the saved one; with
        ``allow_mismatch=True`` a mismatch is only logged as a warning. Files
        of formats 1 and 2 (no config) are rebuilt by name. Never unpickles:
        the classifier is read with skops after checking that it holds only
        scikit-learn / numpy types, and the types named in ``trusted``
        (``"my_module.MyEstimator"``: a classifier of your own, wrapped in
        :class:`CalibratedClassifier`; its module is imported).

        Raises:
            ScannerFileError: unreadable, truncated, of another format, made for
                another embedder, feature size, settings or weights (the
                message says what differs), or holding untrusted types.
        """
        return persistence.load(
            cls,
            path,
            embedder=embedder,
            cache=cache,
            embedder_kwargs=embedder_kwargs,
            allow_mismatch=allow_mismatch,
            trusted=tuple(trusted),
        )

"""Augmented positive windows for :meth:`Scanner.fit` (``Scanner(augmentation=...)``).

Each kept positive marker of every training recording is mixed into new
places of every training recording (:class:`~audio_embed.augment.MixAugmentation`);
the scan-grid windows of each mixed segment are embedded, normalised with the
statistics of the recording it was mixed into and given context features from
that recording's grid with the mixed rows in place of its own, exactly as the
recording's real windows; the ones holding the moved marker become extra
positive training windows. Every mixed sound is kept as a unit (source
recording and marker, background recording, feature rows) so that each
cross-validation fold of the threshold trains only on units made from its own
kept markers mixed into its own kept recordings.

``Scanner(augmentation="auto")`` (the default) decides in each fit
(:func:`decide_augmentation`): :data:`~audio_embed.augment.AUTO_AUGMENTATION`
when the training recordings hold :data:`AUTO_MIN_MARKERS` to
:data:`AUTO_MAX_MARKERS` positive markers,
:data:`~audio_embed.augment.AUTO_MANY_AUGMENTATION` for more markers that lie
in at least :data:`AUTO_MANY_MIN_RECORDINGS` recordings when the classifier
chooses its estimator automatically, none otherwise; the training summary
says what ran and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np
from attrs import frozen

from audio_embed.audio import AudioStream, load_audio, resample
from audio_embed.augment import (
    AUTO_AUGMENTATION,
    AUTO_MANY_AUGMENTATION,
    MixAugmentation,
    MixedSound,
    warn_skipped,
)
from audio_embed.cache import CachedEmbeddings
from audio_embed.errors import InvalidInputError
from audio_embed.progress import CancelToken
from audio_embed.scanner.streaming import mono_array
from audio_embed.windows import Markers, nearest_index

if TYPE_CHECKING:
    from audio_embed.scanner.core import Recording, Scanner

__all__ = [
    "AUTO_MANY_MIN_RECORDINGS",
    "AUTO_MAX_MARKERS",
    "AUTO_MIN_MARKERS",
    "AugmentationDecision",
    "AugmentationSetting",
    "AugmentedPool",
    "AugmentedUnit",
    "augmentation_settings",
    "augmented_pools",
    "check_augmentation",
    "decide_augmentation",
    "fold_kept",
    "pools_summary",
]

#: ``Scanner(augmentation=...)``: a :class:`MixAugmentation`, ``"auto"`` or None (none).
AugmentationSetting = MixAugmentation | Literal["auto"] | None
#: ``augmentation="auto"`` mixes in new takes from this many positive markers (all
#: recordings together) up to :data:`AUTO_MAX_MARKERS`. Measured on the wolf
#: benchmark (README, "Augmentation by default"): with one or two
#: markers (the prototype scorer) the copies did not help, with three to five they
#: did under every seed, with seven they cost (the threshold cross-validated over
#: two recordings came out far off), with all twenty they were within seed noise.
AUTO_MIN_MARKERS = 3
#: The most positive markers ``augmentation="auto"`` mixes in
#: :data:`~audio_embed.augment.AUTO_AUGMENTATION` for.
AUTO_MAX_MARKERS = 5
#: With more than :data:`AUTO_MAX_MARKERS` positive markers, ``augmentation="auto"``
#: mixes in :data:`~audio_embed.augment.AUTO_MANY_AUGMENTATION` (three copies, 0-10 dB
#: quieter) when the markers lie in at least this many recordings, so that every
#: fold of the threshold's leave-one-recording-out cross-validation trains on three
#: or more. Measured on the wolf benchmark (README, "Augmentation by default"): all
#: twenty markers in four recordings gained at every augmentation seed (IoU F1
#: 0.60-0.63 against 0.53 with hysteresis 0.5, 0.62-0.67 against 0.50 with 0.75);
#: twelve and fifteen in three recordings were a lottery (0.32-0.66, up to 12 % of
#: the audio flagged), seven and ten in two lost (up to 35 % flagged): the
#: cross-validated threshold came out too low.
AUTO_MANY_MIN_RECORDINGS = 4


def check_augmentation(value: object) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is a valid ``augmentation``."""
    if value is None or value == "auto" or isinstance(value, MixAugmentation):
        return
    raise InvalidInputError(
        "The 'augmentation' parameter of Scanner must be 'auto', None or a MixAugmentation. "
        f"Got {value!r} instead."
    )


@frozen
class AugmentationDecision:
    """What one fit does about augmentation: ``setting`` is ``"auto"``, ``"given"``
    or ``"off"``; ``augmentation`` the one that runs (None: none); ``reason`` why."""

    setting: Literal["auto", "given", "off"]
    augmentation: MixAugmentation | None
    reason: str

    def summary(self, mixed_sounds: int = 0, windows_added: int = 0) -> dict[str, Any]:
        """For ``training_summary["augmentation"]``: whether it ran, why, what it added."""
        aug = self.augmentation
        return {
            "setting": self.setting,
            "ran": aug is not None,
            "reason": self.reason,
            "settings": None if aug is None else augmentation_settings(aug),
            "mixed_sounds": mixed_sounds,
            "windows_added": windows_added,
        }


def decide_augmentation(
    setting: AugmentationSetting,
    n_markers: int,
    *,
    n_recordings: int = 1,
    automatic_estimator: bool = True,
    from_index: bool = False,
) -> AugmentationDecision:
    """The augmentation a fit on ``n_markers`` positive markers, which lie in
    ``n_recordings`` recordings, runs for ``setting``.

    ``automatic_estimator``: the classifier chooses its estimator (``estimator=None``);
    the many-marker setting runs only then (measured with it; with BirdNET's logistic
    regression it cost, README "Augmentation by default").

    ``from_index``: the fit has no audio (``fit_from_index``), so ``"auto"``
    runs none; a given :class:`MixAugmentation` is refused there by the caller.
    """
    check_augmentation(setting)
    if setting is None:
        return AugmentationDecision("off", None, "off: augmentation=None, --augment 0")
    if isinstance(setting, MixAugmentation):
        return AugmentationDecision("given", setting, "given")
    if from_index:
        return AugmentationDecision(
            "auto", None, "auto: not run, trained from an index (mixing needs the audio)"
        )
    counted = f"{n_markers} positive marker{'' if n_markers == 1 else 's'}"
    where = f"in {n_recordings} recording{'' if n_recordings == 1 else 's'}"
    if n_markers < AUTO_MIN_MARKERS:
        why = f"fewer than {AUTO_MIN_MARKERS}"
    elif n_markers <= AUTO_MAX_MARKERS:
        return AugmentationDecision(
            "auto",
            AUTO_AUGMENTATION,
            f"auto: {counted}, from {AUTO_MIN_MARKERS} to {AUTO_MAX_MARKERS}: "
            f"{_copies(AUTO_AUGMENTATION)}",
        )
    elif n_recordings >= AUTO_MANY_MIN_RECORDINGS and automatic_estimator:
        return AugmentationDecision(
            "auto",
            AUTO_MANY_AUGMENTATION,
            f"auto: {counted} {where}, more than {AUTO_MAX_MARKERS} in "
            f"{AUTO_MANY_MIN_RECORDINGS} or more recordings: {_copies(AUTO_MANY_AUGMENTATION)}",
        )
    elif n_recordings >= AUTO_MANY_MIN_RECORDINGS:
        why = (
            f"more than {AUTO_MAX_MARKERS} {where}, but the classifier's estimator is given, "
            "not automatic"
        )
    else:
        why = (
            f"more than {AUTO_MAX_MARKERS} but {where}; that many are mixed in only from "
            f"{AUTO_MANY_MIN_RECORDINGS} recordings up"
        )
    return AugmentationDecision("auto", None, f"auto: not run, {counted} ({why})")


def _copies(aug: MixAugmentation) -> str:
    lo, hi = aug.gain_db
    return f"{aug.copies} cop{'y' if aug.copies == 1 else 'ies'} at {lo:g} to {hi:g} dB"


@frozen(eq=False)
class AugmentedUnit:
    """One marked sound mixed into a recording: ``source`` = (recording, index of the
    positive marker), ``background`` = the recording, ``features`` = its positive rows."""

    source: tuple[int, int]
    background: int
    features: np.ndarray


@frozen(eq=False)
class AugmentedPool:
    """Every augmented unit of a fit; :meth:`rows` filters them for a training set."""

    units: tuple[AugmentedUnit, ...]
    dim: int
    decision: AugmentationDecision

    @property
    def ran(self) -> bool:
        """Whether the fit mixed in new takes (a decision to run none gives no units)."""
        return self.decision.augmentation is not None

    def rows(
        self, kept_markers: set[tuple[int, int]] | None = None, kept_files: set[int] | None = None
    ) -> np.ndarray:
        """Feature rows of the units whose source marker is in ``kept_markers`` and
        whose background recording is in ``kept_files`` (None: all)."""
        got = [
            u.features
            for u in self.units
            if (kept_markers is None or u.source in kept_markers)
            and (kept_files is None or u.background in kept_files)
        ]
        return np.concatenate(got) if got else np.zeros((0, self.dim), np.float32)


def fold_kept(
    markers: Sequence[Markers], held: dict[int, set[int]], by_recording: bool
) -> tuple[set[tuple[int, int]], set[int]]:
    """The (recording, positive marker) pairs and the recordings a cross-validation
    fold trains on: ``held`` maps recordings to their held-out marker indices;
    ``by_recording``: a recording with a held-out marker is held out whole."""
    files = {i for i in range(len(markers)) if not (by_recording and i in held)}
    pairs = {
        (i, k)
        for i in files
        for k in range(len(markers[i].positive))
        if k not in held.get(i, set())
    }
    return pairs, files


def augmentation_settings(aug: MixAugmentation) -> dict[str, Any]:
    """The augmentation's fields as plain JSON values (saved in the training summary);
    ``lowpass_hz`` only when set, so a scanner without it loads in releases before it."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in attrs.asdict(aug).items()
        if not (k == "lowpass_hz" and v is None)
    }


def _name(rec: Recording, i: int) -> str:
    """How warnings name a training recording: its path, or the array's place."""
    return f"training array {i}" if isinstance(rec.source, np.ndarray) else str(rec.source)


def _audio(rec: Recording, sr: int, audio_stream: AudioStream | None) -> np.ndarray:
    if isinstance(rec.source, np.ndarray):
        return resample(mono_array(rec.source), int(rec.sample_rate or sr), sr)
    # None is the first stream, as the fit's own decoding, which already warned when
    # the file has several (before: the same warning again, once per recording)
    return load_audio(rec.source, sr, 0 if audio_stream is None else audio_stream)


def augmented_pools(
    scanner: Scanner,
    recs: Sequence[Recording],
    grids: Sequence[tuple[CachedEmbeddings, np.ndarray]],
    cancel: CancelToken | None = None,
) -> tuple[AugmentedPool, ...]:
    """Mix, embed and featurise every kept positive marker into every training
    recording, as ``scanner.augmentation`` decides (:func:`decide_augmentation`):
    one pool per draw (``MixAugmentation.draws``; draw ``k`` at ``seed + k``), or
    one empty pool when none runs."""
    markers = [r.markers.within(e.duration) for r, (e, _) in zip(recs, grids, strict=True)]
    decision = decide_augmentation(
        scanner.augmentation,
        sum(len(m.positive) for m in markers),
        n_recordings=sum(1 for m in markers if len(m.positive)),
        automatic_estimator=scanner.classifier.estimator is None,
    )
    dim = grids[0][1].shape[1] if grids else scanner.embedder.dim
    if decision.augmentation is None:
        return (AugmentedPool((), dim, decision),)
    sr = scanner.embedder.sample_rate
    audio = [_audio(r, sr, scanner.audio_stream) for r in recs]
    normalised = [scanner._normalise(e.embeddings, e.embeddings) for e, _ in grids]
    given = decision.augmentation
    sources = [(a, m.positive) for a, m in zip(audio, markers, strict=True)]
    backgrounds = [(a, m.all) for a, m in zip(audio, markers, strict=True)]
    skipped = np.zeros(len(recs), dtype=np.int64)
    pools = []
    for k in range(given.draws):
        # new places on the scan grid
        aug = attrs.evolve(given, step=scanner.scan_windows.hop, seed=given.seed + k)
        mixed, missed = aug.mix_counted(sources, backgrounds, sr)
        skipped += missed
        units = []
        for m in mixed:
            if cancel is not None:
                cancel.check()
            entry = grids[m.background][0]
            first = round(m.start * sr)  # the recording before the segment: the lead-in
            before = audio[m.background][
                max(0, first - round(scanner.embedder.lead_in * sr)) : first
            ]
            feats = _unit_features(scanner, m, entry, normalised[m.background], sr, before)
            if len(feats):
                units.append(AugmentedUnit(m.source, m.background, feats))
        pools.append(AugmentedPool(tuple(units), dim, decision))
    # one warning per recording for the whole fit (before: one per draw, the same
    # three times with the default's three draws)
    tried = given.copies * given.draws * sum(len(m) for _, m in sources)
    names = [_name(r, i) for i, r in enumerate(recs)]
    warn_skipped(given, skipped.tolist(), tried, backgrounds, sr, names=names, draws=given.draws)
    return tuple(pools)


def pools_summary(pools: Sequence[AugmentedPool]) -> dict[str, Any]:
    """For ``training_summary["augmentation"]``: whether it ran, why, the settings
    (``draws`` among them) and what all draws added together; with several draws
    also ``windows_added_per_draw`` (each draw's model is trained on the marked
    windows and its own draw's)."""
    added = [int(sum(len(u.features) for u in p.units)) for p in pools]
    out = pools[0].decision.summary(sum(len(p.units) for p in pools), sum(added))
    if len(pools) > 1:
        out["windows_added_per_draw"] = added
    return out


def _unit_features(
    scanner: Scanner,
    m: MixedSound,
    entry: CachedEmbeddings,
    grid: np.ndarray,
    sr: int,
    before: np.ndarray,
) -> np.ndarray:
    """Features of the windows holding the moved marker, as the recording's own windows'
    (``before``: the recording's audio just before the segment, the embedder's
    :attr:`~audio_embed.Embedder.lead_in`, so windows at the segment's start are
    embedded as a scan embeds them)."""
    window = scanner.scan_windows.window
    end = m.start + len(m.audio) / sr
    starts = entry.starts
    rows = np.flatnonzero((starts >= m.start - 1e-6) & (starts + window <= end + 1e-6))
    lw = scanner.train_windows.windows(entry.duration, Markers(positive=[m.marker]))
    pos = np.unique(nearest_index(starts, lw.starts[lw.labels == 1]))
    pos = pos[np.isin(pos, rows)]
    if not len(pos):
        return np.zeros((0, grid.shape[1] * (2 if scanner.context > 0 else 1)), np.float32)
    x = scanner.embedder.embed_windows(
        np.concatenate([before, m.audio]) if len(before) else m.audio,
        starts[rows] - m.start + len(before) / sr,
        window,
        batch_size=scanner.batch_size,
        encoding=scanner.scan_windows.encoding,
    )
    z = scanner._normalise(np.asarray(x, np.float32), entry.embeddings)
    hop = float(np.median(np.diff(starts))) if len(starts) > 1 else 1.0
    half = round(scanner.context / hop) // 2 + 2  # beyond the context filter's reach
    lo, hi = max(0, int(pos.min()) - half), min(len(starts), int(pos.max()) + half + 1)
    local = grid[lo:hi].copy()
    inside = (rows >= lo) & (rows < hi)
    local[rows[inside] - lo] = z[inside]
    feats: np.ndarray = scanner.window_features(local, starts[lo:hi])[pos - lo]
    return feats.astype(np.float32)

r"""Few-shot validation on the wolf benchmark's training split (no test data).

For each training recording r in turn: train on r's first k markers only (every
training recording of the bench holds five wolf markers, so k = 5 is all of them),
scan the other training recordings and score them against their labelled wolf
events (labels.csv, split "train", IoU >= 0.3 event F1 as ``evaluate`` gives it);
repeat at three seeds. Each seed is a pair: the classifier's seed (its negative
subsample and its trees, ``CalibratedClassifier(random_state=...)``) and the
augmentation's (``MixAugmentation(seed=...)``, when augmentation runs); the first
pair, 42 and 0, is exactly what a user gets. That is 4 recordings x 3 seeds small
fits per setting: a validation mean and spread for "k markers in one recording",
which is what ``benchmarks/wolf.py --few-shot`` measures on the test split.

    .venv/bin/python benchmarks/wolf_fewshot.py wolf-bench defaults all-negatives ...
    .venv/bin/python benchmarks/wolf_fewshot.py wolf-bench defaults --k 3
    .venv/bin/python benchmarks/wolf_fewshot.py horn-bench defaults --target horn --spans --k 2

One JSON line per fit, then one summary line per setting: the mean, standard
deviation, minimum and maximum of the IoU F1 over the fits, the mean lenient
F1 and share of audio flagged, and the mean per seed and per training recording;
for a setting run after ``defaults`` in the same invocation, also its paired
difference to the defaults' same fits (``paired_vs_defaults``: mean, sample
standard deviation, standard error, fits won and lost).
The settings are named in ``SETTINGS`` (``--list`` prints them); each is what it
changes from the library's defaults. A ``fuse`` setting reuses the fits of the
settings it names (each fitted once per process).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from sklearn.base import clone
from sklearn.ensemble import (
    ExtraTreesClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wolf import Call, _force_rule, _run

from audio_embed import threshold
from audio_embed.augment import AUTO_AUGMENTATION
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import PrototypeClassifier, make_base_estimator
from audio_embed.embedders.base import Embedder
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.scanner import defaults
from audio_embed.scanner.augmented import AUTO_MAX_MARKERS, AUTO_MIN_MARKERS
from audio_embed.scanner.defaults import MIN_POINT_MARKERS


def _trees(n: int, leaf: int = 2, **kw: Any) -> ExtraTreesClassifier:
    return ExtraTreesClassifier(
        n_estimators=n, min_samples_leaf=leaf, class_weight="balanced", n_jobs=1, **kw
    )


def _vote(weights: tuple[float, float] = (1.0, 1.0), base: str = "extratrees") -> Any:
    """Soft vote of a built-in tree estimator and the prototype scorer."""
    return VotingClassifier(
        [("trees", make_base_estimator(base)), ("prototype", PrototypeClassifier())],
        voting="soft",
        weights=list(weights),
    )


def _svm(c: float = 1.0) -> Any:
    return make_pipeline(StandardScaler(), SVC(C=c, kernel="rbf", class_weight="balanced"))


def _knn(n: int = 15) -> Any:
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n, weights="distance"))


class _CentreLogMel(Embedder):
    """Benchmark only (``centre-S``): LOGMEL's vector of each window, then the vector
    of its central ``centre`` seconds (the same frames pooled twice; ``kwargs`` go to
    :class:`LogMelEmbedder`). A window no longer than ``centre`` gives its own vector
    twice."""

    name = "LOGMEL"

    def __init__(self, centre: float, **kwargs: Any) -> None:
        self.base = LogMelEmbedder(**kwargs)
        self.centre = float(centre)
        self.dim = 2 * self.base.dim
        self.min_samples = self.base.min_samples
        self.lead_in = self.base.lead_in

    def settings(self) -> dict[str, Any]:  # in config(), so in the cache key too
        return {**self.base.settings(), "centre": self.centre}

    def _part(self, window: float) -> tuple[float, float]:
        """The central part of a window: its offset and length in seconds, on the
        10 ms frame grid (so that an aligned window's part is aligned too)."""
        length = min(self.centre, window)
        step = self.base.hop_length / self.sample_rate
        offset = round((window - length) / 2 / step) * step
        return offset, length

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        frames = self.base.frames(waveforms)
        offset, length = self._part(waveforms.shape[1] / self.sample_rate)
        first = round(offset * self.sample_rate / self.base.hop_length)
        n_fft = self.base.melspec.spectrogram.n_fft
        count = max(1, (round(length * self.sample_rate) - n_fft) // self.base.hop_length + 1)
        centre = frames[:, first : first + count]
        return torch.cat([self.base.statistics(frames), self.base.statistics(centre)], dim=-1)

    def _embed_each_window(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray:
        whole = self.base.embed_windows(
            audio, starts, window, batch_size=batch_size, on_batch=on_batch
        )
        offset, length = self._part(window)
        at = np.asarray(starts, dtype=np.float64) + offset
        centre = self.base.embed_windows(audio, at, length, batch_size=batch_size)
        return np.hstack([whole, centre])


#: name -> the keywords of ``wolf._run`` it changes (``copies``: augmentation copies,
#: None for off; absent: the default's one copy at -4..4 dB, as ``"auto"`` runs it;
#: ``draws``: augmentation draws averaged, absent: the default's).
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # estimators at five markers (the automatic choice there is extra trees of 300:
    # 50 marked positive windows, 30-99 get trees)
    "hgb": {"classifier_kwargs": {"estimator": make_base_estimator("hgb")}},
    "randomforest-300": {
        "classifier_kwargs": {
            "estimator": RandomForestClassifier(
                n_estimators=300, min_samples_leaf=2, class_weight="balanced", n_jobs=1
            )
        }
    },
    "vote-trees-prototype": {"classifier_kwargs": {"estimator": _vote()}},
    "vote-trees-prototype-2:1": {"classifier_kwargs": {"estimator": _vote((2.0, 1.0))}},
    "vote-hgb-prototype": {"classifier_kwargs": {"estimator": _vote(base="hgb")}},
    "svm-rbf": {"classifier_kwargs": {"estimator": _svm()}},
    "svm-rbf-c10": {"classifier_kwargs": {"estimator": _svm(10.0)}},
    "knn-15": {"classifier_kwargs": {"estimator": _knn()}},
    "all-negatives": {"classifier_kwargs": {"max_neg_ratio": None}},
    "extratrees-1000": {"classifier_kwargs": {"estimator": _trees(1000)}},
    "extratrees-1000-leaf1": {"classifier_kwargs": {"estimator": _trees(1000, 1)}},
    "extratrees-1000-leaf5": {"classifier_kwargs": {"estimator": _trees(1000, 5)}},
    "logreg": {"classifier": "logreg"},
    "prototype": {"classifier": "prototype"},
    "sigmoid": {"classifier_kwargs": {"calibration": "sigmoid"}},
    "uncalibrated": {"classifier_kwargs": {"calibration": None}},
    "no-augmentation": {"copies": None},
    "copies-2": {"copies": 2},
    "copies-3": {"copies": 3},
    "gain-10..0": {"augment_gain": (-10.0, 0.0)},
    "gain-6..2": {"augment_gain": (-6.0, 2.0)},
    "copies-3-gain-10..0": {"copies": 3, "augment_gain": (-10.0, 0.0)},
    "draws-1": {"draws": 1},
    "draws-3": {"draws": 3},
    "draws-5": {"draws": 5},
    "copies-3-draws-3": {"copies": 3, "draws": 3},
    "rule-argmax": {"rule": "argmax"},
    "rule-smoothed": {"rule": "smoothed"},
    "no-post-from-points": {"post_from_points": False},
    # point markers sized from their estimated durations with fewer than
    # MIN_POINT_MARKERS (10) of them (README, "A second benchmark: horns")
    "min-point-markers-2": {"min_point_markers": 2},
    "min-point-markers-3": {"min_point_markers": 3},
    "min-point-markers-5": {"min_point_markers": 5},
    # the same, but with fewer than 10 markers "long" needs the lower quartile of the
    # estimates (not their median) to reach two windows (benchmark only)
    "min-point-markers-3-q25": {"min_point_markers": 3, "few_quartile": True},
    "min-point-markers-5-q25": {"min_point_markers": 5, "few_quartile": True},
    # positive windows around a point marker: those whose start lies within
    # [t - window + s, t + s] (the defaults, s = 0: every window holding the point;
    # benchmark only)
    "point-shift-0.3": {"point_shift": 0.3},
    "point-shift-0.5": {"point_shift": 0.5},
    "point-shift-0.2": {"point_shift": 0.2},
    # both: the windows that hold the point and those that start up to S s after it
    "point-widen-0.3": {"point_shift": 0.3, "point_widen": True},
    "draws-3-point-shift-0.3": {"draws": 3, "point_shift": 0.3},
    # no negative windows within this many seconds of a marker (defaults: 8)
    "neg-margin-3": {"neg_margin": 3.0},
    # the classifier's context features: none, or +-8 s (defaults: the model's, 4 s)
    "context-0": {"context": 0.0},
    "context-8": {"context": 8.0},
    # a window is positive when the point lies within it widened by 0.25 s each side
    "tolerance-0.25": {"tolerance": 0.25},
    # no per-recording z-score of the embeddings (defaults: "recording")
    "norm-none": {"normalization": "none"},
    # LOGMEL's floor before session 14 (defaults: 1e-10)
    "floor-1e-4": {"model_kwargs": {"floor": 1e-4}},
    "floor-1e-6": {"model_kwargs": {"floor": 1e-6}},
    "floor-1e-8": {"model_kwargs": {"floor": 1e-8}},
    # per-channel energy normalisation in place of the log (LOGMEL frontend="pcen")
    "pcen": {"model_kwargs": {"frontend": "pcen"}},
    "log+pcen": {"model_kwargs": {"frontend": "log+pcen"}},
    # self-training on the scanned recordings (Scanner.adapt, top=1; opt-in)
    "adapt-1": {"adapt": 1},
    # other new takes from the markers' copies (MixAugmentation fields; defaults: speed
    # 0.95-1.05, no EQ)
    "speed-0.9..1.1": {"augment_options": {"speed": (0.9, 1.1)}},
    "speed-0.85..1.15": {"augment_options": {"speed": (0.85, 1.15)}},
    "eq-3": {"augment_options": {"eq_db": 3.0}},
    "eq-6": {"augment_options": {"eq_db": 6.0}},
    "copies-2-eq-6": {"copies": 2, "augment_options": {"eq_db": 6.0}},
    # the occurrence windows (defaults: LOGMEL's 1 s every 0.1 s), train and scan alike
    "window-0.5-hop-0.05": {"window": 0.5, "hop": 0.05},
    # 0.5 s every 0.1 s holds 5 windows per marker, 25 in all: fewer than the 30 for
    # trees, so the automatic choice is the prototype scorer; "-trees" keeps the trees
    "window-0.5": {"window": 0.5},
    "window-0.5-trees": {
        "window": 0.5,
        "classifier_kwargs": {"estimator": make_base_estimator("extratrees")},
    },
    "window-0.75": {"window": 0.75},
    "window-1.5": {"window": 1.5},
    # LOGMEL's resolution (defaults: 64 mel bands, 50 Hz to 8 kHz)
    # 128 bands over 512-sample frames leave some low bands empty (torchaudio warns);
    # "-fft-1024" halves the FFT bin width (64 ms frames) so that none is
    "n-mels-128": {"model_kwargs": {"n_mels": 128}},
    "n-mels-128-fft-1024": {"model_kwargs": {"n_mels": 128, "n_fft": 1024}},
    "n-mels-32": {"model_kwargs": {"n_mels": 32}},
    "f-max-4000": {"model_kwargs": {"f_max": 4000.0}},
    # several window lengths (issue 13). Late fusion: the named settings are fitted
    # as they are (each its own scanner and cross-validated threshold); their window
    # probabilities are averaged on the first one's grid (windows matched by their
    # centres, linear interpolation) and the threshold is chosen again, by the
    # library's rule, on the folds' averaged held-out probabilities (the same fold
    # plan for every part: it follows the markers and the scanner's seed); the first
    # setting's post-processing (sized from its points) scans and scores
    "fuse-1-0.5": {"fuse": ("defaults", "window-0.5-trees")},
    "fuse-1-0.75-0.5": {"fuse": ("defaults", "window-0.75", "window-0.5-trees")},
    # early fusion: each 1 s window's LOGMEL vector with that of its central 0.5 s
    # appended (the same frames pooled twice: twice the dimensions)
    "centre-0.5": {"centre": 0.5},
}


def _quartile_gate(on: bool) -> None:
    """With ``on``, point markers fewer than ``MIN_POINT_MARKERS`` (10) size only when
    the lower quartile of their first estimates reaches ``LONG_SOUND_WINDOWS`` windows."""
    import numpy as np

    from audio_embed.scanner import core

    original = defaults.point_postprocessing

    def gated(base: Any, estimates: Any, window: float, sizes: Any = None) -> Any:
        valid = [d for d in estimates if d > 0]
        short = len(valid) < MIN_POINT_MARKERS and (
            float(np.quantile(valid, 0.25)) < defaults.LONG_SOUND_WINDOWS * window
            if valid
            else True
        )
        if short:  # as if too few: the scanner's post-processing
            saved, defaults.MIN_POINT_MARKERS = defaults.MIN_POINT_MARKERS, MIN_POINT_MARKERS
            try:
                return original(base, estimates, window, sizes)
            finally:
                defaults.MIN_POINT_MARKERS = saved
        return original(base, estimates, window, sizes)

    core.point_postprocessing = gated if on else original  # type: ignore[attr-defined]


_OVERLAP: Any = None


def _point_shift(shift: float, widen: bool = False) -> None:
    """Label the training windows as if every positive point marker (not a selection)
    lay ``shift`` seconds later: the windows that start up to ``shift`` s after the
    point become positive, those that end within ``shift`` s after it are dropped
    (with ``widen``, kept positive: the positives of both)."""
    import attrs

    from audio_embed.windows import TargetedWindows

    global _OVERLAP
    if _OVERLAP is None:
        _OVERLAP = TargetedWindows._overlap

    def shifted(self: Any, duration: float, markers: Any) -> Any:
        if shift:
            spanned = {t for t in markers.positive if markers.span_of(t) is not None}
            moved = tuple(t if t in spanned else min(t + shift, duration) for t in markers.positive)
            if widen:
                import numpy as np

                from audio_embed.windows import LabelledWindows

                at = _OVERLAP(self, duration, markers)
                later = _OVERLAP(self, duration, attrs.evolve(markers, positive=moved))
                # positive in either; negative only where negative in both
                one = dict(zip(np.round(at.starts, 6), at.labels, strict=True))
                two = dict(zip(np.round(later.starts, 6), later.labels, strict=True))
                labels = {s: 1 for s in {*one, *two} if one.get(s) == 1 or two.get(s) == 1}
                labels |= {s: 0 for s in one if one[s] == 0 and two.get(s) == 0}
                starts = np.array(sorted(labels), dtype=np.float64)
                return LabelledWindows(
                    starts=starts, labels=np.array([labels[s] for s in starts], dtype=np.int64)
                )
            markers = attrs.evolve(markers, positive=moved)
        return _OVERLAP(self, duration, markers)

    TargetedWindows._overlap = shifted  # type: ignore[method-assign]


def _seeded(name: str, k: int, classifier_seed: int, augment_seed: int) -> dict[str, Any]:
    """``wolf._run``'s keywords for setting ``name`` with ``k`` markers at one seed pair."""
    kw = dict(SETTINGS[name])
    kw.pop("rule", None)  # applied by _force_rule
    kw.pop("min_point_markers", None)  # applied in main
    kw.pop("few_quartile", None)
    kw.pop("point_shift", None)  # applied in main
    kw.pop("point_widen", None)
    draws = kw.pop("draws", AUTO_AUGMENTATION.draws)
    if "copies" in kw or AUTO_MIN_MARKERS <= k <= AUTO_MAX_MARKERS:
        copies = kw.pop("copies", AUTO_AUGMENTATION.copies)
        kw["augment"] = 0 if copies is None else copies
        kw["augment_seed"] = augment_seed
        kw["augment_draws"] = draws
    # else "auto", which does not run for this k
    kw["classifier_seed"] = classifier_seed
    if "centre" in kw:  # LOGMEL with its central part appended (early fusion)
        kw["embedder"] = _CentreLogMel(kw.pop("centre"), **kw.pop("model_kwargs", {}))
    est = kw.get("classifier_kwargs", {}).get("estimator")
    if est is not None:  # the trees' own seed follows the classifier's
        est = clone(est)
        seeds = {k: classifier_seed for k in est.get_params() if k.endswith("random_state")}
        est.set_params(**seeds)
        kw["classifier_kwargs"] = {**kw["classifier_kwargs"], "estimator": est}
    return kw


#: The fits of this process: (setting, k, classifier seed, augmentation seed, training
#: recording) -> ``wolf._run``'s output, results and events, and the threshold's
#: cross-validation call (None when fit made none, or more than one); a late fusion
#: reuses its parts' fits, and the paired differences use the defaults'.
Fit = tuple[dict[str, Any], dict[str, Any], dict[str, list[tuple[float, float]]], Call | None]
_FITS: dict[tuple[str, int, int, int, str], Fit] = {}

_OUT_KEYS = (
    "iou_f1 iou_precision iou_recall collar_f1 lenient_f1 precision recall "
    "flagged_fraction n_detections mean_detection_seconds mean_event_seconds "
    "window_auc window_ap"
).split()


def _patch(name: str, seen: list[Call]) -> None:
    """The library patches setting ``name`` runs under (module-level: set before each fit)."""
    setting = SETTINGS[name]
    _force_rule(setting.get("rule"), seen)  # the setting's rule, or the library's
    defaults.MIN_POINT_MARKERS = setting.get("min_point_markers", MIN_POINT_MARKERS)
    _quartile_gate(setting.get("few_quartile", False))
    _point_shift(setting.get("point_shift", 0.0), setting.get("point_widen", False))


def _fit(name: str, args: argparse.Namespace, cache: Any, f: str, cseed: int, aseed: int) -> Fit:
    """Setting ``name`` trained on recording ``f``'s first ``args.k`` markers, scored on
    the other training recordings (memoised in ``_FITS``)."""
    key = (name, args.k, cseed, aseed, f)
    if key not in _FITS:
        if "fuse" in SETTINGS[name]:
            parts = [_fit(p, args, cache, f, cseed, aseed) for p in SETTINGS[name]["fuse"]]
            _FITS[key] = _fused(parts)
        else:
            seen: list[Call] = []
            _patch(name, seen)
            out, results, events = _run(
                args.bench,
                "LOGMEL",
                cache,
                train_on=f,
                first_k=args.k,
                target=args.target,
                spans=args.spans,
                **_seeded(name, args.k, cseed, aseed),
            )
            _FITS[key] = (out, results, events, seen[0] if len(seen) == 1 else None)
    return _FITS[key]


def _on_grid(starts: np.ndarray, window: float, other: Any) -> np.ndarray:
    """``other``'s probabilities (a ScanResult or FoldScores) at the centres of the
    windows ``starts`` of length ``window`` (linear interpolation between its own
    windows' centres; the nearest one past either end)."""
    centres = np.asarray(other.starts) + other.window / 2
    return np.interp(starts + window / 2, centres, np.asarray(other.probabilities))


def _fused(parts: list[Fit]) -> Fit:
    """Late fusion of several fits of the same markers (``fuse`` settings): the mean of
    their window probabilities on the first one's windows, a threshold chosen by the
    library's rule on the folds' averaged held-out probabilities (the mean of the
    parts' thresholds where that falls back, or where a part made no such choice),
    and the first part's post-processing."""
    first_out, first_results, events, _ = parts[0]
    calls = [p[3] for p in parts]
    choice = None
    if all(c is not None for c in calls):
        fold_sets = [c[0] for c in calls if c is not None]
        held = [[fold.references for fold in fs] for fs in fold_sets]
        if any(h != held[0] for h in held):
            raise SystemExit("the parts of a fused setting did not hold out the same markers")
        folds = [
            attrs.evolve(
                base,
                probabilities=np.mean(
                    [_on_grid(base.starts, base.window, fs[j]) for fs in fold_sets], axis=0
                ),
            )
            for j, base in enumerate(fold_sets[0])
        ]
        _, post, a, kw = calls[0]  # type: ignore[misc]
        choice = threshold.choose_threshold(folds, post, *a, **kw)
        fused_call: Call | None = (folds, post, a, kw)
    else:
        fused_call = None
    if choice is None or choice.method == "fallback":
        value = round(float(np.mean([p[0]["threshold"] for p in parts])), 4)
        cv_f1 = None
    else:
        value, cv_f1 = round(choice.value, 4), choice.cv_f1
    results = {}
    for path, base in first_results.items():
        probs = [_on_grid(base.starts, base.window, p[1][path]) for p in parts]
        results[path] = attrs.evolve(base, probabilities=np.mean(probs, axis=0), threshold=value)
    d = evaluate(results, events).as_dict()
    out = {k: round(float(d[k]), 4) for k in _OUT_KEYS}
    out.update(
        threshold=value,
        threshold_cv_f1=cv_f1,
        threshold_method="fused folds" if cv_f1 is not None else "mean of the parts'",
        parts_threshold=[p[0]["threshold"] for p in parts],
        estimator=[p[0]["estimator"] for p in parts],
        fit_s=round(sum(p[0]["fit_s"] for p in parts), 1),
        **{k: first_out[k] for k in ("post_source", "post_duration", "augment_draws")},
    )
    return out, results, events, fused_call


def _paired(cells: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """IoU F1 of ``cells`` minus that of the same fits of ``base`` (same recording and
    seeds): the mean, its sample standard deviation and standard error (sd / sqrt(n)),
    and the fits won and lost."""
    by = {(c["train_on"], c["classifier_seed"], c["augment_seed"]): c["iou_f1"] for c in base}
    d = [c["iou_f1"] - by[(c["train_on"], c["classifier_seed"], c["augment_seed"])] for c in cells]
    sd = statistics.stdev(d) if len(d) > 1 else 0.0
    return {
        "delta_mean": round(statistics.mean(d), 4),
        "delta_sd": round(sd, 4),
        "delta_se": round(sd / len(d) ** 0.5, 4),
        "won": sum(x > 0 for x in d),
        "lost": sum(x < 0 for x in d),
    }


def _rules_offline(
    names: list[str], seen: list[Call], results: Any, events: Any
) -> dict[str, float]:
    """IoU F1 on the scanned recordings at the threshold each rule of
    ``benchmarks/threshold_rules.py`` picks from this fit's held-out scores, and at
    the best threshold in hindsight (``hindsight``: an upper bound, not a rule)."""
    import numpy as np
    from threshold_rules import RULES

    folds, post, _, _ = seen[-1]
    pooled = np.concatenate([f.probabilities for f in folds])
    grid = np.unique(
        np.concatenate(
            [threshold.candidate_thresholds(pooled), np.round(np.arange(0.01, 0.995, 0.01), 4)]
        )
    )
    curve = threshold.f1_curve(folds, post, grid)

    def f1(t: float) -> float:
        return round(float(evaluate(results, events, threshold=t, unmatched="ignore").iou_f1), 4)

    out = {}
    for name in names:
        if name in threshold.RULES:
            t = threshold.choose_threshold(folds, post, "", len(folds), rule=name).value
        else:
            t = float(RULES[name](curve))
        out[name] = f1(t)
    out["hindsight"] = max(f1(float(t)) for t in np.round(np.arange(0.02, 0.97, 0.02), 2))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("settings", nargs="*", default=["defaults"], help="names in SETTINGS")
    ap.add_argument("--k", type=int, default=5, help="markers per training recording")
    ap.add_argument("--seeds", default="42:0,1:1,2:2", help="CLASSIFIER:AUGMENTATION seed pairs")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--target", default="wolf", help="the labels.csv label to detect")
    ap.add_argument(
        "--spans",
        action="store_true",
        help="mark each training event as a selection (onset to offset), as wolf.py --spans",
    )
    ap.add_argument("--list", action="store_true", help="print the settings and exit")
    ap.add_argument(
        "--rules",
        default="",
        help="also score these threshold rules offline on each fit's held-out scores "
        "(names of benchmarks/threshold_rules.py, e.g. smoothed,argmax,plateau-se-top)",
    )
    args = ap.parse_args(argv)
    if args.list:
        for name, kw in SETTINGS.items():
            print(name, kw)
        return 0
    unknown = [n for n in args.settings if n not in SETTINGS]
    if unknown:
        ap.error(f"unknown settings {unknown}; --list prints them")
    logging.basicConfig(level=logging.ERROR)
    cache = EmbeddingCache(args.cache)
    rules = [r for r in args.rules.split(",") if r]
    seeds = [tuple(int(v) for v in pair.split(":")) for pair in args.seeds.split(",")]
    files = sorted({e.file for e in read_labels(args.bench / "labels.csv") if e.split == "train"})
    done: dict[str, list[dict[str, Any]]] = {}
    for name in args.settings:
        cells: list[dict[str, Any]] = []
        for cseed, aseed in seeds:
            for f in files:
                out, results, events, call = _fit(name, args, cache, f, cseed, aseed)
                cell = {
                    "setting": name,
                    "k": args.k,
                    "train_on": f,
                    "classifier_seed": cseed,
                    "augment_seed": aseed,
                    **{
                        key: out[key]
                        for key in (
                            "iou_f1 lenient_f1 flagged_fraction window_auc threshold "
                            "threshold_cv_f1 mean_detection_seconds estimator fit_s "
                            "post_source post_duration augment_draws"
                        ).split()
                    },
                }
                if rules:
                    if call is None:
                        raise SystemExit(f"{name}: no threshold cross-validation to rescore")
                    cell["rules"] = _rules_offline(rules, [call], results, events)
                cells.append(cell)
                print(json.dumps(cell), flush=True)
        done[name] = cells
        f1 = [c["iou_f1"] for c in cells]
        row = {
            "setting": name,
            "k": args.k,
            "fits": len(cells),
            "iou_f1_mean": round(statistics.mean(f1), 4),
            "iou_f1_sd": round(statistics.pstdev(f1), 4),
            "iou_f1_min": min(f1),
            "iou_f1_max": max(f1),
            "lenient_f1_mean": round(statistics.mean(c["lenient_f1"] for c in cells), 4),
            "flagged_mean": round(statistics.mean(c["flagged_fraction"] for c in cells), 4),
            "window_auc_mean": round(statistics.mean(c["window_auc"] for c in cells), 4),
            "fit_s_mean": round(statistics.mean(c["fit_s"] for c in cells), 1),
            "by_seed": [
                round(statistics.mean(c["iou_f1"] for c in cells if c["classifier_seed"] == s), 4)
                for s, _ in seeds
            ],
            "by_recording": [
                round(statistics.mean(c["iou_f1"] for c in cells if c["train_on"] == f), 4)
                for f in files
            ],
        }
        if name != "defaults" and "defaults" in done:
            row["paired_vs_defaults"] = _paired(cells, done["defaults"])
        if rules:
            row["rules_iou_f1_mean"] = {
                r: round(statistics.mean(c["rules"][r] for c in cells), 4)
                for r in [*rules, "hindsight"]
            }
        print(json.dumps({"summary": True, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

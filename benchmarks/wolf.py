r"""Detection quality on the real-sound wolf benchmark from ../shared.

Build it once:
    .venv/bin/python ../shared/soundscapes.py --spec ../shared/soundscape-wolf.json \
        --out wolf-bench --video 2
Then:
    .venv/bin/python benchmarks/wolf.py wolf-bench --model LOGMEL [--variants]
    .venv/bin/python benchmarks/wolf.py wolf-bench --model HUBERT_BASE --random-weights \
        --encoding shared

Real pretrained weights (README, "Real pretrained weights"), one row per command:
    .venv/bin/python benchmarks/wolf.py wolf-bench --model WHISPER_TINY_EN \
        --window 4 --hop 1 --layers 2 --classifier logreg --encoding shared
    .venv/bin/python benchmarks/wolf.py wolf-bench --model BIRDNET_V24 --window 3 --hop 0.5

``--layers``: ``last`` (the model's default embedding), ``ml`` (the ``_ML``
quartile blocks) or 1-based block numbers (``2`` or ``2,3``: those blocks'
mean-pooled outputs, concatenated). ``--set KEY=VALUE`` passes a keyword to the
embedder (``--set short_input=cut`` for Whisper, ``--set chunk_hop=0.5`` for
BirdNET).

Settings not given (window, hop, classifier, context, post-processing) are what a
user gets: the model's scan defaults (``Embedder.scan_defaults()``), else the
library's; ``--layers last`` is the model's default embedding (block 2 for
WHISPER_TINY_EN; ``--layers 4`` is its last block).

``--grid 8/1,4/1,3/1 --poolings mean,max --classifiers hgb,logreg`` runs every
combination in one process (also ``--layer-sets '2;4;ml'``, ``--contexts 4,0``,
``--posts '[{}, {"extent": "intersection"}]'``). The frames of real encoders (all
blocks of each shared segment) are kept under ``CACHE/frames``, so later runs
and other settings reuse them. ``--plus LOGMEL`` appends LOGMEL's vectors to
the model's (benchmark only).

``--loro`` chooses settings without the test split: for each training recording,
train on the other three (threshold chosen by their own cross-validation), scan the
held-out one and score it against its labelled events (labels.csv, split "train");
one row pooled over the four (``benchmarks/wolf_fewshot.py`` does the few-shot
counterpart: train on one training recording's markers, score the other three).
``--loco`` leaves each of the six training wolf clips out instead
(``birdnet_tune.loco``: the held-out clip's markers become soft, only its events
are scored; the test split mixes other clips, which ``--loro`` does not simulate).
``--classifier-seed`` seeds the classifier's negative
subsampling (and its trees), to see how much a row moves with the seed alone.

``--target LABEL`` runs any bench built by ``soundscapes.py`` (the label its spec
names as target; default ``wolf``), e.g. the horn bench of
``benchmarks/soundscape-horn.json``.

``--test-dirs DIR[,DIR]`` also scans, with the same trained scanner, the test
recordings of the same names found in each ``DIR/test`` (any suffix: the bench's
``.wav`` encoded as MP3, say) and scores them against the bench's labels; each
row of ``test_dirs`` names the files found, the bench's own scores on those same
files, theirs, each recording's band edge and the warnings of the scan (README,
"Errors and limits"). ``--augment-lowpass LO,HI`` sets ``MixAugmentation.lowpass_hz``
on the augmentation that runs (with ``--augment auto``: ``AUTO_MANY_AUGMENTATION``,
what the default runs for the bench's twenty markers).

``--random-weights`` builds the real-size architecture with random weights
(benchmarks/models.py) instead of loading the checkpoint: its detection
quality means nothing on its own, but comparing ``--encoding shared`` with
``--encoding per_window`` on it shows what shared encoding changes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from audio_embed import create_embedder
from audio_embed.augment import AUTO_AUGMENTATION, AUTO_MANY_AUGMENTATION
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.embedders.base import Embedder
from audio_embed.errors import TrainingDataError
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.formats import read_markers
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import Markers, SlidingWindows, TargetedWindows

VARIANTS: dict[str, dict[str, Any]] = {
    "original": dict(labelling="targeted", normalization="targeted"),
    "original-margin30": dict(labelling="targeted", normalization="targeted", neg_margin=30.0),
    "targeted-margin30+recording-norm": dict(labelling="targeted", neg_margin=30.0),
    "default": dict(),
    "overlap+targeted-norm": dict(labelling="overlap", normalization="targeted"),
    "overlap+recording-norm": dict(labelling="overlap", normalization="recording"),
    "logreg": dict(classifier="logreg"),
    "hgb": dict(classifier="hgb"),
    "no-context": dict(context=0.0),
    "8s-windows": dict(window=8.0, hop=1.0),
}


def _markers(bench: Path, first_k: int | None) -> dict[str, Markers]:
    """The bench's markers; with ``first_k``, only the first k (by file, then time)."""
    markers = read_markers(bench / "markers.csv")
    if first_k is None:
        return markers
    points = sorted((f, t) for f, m in markers.items() for t in m.positive)[:first_k]
    out: dict[str, list[float]] = defaultdict(list)
    for f, t in points:
        out[f].append(t)
    return {f: Markers(positive=ts) for f, ts in out.items()}


def _events(
    bench: Path, split: str, only: str | None = None, target: str = "wolf"
) -> dict[str, list[tuple[float, float]]]:
    """Every ``split`` file's ``target`` events keyed by path (files without any get [])."""
    events: dict[str, list[tuple[float, float]]] = {}
    for ev in read_labels(bench / "labels.csv"):
        if ev.split == split and (only is None or ev.file == only):
            key = str(bench / ev.file)
            events.setdefault(key, [])
            if ev.label == target:
                events[key].append((ev.onset, ev.offset))
    return events


def run(bench: Path, model: str, cache: EmbeddingCache, **settings: Any) -> dict[str, Any]:
    """Train, scan the test split (or the ``holdout`` training file) and score it
    (``settings``: the keywords of :func:`_run`)."""
    return _run(bench, model, cache, **settings)[0]


def _random_weights(model: str) -> Any:
    from models import MODELS

    return MODELS[model]()


def _run(
    bench: Path,
    model: str,
    cache: EmbeddingCache,
    random_weights: bool = False,
    encoding: str = "shared",
    labelling: str = "overlap",
    normalization: str = "recording",
    classifier: str | None = None,
    tolerance: float | None = None,
    neg_margin: float | None = None,
    threshold: float | str = "auto",
    window: float | None = None,
    hop: float | None = None,
    context: float | None = None,
    first_k: int | None = None,
    seed: int = 0,
    postprocessing: dict[str, float] | None = None,
    layers: str = "last",
    model_kwargs: dict[str, Any] | None = None,
    embedder: Any = None,
    classifier_seed: int = 42,
    holdout: str | None = None,
    adapt: int = 0,
    augment: int | str = "auto",
    augment_seed: int = 0,
    augment_gain: tuple[float, float] | None = None,
    augment_draws: int = 1,
    augment_options: dict[str, Any] | None = None,
    train_on: str | None = None,
    classifier_kwargs: dict[str, Any] | None = None,
    target: str = "wolf",
    spans: bool = False,
    post_from_spans: bool = True,
    post_from_points: bool = True,
    scan_gains: tuple[float, ...] = (),
    breakdown: bool = False,
    test_dirs: tuple[Path, ...] = (),
    augment_lowpass: tuple[float, float] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[tuple[float, float]]]]:
    """Train, scan and score; ``holdout``: train on the other training recordings and
    score that one; ``train_on``: train on that training recording's markers only (the
    first ``first_k`` of them) and score the other training recordings (the few-shot
    validation of ``benchmarks/wolf_fewshot.py``); ``classifier_kwargs`` go to
    :class:`CalibratedClassifier` and win over the defaults here; ``scan_gains``: also
    scan the scored recordings rescaled by each gain in dB (float, no quantisation)
    and score them (``out["scan_gains"]``); ``breakdown``: where the detections lie and
    which takes are found (:func:`_breakdown`)."""
    given = embedder is not None
    if not given:
        embedder = (
            _random_weights(model)
            if random_weights
            else create_embedder(model, **(model_kwargs or {}))
        )
    if layers != "last" and not given:
        from audio_embed.embedders.multilayer import MultiLayerEmbedder

        picked: Any = "quartiles" if layers == "ml" else [int(k) for k in layers.split(",")]
        embedder = MultiLayerEmbedder(embedder, layers=picked)
    if tolerance is None:
        tolerance = 12.0 if labelling == "targeted" else 0.0
    if neg_margin is None:
        neg_margin = 120.0 if labelling == "targeted" else TargetedWindows().neg_margin
    # What is not given is what a user gets: the model's scan defaults, else the library's.
    own, sw = embedder.scan_defaults(), SlidingWindows()
    window = window if window is not None else own.window or sw.window
    hop = hop if hop is not None else own.hop or sw.hop
    given = classifier is not None  # `train --classifier X`: the model's own settings unused
    classifier = classifier or own.classifier or "auto"
    extra: dict[str, Any] = {}
    if context is not None:
        extra["context"] = context
    if augment != "auto":  # what `train --augment N` sets; 0: off ("auto": the default)
        extra["augmentation"] = (
            attrs.evolve(
                AUTO_AUGMENTATION,
                copies=int(augment),
                seed=augment_seed,
                gain_db=AUTO_AUGMENTATION.gain_db if augment_gain is None else augment_gain,
                draws=augment_draws,
                **(augment_options or {}),
            )
            if augment
            else None
        )
    if augment_lowpass is not None:  # "auto" with the bench's 20 markers: AUTO_MANY
        base = extra.get("augmentation", AUTO_MANY_AUGMENTATION)
        extra["augmentation"] = attrs.evolve(base, lowpass_hz=augment_lowpass)
    scanner = Scanner(
        embedder,
        classifier=CalibratedClassifier(
            **{
                "estimator": None if classifier == "auto" else make_base_estimator(classifier),  # type: ignore[arg-type]
                "random_state": classifier_seed,
                # the model's, as a user's (`train` without --classifier)
                **({"max_neg_ratio": None} if own.all_negatives and not given else {}),
                **(classifier_kwargs or {}),
            }
        ),
        scan_windows=SlidingWindows(window, hop, encoding),  # type: ignore[arg-type]
        train_windows=TargetedWindows(
            window, tolerance=tolerance, neg_margin=neg_margin, labelling=labelling, hop=hop
        ),  # type: ignore[arg-type]
        normalization=normalization,  # type: ignore[arg-type]
        cache=cache,
        threshold=threshold,  # type: ignore[arg-type]
        seed=seed,
        postprocessing_from_spans=post_from_spans,
        postprocessing_from_points=post_from_points,
        **extra,
    )
    if postprocessing is not None:  # changes to the scanner's own (the model's or the library's)
        scanner.postprocessing = attrs.evolve(scanner.postprocessing, **postprocessing)
    markers = _markers(bench, None if train_on else first_k)
    if train_on is not None:
        mine = read_markers(bench / "markers.csv")[str(bench / train_on)]
        markers = {str(bench / train_on): Markers(positive=sorted(mine.positive)[:first_k])}
    if spans:  # each marked event as a selection (onset, offset) from labels.csv
        marked = _events(bench, "train", target=target)
        markers = {
            f: Markers(spans=[e for e in marked[f] if e[0] in set(m.positive)])
            for f, m in markers.items()
        }
    if holdout is not None:
        markers = {f: m for f, m in markers.items() if Path(f) != bench / holdout}
    t0 = time.perf_counter()
    scanner.fit([Recording(f, m) for f, m in markers.items()])
    fit_s = time.perf_counter() - t0
    if train_on is not None:
        events = {
            f: ev
            for f, ev in _events(bench, "train", target=target).items()
            if f != str(bench / train_on)
        }
    elif holdout is None:
        events = _events(bench, "test", target=target)
    else:
        events = _events(bench, "train", only=holdout, target=target)
    if adapt:  # self-training on the recordings to scan (Scanner.adapt)
        scanner = scanner.adapt(sorted(events), top=adapt)
        fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = {}
    for path, result in scanner.scan_many(sorted(events)):
        if isinstance(result, Exception):
            raise result
        results[path] = result
    scan_s = time.perf_counter() - t0
    ev = evaluate(results, events)
    summary: dict[str, Any] = scanner.training_summary or {}
    keys = (
        "iou_f1 iou_precision iou_recall collar_f1 lenient_f1 precision recall "
        "flagged_fraction n_detections mean_detection_seconds mean_event_seconds "
        "window_auc window_ap"
    ).split()
    d = ev.as_dict()
    sized: dict[str, Any] = summary.get("postprocessing") or {}
    out: dict[str, Any] = {k: round(float(d[k]), 4) for k in keys}
    spread = max(float(np.ptp(r.probabilities)) for r in results.values())
    out.update(
        window=window,
        hop=hop,
        threshold=round(scanner.scan_threshold, 4),
        threshold_cv_f1=summary["threshold"]["cv_f1"],
        threshold_method=summary["threshold"]["method"],
        estimator=summary.get("classifier_estimator_choice"),
        calibration=summary.get("classifier_calibration_note"),
        score_spread=round(spread, 4),
        fit_s=round(fit_s, 1),
        scan_s=round(scan_s, 1),
        train=summary["windows_positive"],
        train_neg=summary["windows_negative"],
        classifier=classifier,
        context=scanner.context,
        extent=scanner.postprocessing.extent,
        post=sized.get("postprocessing"),
        post_source=sized.get("source"),
        post_duration=sized.get("median_duration") or sized.get("estimated_duration"),
    )
    if first_k is not None:
        out["first_k"] = first_k
    if adapt:
        out["adaptation"] = summary["adaptation"]
    info = summary.get("augmentation") or {}
    out["augmented_windows"] = info.get("windows_added", 0)
    out["augment"], out["augment_reason"] = augment, info.get("reason")
    if augment not in ("auto", 0):
        out["augment_seed"] = augment_seed
        out["augment_gain"] = (info.get("settings") or {}).get("gain_db")
    out["augment_draws"] = (info.get("settings") or {}).get("draws", 0)
    if scan_gains:
        out["scan_gains"] = _scan_gains(scanner, events, scan_gains)
    if breakdown:
        out.update(_breakdown(bench, results, events, target))
    if test_dirs:
        out["training_band_edge_hz"] = scanner.training_band_edge
        out["test_dirs"] = _test_dirs(scanner, bench, results, events, test_dirs)
    return out, results, events


def _test_dirs(
    scanner: Scanner,
    bench: Path,
    results: dict[str, Any],
    events: dict[str, list[tuple[float, float]]],
    dirs: tuple[Path, ...],
) -> dict[str, dict[str, Any]]:
    """Scan the recordings of each of ``dirs`` named as the bench's scored ones (any
    suffix) and score them against the bench's labels, beside the bench's own scores
    on the same files; with each recording's band edge and scan warnings."""
    keys = "iou_f1 lenient_f1 iou_precision iou_recall flagged_fraction n_detections"

    def scores(res: dict[str, Any], evs: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
        d = evaluate(res, evs).as_dict()
        return {k: round(float(d[k]), 4) for k in keys.split()}

    rows: dict[str, dict[str, Any]] = {}
    for d in (bench, *dirs):
        found: dict[str, str] = {}
        for path in events:
            rel = Path(path).relative_to(bench)
            same = sorted((d / rel.parent).glob(rel.stem + ".*")) if d != bench else [Path(path)]
            if same:
                found[path] = str(same[0])
        theirs, edges, warnings = {}, {}, []
        for path, other in found.items():
            entry = scanner.sliding_embeddings(other)
            theirs[path] = scanner.score_embeddings(entry, source=other)
            edges[Path(other).name] = entry.band_edge
            warnings += theirs[path].warnings
        evs = {p: events[p] for p in found}
        rows[str(d)] = {
            "files": len(found),
            "bench_same_files": scores({p: results[p] for p in found}, evs),
            "scores": scores(theirs, evs),
            "band_edges_hz": edges,
            "warnings": warnings,
        }
    return rows


def _breakdown(
    bench: Path,
    results: dict[str, Any],
    events: dict[str, list[tuple[float, float]]],
    target: str,
) -> dict[str, Any]:
    """``by_take``: per take of the target (its labelled length, to 0.01 s: each clip
    of the bench has its own), ``found/total`` events overlapped by a detection at
    IoU >= 0.3; ``detections_on``: the detections by the labelled sound they overlap
    most (the target, another labelled sound, or unlabelled background: the bed)."""
    labelled: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for ev in read_labels(bench / "labels.csv"):
        labelled[str(bench / ev.file)].append((ev.onset, ev.offset, ev.label))
    takes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    on = {"target": 0, "other sound": 0, "background": 0}
    for path, evs in events.items():
        detections = [(d.start, d.end) for d in results[path].detections()]
        for a, b in evs:
            take = takes[f"{b - a:.2f}"]
            take[1] += 1
            take[0] += any(
                min(b, e) - max(a, s) >= 0.3 * (max(b, e) - min(a, s)) for s, e in detections
            )
        for s, e in detections:
            overlaps = [(min(e, b) - max(s, a), lab) for a, b, lab in labelled[path]]
            most = max((o for o in overlaps if o[0] > 0), default=None)
            key = "background" if most is None else "target" if most[1] == target else "other sound"
            on[key] += 1
    return {
        "by_take": {k: f"{takes[k][0]}/{takes[k][1]}" for k in sorted(takes, key=float)},
        "detections_on": on,
    }


def _scan_gains(
    scanner: Scanner, events: dict[str, list[tuple[float, float]]], gains: tuple[float, ...]
) -> dict[str, dict[str, float]]:
    """The recordings of ``events`` scanned rescaled by each gain (dB) and scored."""
    from audio_embed import load_audio

    audio = {path: load_audio(path) for path in sorted(events)}
    rows: dict[str, dict[str, float]] = {}
    for gain in gains:
        scale = np.float32(10 ** (gain / 20))
        scaled = {p: scanner.scan(a * scale, sample_rate=16000) for p, a in audio.items()}
        d = evaluate(scaled, events).as_dict()
        keys = "iou_precision iou_recall iou_f1 lenient_f1 flagged_fraction window_auc"
        rows[f"{gain:g}"] = {k: round(float(d[k]), 4) for k in keys.split()}
    return rows


def loro_results(
    bench: Path, model: str, cache: EmbeddingCache, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]], list[float]]:
    """Leave one training recording out: train on the others and scan the held-out one;
    every training recording's scan result (at its fold's threshold), its labelled
    events, and the folds' thresholds."""
    files = sorted({ev.file for ev in read_labels(bench / "labels.csv") if ev.split == "train"})
    results: dict[str, Any] = {}
    events: dict[str, list[tuple[float, float]]] = {}
    thresholds = []
    for f in files:
        out, res, ev = _run(bench, model, cache, holdout=f, **kwargs)
        results.update(res)
        events.update(ev)
        thresholds.append(out["threshold"])
    return results, events, thresholds


def loro(bench: Path, model: str, cache: EmbeddingCache, **kwargs: Any) -> dict[str, Any]:
    """Leave one training recording out: train on the others, score the held-out one
    against its labels; metrics pooled over the training recordings."""
    results, events, thresholds = loro_results(bench, model, cache, **kwargs)
    d = evaluate(results, events).as_dict()
    keys = "iou_f1 iou_precision iou_recall collar_f1 lenient_f1 flagged_fraction window_auc"
    row: dict[str, Any] = {k: round(float(d[k]), 4) for k in keys.split()}
    row.update(split="train, leave one recording out", thresholds=thresholds)
    return row


def _memoise_frames(embedder: Any, store: Path | None = None) -> None:
    """Benchmark only: remember ``encode_frames`` results per input row, so a grid of
    window sizes, hops, poolings and blocks over the same files encodes each shared
    segment once (shared segments do not depend on the window when the windows cover
    the file). A layered model encodes all its blocks once and each request takes its
    slice. With ``store``, the frames also go to disk (``.npy`` per segment), so later
    processes reuse them."""
    import hashlib

    import torch

    memo: dict[str, list[Any]] = {}
    encode = embedder.encode_frames
    depth = int(embedder.num_layers or 0)
    every = tuple(range(1, depth + 1)) if depth else None
    config = {k: v for k, v in embedder.config().items() if k != "frame_pooling"}
    # every block is kept, so the block the embedding pools does not change the frames
    config["settings"] = {k: v for k, v in config["settings"].items() if k != "layer"}
    tag = json.dumps(config, sort_keys=True, default=str)
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)

    def rows(waveforms: Any) -> list[list[Any]]:
        keys = [
            hashlib.blake2b(tag.encode() + row.tobytes()).hexdigest()[:32]
            for row in waveforms.cpu().numpy()
        ]
        missing = []
        for i, key in enumerate(keys):
            if key in memo:
                continue
            path = None if store is None else store / f"{key}.npz"
            if path is not None and path.is_file():
                with np.load(path) as z:
                    memo[key] = [torch.from_numpy(z[f"s{k}"]) for k in range(len(z.files))]
            else:
                missing.append(i)
        if missing:
            states = encode(waveforms[missing], every)
            for j, i in enumerate(missing):
                memo[keys[i]] = [s[j].detach().float().cpu() for s in states]
                if store is not None:
                    arrays = {f"s{k}": s.numpy() for k, s in enumerate(memo[keys[i]])}
                    tmp = store / f"{keys[i]}.tmp.npz"
                    np.savez(tmp, **arrays)
                    tmp.replace(store / f"{keys[i]}.npz")
        return [memo[key] for key in keys]

    def cached(waveforms: Any, layers: Any) -> Any:
        got = rows(waveforms)
        if every is None:
            picked = list(range(len(got[0])))
        else:
            own = getattr(embedder, "layer", None) or depth
            picked = [k - 1 for k in ((own,) if layers is None else layers)]
        return [torch.stack([r[k] for r in got]).to(waveforms.device) for k in picked]

    embedder.encode_frames = cached


#: What ``_force_rule`` records of each threshold choice: the folds, the post-processing,
#: and ``choose_threshold``'s other positional and keyword arguments.
Call = tuple[list[Any], Any, tuple[Any, ...], dict[str, Any]]


def _force_rule(rule: str | None, seen: list[Call] | None = None) -> None:
    """Make ``Scanner.fit``'s threshold cross-validation use ``rule`` whatever its folds
    (None: the library's choice); with ``seen``, each call is appended to it
    (``wolf_fewshot.py``, ``threshold_rules.py`` and ``span_post.py`` score other rules
    or post-processing on the same folds)."""
    import audio_embed.scanner.crossval as crossval
    from audio_embed.threshold import choose_threshold

    def forced(folds: Any, post: Any, *args: Any, **kwargs: Any) -> Any:
        if seen is not None:
            seen.append((list(folds), post, args, dict(kwargs)))
        if rule is not None:
            kwargs["rule"] = rule
        return choose_threshold(folds, post, *args, **kwargs)

    crossval.choose_threshold = forced  # type: ignore[assignment]


def _parse_setting(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--set needs KEY=VALUE. Got {item!r}.")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--model", default="LOGMEL")
    ap.add_argument(
        "--target", default="wolf", help="the labels.csv label to detect (default: wolf)"
    )
    ap.add_argument("--encoding", default="shared", choices=["per_window", "shared"])
    ap.add_argument("--random-weights", action="store_true", help="real-size model, random weights")
    ap.add_argument("--variants", action="store_true", help="run every variant")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--window", type=float, help="window seconds (default: the library's)")
    ap.add_argument("--hop", type=float, help="hop seconds (default: the library's)")
    ap.add_argument("--context", type=float, help="Scanner context seconds (default: library)")
    ap.add_argument("--threshold", default="auto", help="auto (default) or a number")
    ap.add_argument(
        "--post",
        type=json.loads,
        help='changes to the default Postprocessing, JSON: {"smooth":0.5}',
    )
    ap.add_argument(
        "--few-shot",
        action="store_true",
        help="train on the first k training events only (k = 1, 2, 3, 5), test on all",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--adapt", type=int, default=0, metavar="K", help="Scanner.adapt(test files, top=K)"
    )
    ap.add_argument("--classifier-seed", type=int, default=42, help="CalibratedClassifier seed")
    ap.add_argument(
        "--augment",
        type=lambda v: v if v == "auto" else int(v),
        default="auto",
        metavar="auto|0|N",
        help="Scanner(augmentation=...): auto (the default), 0 (None) or N copies",
    )
    ap.add_argument("--augment-seed", type=int, default=0, help="MixAugmentation seed")
    ap.add_argument(
        "--augment-gain",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        metavar="LO,HI",
        help="with --augment N: the gain range in dB (default: AUTO_AUGMENTATION's, -4,4)",
    )
    ap.add_argument(
        "--augment-draws",
        type=int,
        default=1,
        metavar="K",
        help="with --augment N: K draws averaged (MixAugmentation.draws; default 1)",
    )
    ap.add_argument(
        "--test-dirs",
        type=lambda v: tuple(Path(x) for x in v.split(",")),
        default=(),
        metavar="DIR[,DIR]",
        help="also scan DIR/test's recordings named as the bench's test ones (any suffix)",
    )
    ap.add_argument(
        "--augment-lowpass",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        metavar="LO,HI",
        help="MixAugmentation.lowpass_hz of the augmentation that runs (auto: AUTO_MANY's)",
    )
    ap.add_argument(
        "--few-shot-k", default="1,2,3,5", help="the k values of --few-shot, e.g. 5 or 1,2,3,5"
    )
    ap.add_argument(
        "--threshold-rule",
        choices=["smoothed", "argmax"],
        help="force this rule of the threshold's cross-validation (benchmark only; default: "
        "the library's, smoothed for leave-one-recording-out, argmax for one recording)",
    )
    ap.add_argument(
        "--spans",
        action="store_true",
        help="mark each training event as a selection (its labelled onset and offset) "
        "instead of a point at its onset",
    )
    ap.add_argument(
        "--no-post-from-spans",
        action="store_true",
        help="Scanner(postprocessing_from_spans=False): with --spans, keep the scanner's "
        "post-processing instead of sizing it from the marked durations (before)",
    )
    ap.add_argument(
        "--no-post-from-points",
        action="store_true",
        help="Scanner(postprocessing_from_points=False): with point markers, keep the "
        "scanner's post-processing instead of sizing it from the durations estimated "
        "from the points (before)",
    )
    ap.add_argument(
        "--loro",
        action="store_true",
        help="score on the training split, leaving one recording out (no test data)",
    )
    ap.add_argument(
        "--loco",
        action="store_true",
        help="score on the training split, leaving one wolf clip out (birdnet_tune.loco)",
    )
    ap.add_argument("--layers", default="last", help="last | ml | block numbers, e.g. 2 or 2,3")
    ap.add_argument(
        "--classifier",
        choices=["auto", "hgb", "logreg", "extratrees", "prototype"],
        help="override the variant's",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="embedder keyword argument (repeatable)",
    )
    ap.add_argument(
        "--grid",
        help="several WINDOW/HOP pairs (e.g. 8/1,4/1,3/1) run in one process, each segment "
        "encoded once (shared encoding); one row per pair × pooling × classifier",
    )
    ap.add_argument("--poolings", default="", help="frame poolings for --grid, e.g. mean,max")
    ap.add_argument("--classifiers", default="", help="classifiers for --grid, e.g. hgb,logreg")
    ap.add_argument(
        "--layer-sets", default="", help="';'-separated --layers values for --grid, e.g. '2;3;ml'"
    )
    ap.add_argument(
        "--plus", default="", help="--grid: append these embedders' vectors, e.g. LOGMEL"
    )
    ap.add_argument("--contexts", default="", help="context seconds for --grid, e.g. 4,0")
    ap.add_argument(
        "--posts",
        type=json.loads,
        default=None,
        help='Postprocessing changes for --grid, a JSON list: \'[{}, {"extent": "intersection"}]\'',
    )
    ap.add_argument(
        "--scan-gains",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        default=(),
        metavar="DB,DB",
        help="also scan the scored recordings rescaled by these gains in dB (float audio) "
        "and score them (the row's scan_gains; benchmarks/loudness.py)",
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="add which takes of the target are found (by_take) and what each detection "
        "overlaps most (detections_on: target, other sound, background) to the row",
    )
    args = ap.parse_args(argv)
    if args.scan_gains and (args.loro or args.loco or args.grid):
        ap.error("--scan-gains scores the test split: not with --loro, --loco or --grid")
    if args.breakdown and (args.loro or args.loco or args.grid):
        ap.error("--breakdown scores the test split: not with --loro, --loco or --grid")
    model_kwargs = dict(_parse_setting(item) for item in args.set)
    logging.basicConfig(level=logging.WARNING)
    cache = EmbeddingCache(args.cache)
    if args.threshold_rule:
        _force_rule(args.threshold_rule)
    if args.grid:
        return _grid(args, cache, model_kwargs)
    names = list(VARIANTS) if args.variants else ["default"]
    threshold = args.threshold if args.threshold == "auto" else float(args.threshold)
    common: dict[str, Any] = dict(
        seed=args.seed,
        classifier_seed=args.classifier_seed,
        threshold=threshold,
        postprocessing=args.post,
        layers=args.layers,
        model_kwargs=model_kwargs,
        target=args.target,
    )
    if args.spans:
        common["spans"] = True
    if args.no_post_from_spans:
        common["post_from_spans"] = False
    if args.no_post_from_points:
        common["post_from_points"] = False
    if args.classifier:
        common["classifier"] = args.classifier
    if args.adapt:
        common["adapt"] = args.adapt
    if args.scan_gains:
        common["scan_gains"] = args.scan_gains
    if args.breakdown:
        common["breakdown"] = True
    if args.test_dirs:
        common["test_dirs"] = args.test_dirs
    if args.augment_lowpass is not None and args.augment == 0:
        ap.error("--augment-lowpass low-passes augmented copies: not with --augment 0")
    if args.augment_lowpass is not None:
        common["augment_lowpass"] = args.augment_lowpass
    common["augment"], common["augment_seed"] = args.augment, args.augment_seed
    if args.augment_gain is not None and args.augment in ("auto", 0):
        ap.error("--augment-gain needs --augment N (N > 0)")
    if args.augment_gain is not None:
        common["augment_gain"] = args.augment_gain
    if args.augment_draws != 1 and args.augment in ("auto", 0):
        ap.error("--augment-draws needs --augment N (N > 0)")
    common["augment_draws"] = args.augment_draws
    for key in ("window", "hop", "context"):
        if getattr(args, key) is not None:
            common[key] = getattr(args, key)
    jobs = [(n, {**VARIANTS[n], **common}) for n in names]
    if args.few_shot:
        ks = [int(k) for k in args.few_shot_k.split(",")]
        jobs = [(f"first-{k}", {**common, "first_k": k}) for k in ks]
    if not args.random_weights and args.encoding == "shared":
        # frames of real encoders are kept on disk (see _memoise_frames)
        base = create_embedder(args.model, **model_kwargs)
        if base.frame_geometry() is not None:
            _memoise_frames(base, args.cache / "frames")
        common["embedder"] = _layer_embedder(base, args.layers)
        jobs = [(n, {**kw, "embedder": common["embedder"]}) for n, kw in jobs]
    score: Any = loro if args.loro else run
    if args.loco:
        from birdnet_tune import loco as by_clip

        def score(bench: Path, model: str, cache: EmbeddingCache, **kw: Any) -> dict[str, Any]:
            return by_clip(bench, cache, model=model, **kw)

    for name, kwargs in jobs:
        try:
            res = score(
                args.bench,
                args.model,
                cache,
                random_weights=args.random_weights,
                encoding=args.encoding,
                **kwargs,
            )
        except TrainingDataError as exc:
            res = {"error": str(exc)}
        row = {
            "variant": name,
            "model": args.model,
            "encoding": args.encoding,
            "layers": args.layers,
            "classifier": kwargs.get("classifier", "auto"),
            **model_kwargs,
            **res,
        }
        if args.random_weights:
            row["weights"] = "random"
        print(json.dumps({**row, "versions": _versions()}), flush=True)
    return 0


def _versions() -> dict[str, str]:
    """The numeric libraries a row was measured with: the same bench and settings
    score differently across scikit-learn releases (README "Reproducing the numbers")."""
    return {name: importlib.metadata.version(name) for name in _MEASURED_WITH}


_MEASURED_WITH = ("scikit-learn", "numpy", "scipy", "torch", "torchaudio", "av")


def _row(
    args: argparse.Namespace,
    cache: EmbeddingCache,
    model_kwargs: dict[str, Any],
    name: str,
    settings: dict[str, Any],
    window: float,
    hop: float,
    embedder: Any = None,
) -> None:
    try:
        res = run(
            args.bench,
            args.model,
            cache,
            random_weights=args.random_weights,
            encoding=args.encoding,
            threshold=args.threshold if args.threshold == "auto" else float(args.threshold),
            window=window,
            hop=hop,
            layers=args.layers,
            model_kwargs=model_kwargs,
            embedder=embedder,
            target=args.target,
            **settings,
        )
    except TrainingDataError as exc:
        res = {"error": str(exc)}
    row = {
        "variant": name,
        "model": args.model,
        "encoding": args.encoding,
        "window": window,
        "hop": hop,
        "layers": args.layers,
        "classifier": settings.get("classifier", "auto"),
        "context": settings.get("context"),
        "post": settings.get("postprocessing"),
        **model_kwargs,
        **res,
    }
    if embedder is not None:
        row["frame_pooling"] = getattr(embedder, "parts", [embedder])[0].frame_pooling
    if args.plus:
        row["plus"] = args.plus
    if args.random_weights:
        row["weights"] = "random"
    print(json.dumps({**row, "versions": _versions()}), flush=True)


class _Plus(Embedder):
    """Benchmark only: the window vectors of several embedders side by side
    (``--plus LOGMEL``), each computed with the scan's encoding."""

    def __init__(self, parts: list[Embedder]) -> None:
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.dim = sum(p.dim for p in parts)

    def _embed_batch(self, waveforms: Any) -> Any:
        import torch

        return torch.cat([p.embed(waveforms) for p in self.parts], dim=1)

    def shared_settings(self) -> dict[str, float]:
        own = [s for p in self.parts if (s := p.shared_settings())]
        if not own:
            return {}
        return {"chunk": own[0]["chunk"], "context": max(s["context"] for s in own)}

    def cache_id(self) -> str:
        return "plus:" + "|".join(p.cache_id() for p in self.parts)

    def frame_geometry(self) -> Any:
        """The first part's: streamed blocks then start on its frame grid (BirdNET's
        0.5 s frames would shift otherwise; the other parts' hops divide it here)."""
        return self.parts[0].frame_geometry()

    def embed_windows(self, audio: Any, starts: Any, window: float, **kwargs: Any) -> Any:
        return np.hstack([p.embed_windows(audio, starts, window, **kwargs) for p in self.parts])


def _layer_embedder(base: Any, layers: str) -> Any:
    if layers == "last":
        return base
    from audio_embed.embedders.multilayer import MultiLayerEmbedder

    picked: Any = "quartiles" if layers == "ml" else [int(k) for k in layers.split(",")]
    return MultiLayerEmbedder(base, layers=picked)


def _grid(args: argparse.Namespace, cache: EmbeddingCache, model_kwargs: dict[str, Any]) -> int:
    base = create_embedder(args.model, **model_kwargs)
    _memoise_frames(base, args.cache / "frames" if args.encoding == "shared" else None)
    layer_sets = [s for s in args.layer_sets.split(";") if s] or [args.layers]
    pairs = [tuple(float(v) for v in pair.split("/")) for pair in args.grid.split(",")]
    poolings = [p for p in args.poolings.split(",") if p] or [base.frame_pooling]
    classifiers: list[str | None] = [c for c in args.classifiers.split(",") if c] or [
        args.classifier
    ]
    contexts: list[float | None] = [float(c) for c in args.contexts.split(",") if c] or [
        args.context
    ]
    posts: list[dict[str, Any] | None] = args.posts or [args.post]
    plus = [create_embedder(name) for name in args.plus.split(",") if name]
    for layers in layer_sets:
        embedder = _layer_embedder(base, layers)
        if plus:
            embedder = _Plus([embedder, *plus])
        args.layers = layers
        for window, hop in pairs:
            for pooling in poolings:
                base.frame_pooling = pooling
                for classifier in classifiers:
                    for context, post in itertools.product(contexts, posts):
                        settings: dict[str, Any] = {}
                        if classifier is not None:
                            settings["classifier"] = classifier
                        if context is not None:
                            settings["context"] = context
                        if post is not None:
                            settings["postprocessing"] = post
                        _row(args, cache, model_kwargs, "default", settings, window, hop, embedder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

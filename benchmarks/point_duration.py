r"""Post-processing sized from a duration estimated from POINT markers: a sweep.

Each fit of ``wolf.py`` (point markers, the scanner's own post-processing) runs once;
for every estimator below, the marked sounds' durations are estimated on that fit's
training recordings, their median ``D`` sizes the post-processing as selections'
durations do (:func:`audio_embed.scanner.defaults.span_postprocessing`), the
threshold is re-chosen on the fit's cross-validation folds with it, and the scans
are scored with it (as ``span_post.py`` does for selections):

    .venv/bin/python benchmarks/point_duration.py horn-bench --target horn --loro
    .venv/bin/python benchmarks/point_duration.py wolf-bench --loro

``--loro``: the training split, leaving one recording out (choose here); without it,
the test split (report only). Each row also gives the estimate's error against the
labelled durations of the marked training events (labels.csv, split "train"):
``D`` and the true median per fit, and the median absolute per-marker error.
Estimators: ``embed-F`` (:func:`audio_embed.scanner.point_duration.embedding_run_durations`
with ``fraction`` F); ``embed-F+ref`` (decided long by ``embed-F``, sized from the
second estimate of :func:`audio_embed.scanner.point_duration.point_durations`: the
similarity to the mean of the windows within the first median; the library's is
``embed-0.3+ref:long``); ``embed-F+refS`` (the same with the windows within S
seconds); ``embed-F+max`` / ``embed-F+maxS`` (each window's highest similarity to any
of those windows instead; benchmark only); ``score-F`` (:func:`score_run_durations`
with ``fraction`` F: the trained classifier's in-sample scores; benchmark only);
``energy-F`` (log-mel band energy in the bands the marked onset raises above the
local background, while it stays above F of its onset excess; benchmark only);
``truth`` (the labelled median: the ceiling); ``scanner`` (no sizing: the default
before). Suffixes: ``:long`` sizes the post-processing only when the (first)
estimate is at least ``LONG_SOUND_WINDOWS`` windows (else the scanner's); ``:end``
adds half a window to every estimate (the end of the last window like the marker's,
not its centre); ``:mean`` or ``:q75`` size from the estimates' mean or 75th
percentile instead of their median. ``D`` is the sizing value per fit, ``D_first``
the deciding one where they differ.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audio_embed.detect import score_track

sys.path.insert(0, str(Path(__file__).resolve().parent))

from span_post import rescore
from wolf import _force_rule, _parse_setting, _run

from audio_embed.audio import load_audio
from audio_embed.cache import EmbeddingCache
from audio_embed.evaluate import read_labels
from audio_embed.scanner import Scanner
from audio_embed.scanner.defaults import LONG_SOUND_WINDOWS, span_postprocessing
from audio_embed.scanner.point_duration import BACKGROUND_SECONDS, embedding_run_durations


def score_run_durations(
    starts: np.ndarray,
    scores: np.ndarray,
    window: float,
    times: Sequence[float],
    *,
    smooth: float = 0.0,
    fraction: float = 0.5,
) -> list[float]:
    """Benchmark only (not adopted): estimated seconds of the sound marked at each of
    ``times`` from the trained classifier's in-sample scores (one recording).

    ``starts``/``scores``: the recording's sliding windows and their scores;
    ``smooth``: the median filter of the scan (seconds). For each marker, the
    window holding it with the best smoothed score is the anchor; the run around
    it of windows scoring at least ``fraction`` times the anchor's score is the
    sound, its length that of a detection over those windows. One value per
    marker: 0 where there is no estimate (no window holds the marker, or the
    anchor scores 0).
    """
    centres, track, _ = score_track(starts, scores, window, smooth)
    if len(centres) == 0:
        return [0.0] * len(times)
    hop = float(np.median(np.diff(centres))) if len(centres) > 1 else window
    out = []
    for t in times:
        # windows [c - w/2, c + w/2] holding t
        holding = np.flatnonzero(np.abs(centres - t) <= window / 2 + 1e-9)
        if len(holding) == 0:
            out.append(0.0)
            continue
        anchor = int(holding[np.argmax(track[holding])])
        peak = float(track[anchor])
        if peak <= 0:
            out.append(0.0)
            continue
        low = fraction * peak
        i = j = anchor
        while i > 0 and track[i - 1] >= low:
            i -= 1
        while j + 1 < len(track) and track[j + 1] >= low:
            j += 1
        out.append(float(centres[j] - centres[i]) + hop)
    return out


def _per_marker(
    recs: Sequence[tuple[str, Any, Any, list[float]]],
    embeds: Sequence[np.ndarray],
    scanner: Scanner,
    estimate: Callable[..., list[float]],
    *args: Any,
    **kwargs: Any,
) -> list[float]:
    """``estimate(starts, embeddings, window, times, *args, **kwargs)`` of every
    recording, in marker order (the first columns of the features are the
    normalised embeddings)."""
    window, dim = scanner.scan_windows.window, scanner.embedder.dim
    return [
        d
        for (_, entry, _, times), feats in zip(recs, embeds, strict=True)
        for d in estimate(entry.starts, feats[:, :dim], window, times, *args, **kwargs)
    ]


def _second_estimate(
    starts: np.ndarray,
    x: np.ndarray,
    window: float,
    times: Sequence[float],
    smooth: float,
    fraction: float,
    seconds: float,
    *,
    linkage: str = "mean",
) -> list[float]:
    """The second estimate of ``point_durations`` (the similarity to the mean of the
    windows lying wholly within ``seconds`` of the marker), or, ``linkage`` "max",
    each window's highest similarity to any of those windows (benchmark only)."""
    if linkage == "mean":
        return embedding_run_durations(
            starts, x, window, times, smooth=smooth, fraction=fraction, reference=seconds
        )
    from scipy.ndimage import median_filter

    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    hop = float(np.median(np.diff(starts)))
    size = max(1, round(smooth / hop)) | 1
    out = []
    for t in times:
        anchor = int(np.argmin(np.abs(starts - t)))
        within = (starts >= starts[anchor]) & (starts + window <= starts[anchor] + seconds + 1e-9)
        within[anchor] = True
        sim = median_filter((x @ x[within].T).max(axis=1), size=size, mode="nearest")
        before = (starts + window <= t + 1e-9) & (starts + window >= t - BACKGROUND_SECONDS)
        base = float(np.median(sim))
        if before.any():
            base = max(base, float(np.median(sim[before])))
        low = base + fraction * (float(sim[anchor]) - base)
        j = anchor
        while j + 1 < len(sim) and sim[j + 1] >= low:
            j += 1
        out.append(max(float(starts[j] + window / 2 - t) + hop / 2, hop))
    return out


def _statistic(values: list[float], opts: list[str]) -> float:
    """The durations' median, or (``opts``) their mean or a quantile (``q75``)."""
    if "mean" in opts:
        return float(np.mean(values))
    q = [o for o in opts if o.startswith("q")]
    return float(np.quantile(values, float(q[0][1:]) / 100)) if q else statistics.median(values)


def energy_durations(path: str, times: list[float], fraction: float) -> list[float]:
    """Benchmark only: per marker, how long the log-mel excess over the local
    background, in the bands the onset raises, stays above ``fraction`` of its peak."""
    import torch
    import torchaudio

    sr = 16000
    audio = load_audio(path, sr)
    mel = torchaudio.transforms.MelSpectrogram(sr, n_fft=512, hop_length=160, n_mels=40)
    frame = 160 / sr
    out = []
    for t in times:
        a, b = max(0.0, t - 10.0), min(len(audio) / sr, t + 20.0)
        seg = torch.from_numpy(audio[int(a * sr) : int(b * sr)].copy())
        spec = 10 * torch.log10(mel(seg) + 1e-10).numpy()  # bands x frames
        bg = np.median(spec, axis=1, keepdims=True)
        excess = spec - bg
        k0 = round((t - a) / frame)
        onset = excess[:, k0 : k0 + int(0.3 / frame)]
        if onset.shape[1] == 0:
            out.append(0.0)
            continue
        w = np.clip(onset.mean(axis=1), 0, None)
        if w.sum() <= 0:
            out.append(0.0)
            continue
        env = (w[:, None] * excess).sum(axis=0) / w.sum()
        from scipy.ndimage import median_filter

        env = median_filter(env, size=int(0.2 / frame) | 1, mode="nearest")
        head = env[k0 : k0 + int(0.5 / frame)]
        p = k0 + int(np.argmax(head))
        peak = float(env[p])
        if peak <= 0:
            out.append(0.0)
            continue
        j = p
        while j + 1 < len(env) and env[j + 1] >= fraction * peak:
            j += 1
        out.append((j + 1 - k0) * frame)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--target", default="wolf")
    ap.add_argument("--loro", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument(
        "--estimators",
        default="scanner,truth,score-0.1,score-0.2,score-0.3,score-0.5,embed-0.3,embed-0.5,"
        "embed-0.7,energy-0.5",
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    settings: dict[str, Any] = {"target": args.target, "post_from_points": False}
    settings.update(dict(_parse_setting(s) for s in args.set))
    bench, cache = args.bench, EmbeddingCache(args.cache)
    calls: list[Any] = []
    _force_rule(None, calls)
    fitted: list[Scanner] = []
    fit = Scanner.fit

    def recording_fit(self: Scanner, *a: Any, **kw: Any) -> Scanner:
        fitted.append(self)
        return fit(self, *a, **kw)

    Scanner.fit = recording_fit  # type: ignore[method-assign]
    labelled = [e for e in read_labels(bench / "labels.csv") if e.split == "train"]
    files = sorted({e.file for e in labelled})
    fits = []
    for holdout in files if args.loro else [None]:
        before = len(calls)
        _, results, events = _run(bench, "LOGMEL", cache, holdout=holdout, **settings)
        scanner = fitted[-1]
        data = scanner._fit_data
        assert data is not None
        per: dict[str, Any] = {}
        truth: list[float] = []
        recs = []
        embeds: list[Any] = []
        for rec, (entry, feats) in zip(data.recordings, data.grids, strict=True):
            times = list(rec.markers.within(entry.duration).positive)
            scores = scanner.classifier.score_windows(feats)
            recs.append((str(rec.source), entry, scores, times))
            embeds.append(feats)
            rel = str(Path(rec.source).relative_to(bench))
            for t in times:
                true = [
                    e.offset - e.onset
                    for e in labelled
                    if e.file == rel and e.label == args.target and abs(e.onset - t) < 0.05
                ]
                truth.append(true[0] if true else float("nan"))
        window = scanner.scan_windows.window
        smooth = scanner.postprocessing.smooth
        for name in {n.split(":")[0] for n in args.estimators.split(",")}:
            kind, _, f = name.partition("-")
            f, _, ref = f.partition("+")
            if kind == "score":
                est = [
                    d
                    for _, entry, scores, times in recs
                    for d in score_run_durations(
                        entry.starts, scores, window, times, smooth=smooth, fraction=float(f)
                    )
                ]
            elif kind == "embed":
                est = _per_marker(
                    recs, embeds, scanner, embedding_run_durations, smooth=smooth, fraction=float(f)
                )
            elif kind == "energy":
                est = [
                    d for path, _, _, times in recs for d in energy_durations(path, times, float(f))
                ]
            elif kind == "truth":
                est = list(truth)
            else:
                est = [0.0] * len(truth)
            sizes = est
            if kind == "embed" and ref:
                # the second estimate, from the windows within the first median (``ref``)
                # or a fixed number of seconds (``refS``), their mean or (``max``) any
                valid = [d for d in est if d > 0]
                digits = ref.removeprefix("ref").removeprefix("max")
                seconds = float(digits or 0) or (statistics.median(valid) if valid else 0.0)
                sizes = _per_marker(
                    recs, embeds, scanner, _second_estimate, smooth, float(f), seconds,
                    linkage="max" if ref.startswith("max") else "mean",
                )  # fmt: skip
            per[name] = (est, sizes)
        call = calls[-1] if len(calls) > before else None
        fits.append((call, results, events, per, truth))
    for name in args.estimators.split(","):
        base_name, *opts = name.split(":")
        ds, gates, trues, errs, posts = [], [], [], [], []
        for _, res, _, per, truth in fits:
            est, sizes = per[base_name]
            if "end" in opts:  # the end of the last window, not its centre
                est = [d + window / 2 if d > 0 else d for d in est]
                sizes = [d + window / 2 if d > 0 else d for d in sizes]
            base = next(iter(res.values())).postprocessing
            valid = [d for d in est if d > 0]
            g = statistics.median(valid) if valid else None
            sized = [d for d in sizes if d > 0]
            d = _statistic(sized, opts) if sized else None
            post = base if d is None else span_postprocessing(base, [d], window)[0]
            if "long" in opts and (g is None or g < LONG_SOUND_WINDOWS * window):
                post = base  # sized only when the (first) estimate says the sound is long
            posts.append(post)
            ds.append(None if d is None else round(d, 2))
            gates.append(None if g is None else round(g, 2))
            trues.append(round(statistics.median(truth), 2))
            errs += [abs(a - b) for a, b in zip(sizes, truth, strict=True) if a > 0 and b == b]
        metrics, thresholds = rescore([f[:3] for f in fits], posts)
        row: dict[str, Any] = {"estimator": name, **metrics}
        row.update(
            D=ds,
            **({"D_first": gates} if gates != ds else {}),
            true_median=trues,
            marker_abs_err_median=round(statistics.median(errs), 2) if errs else None,
            thresholds=thresholds,
            split="train loro" if args.loro else "test",
        )
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Which wolf calls the default scanner misses, and why (issue 13, recall).

Replays ``soundscapes.py``'s seeded procedure in memory (no file is written; the
bench is not rebuilt) to recover, for every labelled event, the clip it came from
(``wolf-growl-3.ogg`` …) and its mixing SNR (the ``snr`` drawn for it: the clip's
RMS over the RMS of what was already there under its span), checks that the
replayed events equal ``labels.csv`` row for row, then trains the scanner as
``benchmarks/wolf.py`` does (its ``_run``: defaults unless options are given),
scans the test split and reports per wolf event: take, SNR, "active" SNR (the
clip's frames within 20 dB of its loudest, over the background under them),
duration, whether a detection matches it at IoU >= 0.3 and whether one overlaps
it (lenient), and its best score (the median-smoothed score track that
:func:`audio_embed.detect.detect` thresholds, and the raw window scores)
against the threshold; and, per false detection, the sound it lies on.

    .venv/bin/python benchmarks/wolf_misses.py wolf-bench \
        --spec ../shared/soundscape-wolf.json --soundscapes ../shared/soundscapes.py \
        --sources ~/.cache/soundscapes/root [--classifier-seed 1] [--json out.json]

``--explore "ARGS"`` analyses a ``benchmarks/wolf_augment.py`` run instead (its
arguments after the bench, e.g. ``--explore "--aug-copies 1 --aug-gain=-10,0"``):
the test split's scores at the threshold that run chose.

``--loro`` scores the training split instead (each training recording held out
in turn, as ``wolf.py --loro``): the same takes as the markers, so misses there
come from SNR or duration, not from a take never heard.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from attrs import asdict, frozen
from scipy.optimize import linear_sum_assignment

from audio_embed.cache import EmbeddingCache
from audio_embed.detect import iou_matrix, score_track
from audio_embed.evaluate import read_labels
from audio_embed.scanner import ScanResult

SR = 16000
TARGET = "wolf"


@frozen
class MixedEvent:
    """One event as ``soundscapes.py`` mixed it."""

    split: str
    file: str  # relative to the bench, as labels.csv writes it
    onset: float
    offset: float
    label: str
    clip: str  # the source file's name, e.g. wolf-growl-3.ogg
    snr_db: float  # the drawn SNR: clip RMS over the RMS already under its span
    active_snr_db: float  # the same over the clip's frames within 20 dB of its loudest
    background_db: float  # RMS under the span before mixing, dB re full scale
    band_snr_db: float  # the best mel band's SNR over the span (LOGMEL's 64 bands)


def load_module(path: Path) -> ModuleType:
    """Import ``soundscapes.py`` from its path."""
    spec = importlib.util.spec_from_file_location("soundscapes", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"Cannot import {path}.")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _active_snr(clip: np.ndarray, under: np.ndarray, frame: int = 320) -> float:
    """SNR over the clip's 20 ms frames within 20 dB of its loudest frame."""
    n = len(clip) // frame * frame
    if n == 0:
        return float("nan")
    c = (clip[:n].astype(np.float64).reshape(-1, frame) ** 2).mean(1)
    b = (under[:n].astype(np.float64).reshape(-1, frame) ** 2).mean(1)
    keep = c >= c.max() * 10 ** (-20 / 10)
    return float(10 * np.log10(c[keep].sum() / max(b[keep].sum(), 1e-18)))


def _band_snr(clip: np.ndarray, under: np.ndarray) -> float:
    """The largest per-band SNR (dB) of LOGMEL's mel power over the clip's span."""
    import torch

    from audio_embed.embedders.logmel import LogMelEmbedder

    mel = LogMelEmbedder().melspec
    n = max(len(clip), 512)
    pad = [np.pad(a.astype(np.float32), (0, n - len(a))) for a in (clip, under)]
    with torch.inference_mode():
        c, b = (mel(torch.from_numpy(a)[None])[0].sum(-1).double().numpy() for a in pad)
    return float(10 * np.log10((c / np.maximum(b, 1e-12)).max()))


def replay(spec: dict[str, Any], ss: ModuleType, sources: Path) -> list[MixedEvent]:
    """Every event of the bench built from ``spec``, in the order ``soundscapes.main``
    mixes them: the same random draws, the same clips, the same arithmetic."""
    rng = np.random.default_rng(spec["seed"])
    ambient = sorted(
        p
        for p in glob.glob(f"{sources}/usr/share/games/lincity-ng/**/*.wav", recursive=True)
        if Path(p).stem != "Click"
    )
    speech = sorted(glob.glob(f"{sources}/usr/share/asterisk/**/*.wav", recursive=True))
    effects = sorted(
        glob.glob(f"{sources}/usr/share/games/wesnoth/**/sounds/**/*.ogg", recursive=True)
    )
    if not (ambient and speech and effects):
        raise SystemExit(f"--sources {sources}: no unpacked Debian sounds there.")
    by_name = {Path(p).name: p for p in effects}
    target = spec["target"]
    split_clips = {s: [by_name[n] for n in spec[f"{s}_clips"]] for s in ("train", "test")}
    excluded = set(spec.get("exclude_classes", [])) | {target}
    distractors = [
        p
        for p in effects
        if ss.effect_class(p) not in excluded and not ss.effect_class(p).startswith(target)
    ]
    out: list[MixedEvent] = []
    for split in ("train", "test"):
        for i in range(spec[f"n_{split}"]):
            seconds = spec["seconds"]
            y = ss.bed(rng, ambient, speech, seconds)
            taken: list[tuple[float, float]] = []
            name = f"{split}/{split}_{i:02d}.wav"
            events = [(p, target) for p in rng.choice(split_clips[split], spec["targets_per_file"])]
            events += [
                (p, ss.effect_class(p))
                for p in rng.choice(distractors, spec["distractors_per_file"])
            ]
            for path, label in events:
                clip = ss.load(path)
                dur = len(clip) / SR
                t = ss.place(rng, taken, dur, seconds, spec.get("min_gap", 10.0))
                if t is None:
                    continue
                s = int(t * SR)
                under = y[s : s + len(clip)].copy()
                local = ss.rms(under)
                snr = rng.uniform(*spec["snr_db"])
                added = clip / ss.rms(clip) * local * 10 ** (snr / 20)
                y[s : s + len(clip)] += added
                taken.append((t, t + dur))
                out.append(
                    MixedEvent(
                        split=split,
                        file=name,
                        onset=round(t, 3),
                        offset=round(t + dur, 3),
                        label=str(label),
                        clip=Path(str(path)).name,
                        snr_db=round(float(snr), 2),
                        active_snr_db=round(_active_snr(added, under), 2),
                        background_db=round(20 * float(np.log10(local)), 2),
                        band_snr_db=round(_band_snr(added, under), 2),
                    )
                )
    return out


def take_shapes(spec: dict[str, Any], ss: ModuleType, sources: Path) -> dict[str, Any]:
    """Each wolf take's duration, mel centroid (band of 64) and nearest training take by
    the correlation of spectral shape (mean log-mel over its frames within 3 dB of the
    loudest, minus its mean over bands)."""
    import torch

    from audio_embed.embedders.logmel import LogMelEmbedder

    emb = LogMelEmbedder()
    found = glob.glob(f"{sources}/usr/share/games/wesnoth/**/sounds/**/*.ogg", recursive=True)
    by_name = {Path(p).name: p for p in found}
    shapes, info = {}, {}
    for name in [*spec["train_clips"], *spec["test_clips"]]:
        clip = ss.load(by_name[name])
        with torch.inference_mode():
            fr = emb.frames(torch.from_numpy(clip)[None])[0].double().numpy()
        loud = fr.max(1) >= fr.max() - 3.0
        mean = fr[loud].mean(0)
        power = np.exp(mean)
        shapes[name] = (mean - mean.mean()) / np.linalg.norm(mean - mean.mean())
        info[name] = dict(seconds=round(len(clip) / SR, 3),
                          centroid_band=round(float((power * np.arange(len(mean))).sum()
                                                    / power.sum()), 1))  # fmt: skip
    for name in spec["test_clips"]:
        corr = {t: round(float(shapes[name] @ shapes[t]), 2) for t in spec["train_clips"]}
        info[name]["shape_corr"] = dict(sorted(corr.items(), key=lambda kv: -kv[1]))
    return info


def check_against_labels(events: Sequence[MixedEvent], labels_csv: Path) -> None:
    """Raise unless the replayed events are exactly the rows of ``labels_csv``."""
    got = sorted((e.split, e.file, e.onset, e.offset, e.label) for e in events)
    want = sorted(
        (ev.split, ev.file.replace(".mp4", ".wav"), ev.onset, ev.offset, ev.label)
        for ev in read_labels(labels_csv)
    )
    if got != want:
        diff = sorted(set(got) ^ set(want))[:3]
        raise SystemExit(
            f"The replay does not match {labels_csv} ({len(got)} against {len(want)} events; "
            f"first differences {diff}): another spec, seed or source set?"
        )


def best_scores(result: ScanResult, onset: float, offset: float) -> tuple[float, float]:
    """The best smoothed-track and raw window score with the window centre in the event
    (the nearest centre when none lies inside)."""
    centres, track, raw = score_track(
        result.starts, result.probabilities, result.window, result.postprocessing.smooth
    )
    inside = (centres >= onset) & (centres <= offset)
    if not inside.any():
        inside = (
            np.abs(centres - (onset + offset) / 2) == np.abs(centres - (onset + offset) / 2).min()
        )
    return float(track[inside].max()), float(raw[inside].max())


def _matched(events: list[tuple[float, float]], dets: list[tuple[float, float]]) -> set[int]:
    """Events (indices) in a maximum one-to-one IoU >= 0.3 matching."""
    if not events or not dets:
        return set()
    m = iou_matrix(events, dets)
    rows, cols = linear_sum_assignment(np.where(m >= 0.3, 1.0 + m, 0.0), maximize=True)
    return {int(r) for r, c in zip(rows, cols, strict=True) if m[r, c] >= 0.3}


def event_rows(
    results: dict[str, ScanResult], mixed: Sequence[MixedEvent], bench: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per wolf event of the scanned files, and one per detection that
    overlaps no wolf event (with the labelled sounds it overlaps)."""
    by_file: dict[str, list[MixedEvent]] = defaultdict(list)
    for e in mixed:
        by_file[str(bench / e.file)].append(e)
    rows, false = [], []
    for path, res in sorted(results.items()):
        key = path.replace(".mp4", ".wav")
        wolves = [e for e in by_file[key] if e.label == TARGET]
        others = [e for e in by_file[key] if e.label != TARGET]
        dets = res.detections()
        spans = [(d.start, d.end) for d in dets]
        hit = _matched([(e.onset, e.offset) for e in wolves], spans)
        for k, e in enumerate(wolves):
            smooth, raw = best_scores(res, e.onset, e.offset)
            rows.append(
                asdict(e)
                | dict(
                    take=Path(e.clip).stem,
                    seconds=round(e.offset - e.onset, 3),
                    iou_found=k in hit,
                    lenient_found=any(a < e.offset and b > e.onset for a, b in spans),
                    best_track=round(smooth, 4),
                    best_raw=round(raw, 4),
                    threshold=round(res.threshold, 4),
                )
            )
        for d in dets:
            if any(d.start < e.offset and d.end > e.onset for e in wolves):
                continue
            on = [e.label for e in others if d.start < e.offset and d.end > e.onset]
            false.append(
                dict(file=path, start=round(d.start, 2),
                     end=round(d.end, 2), score=round(d.score, 3), on=on or ["background"])
            )  # fmt: skip
    return rows, false


def _group(rows: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r[key])].append(r)
    return {
        k: dict(
            n=len(v),
            iou_found=sum(r["iou_found"] for r in v),
            lenient_found=sum(r["lenient_found"] for r in v),
            median_best_track=round(float(np.median([r["best_track"] for r in v])), 3),
        )
        for k, v in sorted(groups.items())
    }


def _snr_bin(snr: float) -> str:
    return "-3..1 dB" if snr < 1 else ("1..5 dB" if snr < 5 else "5..9 dB")


def summary(rows: list[dict[str, Any]], false: list[dict[str, Any]]) -> dict[str, Any]:
    """Found / total by take, SNR band and duration; how far the misses are from the
    threshold; what the false detections lie on."""
    for r in rows:
        r["snr_band"] = _snr_bin(r["snr_db"])
    missed = [r for r in rows if not r["lenient_found"]]
    ratio = [r["best_track"] / r["threshold"] for r in missed]
    on: dict[str, int] = defaultdict(int)
    for f in false:
        for lab in f["on"]:
            on[lab] += 1
    found_snr = [r["snr_db"] for r in rows if r["lenient_found"]]
    return dict(
        events=len(rows),
        iou_found=sum(r["iou_found"] for r in rows),
        lenient_found=sum(r["lenient_found"] for r in rows),
        by_take=_group(rows, "take"),
        by_snr=_group(rows, "snr_band"),
        by_seconds=_group(rows, "seconds"),
        missed_best_over_threshold=dict(
            under_0_25=sum(x < 0.25 for x in ratio),
            from_0_25_to_0_5=sum(0.25 <= x < 0.5 for x in ratio),
            from_0_5_to_1=sum(x >= 0.5 for x in ratio),
        ),
        mean_snr_found=round(float(np.mean(found_snr)), 2) if found_snr else None,
        mean_snr_missed=round(float(np.mean([r["snr_db"] for r in missed])), 2) if missed else None,
        false_detections=len(false),
        false_on=dict(sorted(on.items(), key=lambda kv: -kv[1])),
    )


def explore_results(argv: list[str]) -> dict[str, ScanResult]:
    """Run ``wolf_augment.py`` (``argv``: its arguments) and keep the test split's
    results at the threshold it chose (the first set of results it evaluates)."""
    import wolf_augment
    import wolf_explore

    got: list[dict[str, ScanResult]] = []
    original = wolf_explore.evaluate

    def keep(results: dict[str, ScanResult], *args: Any, **kwargs: Any) -> Any:
        if not got:
            got.append(dict(results))
        return original(results, *args, **kwargs)

    wolf_explore.evaluate = keep  # type: ignore[assignment]
    try:
        wolf_augment.main(argv)
    finally:
        wolf_explore.evaluate = original
    return got[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--spec", type=Path, default=Path("../shared/soundscape-wolf.json"))
    ap.add_argument("--soundscapes", type=Path, default=Path("../shared/soundscapes.py"))
    ap.add_argument("--sources", type=Path, default=Path("~/.cache/soundscapes/root").expanduser())
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--classifier-seed", type=int, default=42)
    ap.add_argument("--loro", action="store_true", help="score the training split, LORO")
    ap.add_argument("--explore", help="analyse this wolf_augment.py run (its options, quoted)")
    ap.add_argument("--json", type=Path, help="also write every row here")
    ap.add_argument("--rows", action="store_true", help="print one line per event")
    ap.add_argument("--takes", action="store_true", help="print the takes' shapes and stop")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    import wolf  # benchmarks/wolf.py: the library end to end

    spec = json.loads(args.spec.read_text())
    ss = load_module(args.soundscapes)
    if args.takes:
        print(json.dumps(take_shapes(spec, ss, args.sources), indent=1))
        return 0
    mixed = replay(spec, ss, args.sources)
    check_against_labels(mixed, args.bench / "labels.csv")
    cache = EmbeddingCache(args.cache)
    results: dict[str, ScanResult] = {}
    if args.explore is not None:
        import shlex

        extra = ["--cache", str(args.cache), "--classifier-seed", str(args.classifier_seed)]
        results = explore_results([str(args.bench), *extra, *shlex.split(args.explore)])
    elif args.loro:
        files = sorted({e.file for e in mixed if e.split == "train"})
        for f in files:
            _, res, _ = wolf._run(
                args.bench, "LOGMEL", cache, holdout=f, classifier_seed=args.classifier_seed
            )
            results.update(res)
    else:
        _, results, _ = wolf._run(args.bench, "LOGMEL", cache, classifier_seed=args.classifier_seed)
    rows, false = event_rows(results, mixed, args.bench)
    out = summary(rows, false)
    out = {"classifier_seed": args.classifier_seed, "explore": args.explore,
           "split": "train (LORO)" if args.loro else "test"} | out  # fmt: skip
    print(json.dumps(out, indent=1))
    if args.rows:
        for r in sorted(rows, key=lambda r: (r["take"], r["snr_db"])):
            print(
                f"{r['take']:13s} {r['file']:20s} {r['onset']:7.2f} snr {r['snr_db']:5.1f} "
                f"active {r['active_snr_db']:5.1f} band {r['band_snr_db']:5.1f} "
                f"bg {r['background_db']:6.1f} "
                f"iou {int(r['iou_found'])} len {int(r['lenient_found'])} "
                f"track {r['best_track']:.3f} raw {r['best_raw']:.3f} thr {r['threshold']:.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps({"summary": out, "events": rows, "false": false}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

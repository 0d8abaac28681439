r"""Search by example and review rounds on the wolf benchmark (the README's table).

    .venv/bin/python benchmarks/search_wolf.py /work/wolf-bench [--model LOGMEL]
        [--start example|first5] [--rounds 2] [--per-round 10] [--partial] [--from-index]
        [--search-only] [--ask-again]

1. Index the 4 training recordings with the model's scan windows (as
   ``audio-embed index`` does; LOGMEL: 1 s every 0.1 s).
2. Search with ONE wolf example (the first marker of markers.csv): precision of
   the top 10 / 30 hits = the share of hits overlapping a labelled wolf call (the
   example's own call left out; 19 other calls, so 19/30 is the best @30). How the
   hits' extents fit the calls (of the top 30: mean hit length, mean IoU of a hit
   on a call with the call, mean share of the call covered), and how many of the
   first 10 hits have another extent when 10 are asked for than among 31.
   ``--search-only`` stops here.
3. A simulated reviewer answers from labels.csv: a window or hit that overlaps a
   wolf call is marked positive at that call's onset (as markers.csv marks), any
   other is marked negative at its peak. The markers grow round by round:
   ``--start example``: the example, then its top ``--per-round`` search hits
   reviewed; ``--start first5``: the first five markers of markers.csv (all in
   train_00, as ``wolf.py --few-shot --few-shot-k 5``). Then ``--rounds`` rounds
   of ``--per-round`` suggestions (``review.suggest_windows`` over
   ``review.score_index``: the windows of the index the scanner is least sure
   about, what ``audio-embed search --scanner S --suggest N`` lists: none at a
   moment the scanner was trained on; ``--ask-again``: as before, when they could
   be), reviewed; ``asked_again`` counts those overlapping an answered moment
   (widened by a window).
   Last, all 20 markers for reference.
4. Each stage trains a scanner with the library's defaults from the files
   (``Scanner.fit``, as ``audio-embed train --markers review.csv``; with
   ``--from-index`` from the index's vectors, as ``train --index``), scans the 6
   test recordings and scores them at the scanner's own threshold. With
   ``--partial`` the recordings that only reviewed answers mark are
   ``Recording(complete=False)`` (``train --reviewed``); the example's recording
   stays complete.

One JSON line per stage on stdout: IoU (>= 0.3, one-to-one) P/R/F1, lenient F1,
share of audio flagged, threshold and the markers it was trained on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from audio_embed import create_embedder
from audio_embed.cache import EmbeddingCache
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.formats import read_markers
from audio_embed.index import EmbeddingIndex, Example, Hit
from audio_embed.review import fit_from_index, score_index, suggest_windows
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import Markers

Calls = dict[str, list[tuple[float, float]]]
Reviewed = dict[str, dict[str, set[float]]]


def call_of(
    start: float, end: float, calls: list[tuple[float, float]]
) -> tuple[float, float] | None:
    """The first labelled call the interval overlaps, if any."""
    return next(((a, b) for a, b in calls if start < b and a < end), None)


def review(hits: list[Hit], calls: Calls, into: Reviewed) -> dict[str, int]:
    """The simulated reviewer's answers to ``hits``, added to ``into``."""
    n = {"positive": 0, "negative": 0}
    for h in hits:
        call = call_of(h.start, h.end, calls[h.file])
        kind = "negative" if call is None else "positive"
        into[h.file][kind].add(h.peak if call is None else call[0])
        n[kind] += 1
    return n


def extents(hits: list[Hit], calls: Calls) -> dict[str, float]:
    """How the hits' extents fit the calls: mean hit length, and over the hits on a
    call, the mean IoU of hit and call and the share of the call the hit covers."""
    ious, covered = [], []
    for h in hits:
        call = call_of(h.start, h.end, calls[h.file])
        if call is not None:
            inter = min(h.end, call[1]) - max(h.start, call[0])
            ious.append(inter / (max(h.end, call[1]) - min(h.start, call[0])))
            covered.append(inter / (call[1] - call[0]))
    n = max(len(ious), 1)
    return {
        "mean_hit_s": round(sum(h.end - h.start for h in hits) / max(len(hits), 1), 3),
        "mean_iou_on_call": round(sum(ious) / n, 3),
        "mean_call_covered": round(sum(covered) / n, 3),
    }


def asked_again(hits: list[Hit], reviewed: Reviewed, window: float) -> int:
    """How many of ``hits`` overlap a moment already answered, widened by a window."""
    return sum(
        any(h.start < t + window and h.end > t - window for ts in reviewed[h.file].values()
            for t in ts)
        for h in hits
    )  # fmt: skip


def as_markers(reviewed: Reviewed) -> dict[str, Markers]:
    return {
        f: Markers(positive=sorted(k["positive"]), negative=sorted(k["negative"]))
        for f, k in reviewed.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("--model", default="LOGMEL")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--out", type=Path, default=Path(".benchmarks"), help="where the index goes")
    ap.add_argument("--start", choices=["example", "first5"], default="example")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of reviewed suggestions")
    ap.add_argument("--per-round", type=int, default=10, help="hits or suggestions per round")
    ap.add_argument("--from-index", action="store_true", help="train from the index's vectors")
    ap.add_argument(
        "--partial",
        action="store_true",
        help="recordings marked only by reviewed answers are Recording(complete=False) "
        "(train --reviewed); default: every marked recording is complete (train --markers)",
    )
    ap.add_argument("--seed", type=int, default=0, help="Scanner(seed=...): the threshold folds")
    ap.add_argument(
        "--ask-again",
        action="store_true",
        help="suggestions as before they left out the scanner's training markers",
    )
    ap.add_argument(
        "--search-only", action="store_true", help="only the search line: no review rounds"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    bench = args.bench.resolve()
    embedder = create_embedder(args.model)
    cache = EmbeddingCache(args.cache)
    calls: Calls = defaultdict(list)
    test_files: set[str] = set()
    for ev in read_labels(bench / "labels.csv"):
        key = str(bench / ev.file)
        if ev.split == "test":
            test_files.add(key)
        if ev.label == "wolf":
            calls[key].append((ev.onset, ev.offset))
    train = sorted(str(p) for p in (bench / "train").glob("*.wav"))
    idx_path = args.out / f"wolf-{args.model}-scan.idx"
    t0 = time.perf_counter()
    if idx_path.exists():
        index = EmbeddingIndex.open(idx_path, embedder=embedder, cache=cache)
    else:
        index = EmbeddingIndex.create(idx_path, embedder, cache=cache)
    index.add(train)
    head: dict[str, Any] = {
        "model": args.model,
        "index_windows": len(index),
        "index_window": index.windows.window,
        "index_hop": index.windows.hop,
        "index_build_s": round(time.perf_counter() - t0, 1),
    }
    all_markers = {
        str(Path(f).resolve()): m for f, m in read_markers(bench / "markers.csv").items()
    }
    ex_file = sorted(all_markers)[0]
    ex_time = all_markers[ex_file].positive[0]
    example = Example(ex_file, ex_time)
    ex_call = call_of(ex_time, ex_time + 1e-6, calls[ex_file])

    def others(hits: list[Hit]) -> list[Hit]:  # leave the example's own call out
        return [h for h in hits if not (h.file == ex_file and call_of(h.start, h.end, [ex_call]))]

    head["example"] = f"{Path(ex_file).name}:{ex_time}"
    for exact in (False, True):
        mode = "exact" if exact else "ann"
        hits = others(index.search([example], top=31, exact=exact))
        for k in (10, 30):
            good = sum(call_of(h.start, h.end, calls[h.file]) is not None for h in hits[:k])
            head[f"precision@{k}_{mode}"] = round(good / k, 3)
        head.update({f"{k}_{mode}": v for k, v in extents(hits[:30], calls).items()})
        # the first 10 hits asked alone (as the review round asks them) and among 31
        alone = others(index.search([example], top=11, exact=exact))[:10]
        good = sum(call_of(h.start, h.end, calls[h.file]) is not None for h in alone)
        head[f"precision@10_asked_10_{mode}"] = round(good / 10, 3)
        head[f"extents_changed_10_vs_31_{mode}"] = sum(
            (a.file, a.start, a.end) != (b.file, b.start, b.end)
            for a, b in zip(alone, hits[:10], strict=False)
        )
    print(json.dumps(head), flush=True)
    if args.search_only:
        return 0

    reviewed: Reviewed = defaultdict(lambda: defaultdict(set))
    if args.start == "example":
        reviewed[ex_file]["positive"].add(ex_time)
        stages = ["one example", f"+ {args.per_round} search hits reviewed"]
    else:
        reviewed[ex_file]["positive"].update(all_markers[ex_file].positive[:5])
        stages = ["first 5 markers"]
    stages += [f"+ {args.per_round} suggestions reviewed"] * args.rounds
    stages.append("all 20 markers (reference)")

    scanner: Scanner | None = None
    for i, name in enumerate(stages):
        answers: dict[str, int] = {}
        if "search hits" in name:
            hits = others(index.search([example], top=args.per_round + 1))[: args.per_round]
            answers = review(hits, calls, reviewed)
        elif "suggestions" in name:
            assert scanner is not None
            known = None if args.ask_again else scanner.training_markers
            hits = suggest_windows(score_index(scanner, index), args.per_round, exclude=known)
            again = asked_again(hits, reviewed, index.windows.window)
            answers = review(hits, calls, reviewed)
            answers["asked_again"] = again
        reference = name.startswith("all 20")
        marks = all_markers if reference else as_markers(reviewed)
        # --partial: only the example's recording is complete (every call marked: true
        # for first5, not for one example); the others hold reviewed answers only
        partial = set() if reference or not args.partial else set(marks) - {ex_file}
        scanner = Scanner(embedder, cache=cache, seed=args.seed)
        t0 = time.perf_counter()
        if args.from_index:
            fit_from_index(scanner, index, marks, partial=partial)
        else:
            scanner.fit(
                [Recording(f, m, complete=f not in partial) for f, m in sorted(marks.items())]
            )
        fit_s = time.perf_counter() - t0
        results = {}
        for path, result in scanner.scan_many(sorted(test_files)):
            if isinstance(result, Exception):
                raise result
            results[path] = result
        d = evaluate(results, {f: calls[f] for f in test_files}).as_dict()
        summary = scanner.training_summary or {}
        print(
            json.dumps(
                {
                    "stage": i,
                    "name": name,
                    "answers": answers,
                    "positive_markers": sum(len(m.positive) for m in marks.values()),
                    "negative_markers": sum(len(m.negative) for m in marks.values()),
                    "recordings": len(marks),
                    "partial_recordings": len(partial),
                    "iou_p_r_f1": [round(d[f"iou_{k}"], 2) for k in ("precision", "recall", "f1")],
                    "lenient_f1": round(d["lenient_f1"], 3),
                    "flagged": round(d["flagged_fraction"], 4),
                    "mean_detection_s": round(d["mean_detection_seconds"], 2),
                    "window_auc": round(d["window_auc"], 3),
                    "threshold": round(scanner.scan_threshold, 3),
                    "threshold_cv_f1": (summary.get("threshold") or {}).get("cv_f1"),
                    "augmentation": (summary.get("augmentation") or {}).get("reason"),
                    "estimator": summary.get("classifier_estimator"),
                    "fit_s": round(fit_s, 1),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

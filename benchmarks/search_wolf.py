r"""Search by example and one review round on the wolf benchmark.

    .venv/bin/python benchmarks/search_wolf.py /work/wolf-bench --model LOGMEL

1. Index the 4 training recordings (8 s windows every 1 s, as the README table was
   measured; the CLI now indexes with the model's scan windows).
2. Search with ONE wolf example: the first marker of markers.csv. Precision of
   the top 10 / 30 hits = the share of hits that overlap a labelled wolf event
   (the hit on the example's own occurrence is left out).
3. Simulate a reviewer: the top 10 hits are marked positive when they overlap
   a wolf event, else negative. Train a scanner from the index's vectors with
   (a) the single example only and (b) the example + the 10 reviewed hits, and
   (c) for reference all 20 markers of markers.csv; scan the 6 test recordings
   and report event F1 (audio_embed.evaluate, threshold 0.3).
One JSON line per result on stdout.
"""

from __future__ import annotations

import argparse
import json
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
from audio_embed.review import fit_from_index
from audio_embed.scanner import Scanner
from audio_embed.windows import Markers, SlidingWindows, TargetedWindows


def overlaps(h: Hit, events: list[tuple[float, float]]) -> bool:
    return any(h.start < b and a < h.end for a, b in events)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path)
    ap.add_argument("--model", default="LOGMEL")
    ap.add_argument("--cache", type=Path, default=Path(".benchmarks/wolf-cache"))
    ap.add_argument("--out", type=Path, default=Path(".benchmarks"))
    args = ap.parse_args(argv)
    bench = args.bench.resolve()
    embedder = create_embedder(args.model)
    cache = EmbeddingCache(args.cache)
    windows = SlidingWindows(8.0, 1.0, "shared")
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    test_files: set[str] = set()
    for ev in read_labels(bench / "labels.csv"):
        key = str(bench / ev.file)
        if ev.split == "test":
            test_files.add(key)
        if ev.label == "wolf":
            events[key].append((ev.onset, ev.offset))
    train = sorted(str(p) for p in (bench / "train").glob("*.wav"))
    idx_path = args.out / f"wolf-{args.model}.idx"
    t0 = time.perf_counter()
    if idx_path.exists():
        index = EmbeddingIndex.open(idx_path, embedder=embedder, cache=cache)
    else:
        index = EmbeddingIndex.create(idx_path, embedder, windows=windows, cache=cache)
    index.add(train)
    build_s = time.perf_counter() - t0
    markers = {str(Path(f).resolve()): m for f, m in read_markers(bench / "markers.csv").items()}
    ex_file = sorted(markers)[0]
    ex_time = markers[ex_file].positive[0]
    example = Example(ex_file, ex_time)
    out: dict[str, Any] = {
        "model": args.model,
        "index_windows": len(index),
        "index_build_s": round(build_s, 1),
        "example": f"{Path(ex_file).name}:{ex_time}",
    }
    for exact in (False, True):
        hits = index.search([example], top=31, exact=exact)
        hits = [h for h in hits if not (h.file == ex_file and h.start <= ex_time <= h.end)]
        tag = "exact" if exact else "ann"
        for k in (10, 30):
            good = sum(overlaps(h, events[h.file]) for h in hits[:k])
            out[f"precision@{k}_{tag}"] = round(good / k, 3)
    # One review round: the reviewer labels the top 10 (ANN) hits.
    hits = [
        h
        for h in index.search([example], top=11)
        if not (h.file == ex_file and h.start <= ex_time <= h.end)
    ][:10]
    reviewed: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    reviewed[ex_file]["positive"].append(ex_time)
    for h in hits:
        kind = "positive" if overlaps(h, events[h.file]) else "negative"
        reviewed[h.file][kind].append(h.peak)
    rounds = {
        "one example": {ex_file: Markers(positive=(ex_time,))},
        "example + 10 reviewed hits": {f: Markers(**k) for f, k in reviewed.items()},
        "all 20 markers (reference)": markers,
    }
    for name, marks in rounds.items():
        scanner = Scanner(  # threshold 0.3, as the README's table was measured
            embedder,
            scan_windows=windows,
            train_windows=TargetedWindows(8.0),
            cache=cache,
            threshold=0.3,
        )
        fit_from_index(scanner, index, marks)
        results = {}
        for path, result in scanner.scan_many(sorted(test_files)):
            if isinstance(result, Exception):
                raise result
            results[path] = result
        ev = evaluate(results, {f: events[f] for f in test_files})
        d = ev.as_dict()
        out[f"F1 {name}"] = round(d["f1"], 3)
        out[f"P/R {name}"] = f"{d['precision']:.3f}/{d['recall']:.3f}"
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

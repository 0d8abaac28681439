"""Search precision of an example cut from a clip, against the whole recording.

Indexes the wolf bench's six test recordings (LOGMEL), then searches with each wolf
call of ``train/train_00.wav`` as the example, taken from clips of several lengths
centred on the call and from the whole recording (neither in the index), and prints
the share of the top 30 hits that overlap a labelled test wolf call.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search_clip.py /work/wolf-bench OUT
    (--lengths 0.6,1,1.5: clips shorter than the 1 s window too)
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import soundfile as sf

from audio_embed import EmbeddingIndex, Example, Hit, create_embedder, load_audio

LENGTHS = (1.5, 3.0, 10.0, 30.0, 60.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path)
    ap.add_argument("out", type=Path, help="a folder for the index and the clips")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--lengths",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        default=LENGTHS,
        help="clip lengths in seconds, comma-separated (default: 1.5,3,10,30,60)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    idx_path = args.out / "wolf-test.idx"
    if idx_path.exists():
        index = EmbeddingIndex.open(idx_path)
    else:
        index = EmbeddingIndex.create(idx_path, create_embedder("LOGMEL"), dtype="float32")
        index.add(sorted((args.bench / "test").iterdir()))
    rows = list(csv.DictReader((args.bench / "labels.csv").open()))
    events: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["split"] == "test" and r["label"] == "wolf":
            key = str((args.bench / r["file"]).resolve())
            events.setdefault(key, []).append((float(r["onset"]), float(r["offset"])))
    source = args.bench / "train" / "train_00.wav"
    calls = [
        (float(r["onset"]), float(r["offset"]))
        for r in rows
        if r["file"] == "train/train_00.wav" and r["label"] == "wolf"
    ]
    audio = load_audio(source)

    def precision(hits: list[Hit]) -> float:
        found = sum(any(h.start < b and h.end > a for a, b in events.get(h.file, [])) for h in hits)
        return found / len(hits)

    table: dict[str, list[float]] = {}
    for onset, offset in calls:
        t = (onset + offset) / 2
        for length in (*args.lengths, None):
            if length is None:
                name, example = "whole recording", Example(str(source), t)
            else:
                a = max(0.0, t - length / 2)
                clip = args.out / f"clip-{onset:.0f}-{length:g}.wav"
                sf.write(clip, audio[round(a * 16000) : round((a + length) * 16000)], 16000)
                name, example = f"{length:g} s clip", Example(str(clip), t - a)
            table.setdefault(name, []).append(precision(index.search(example, top=args.top)))
    for name, values in table.items():
        shown = " · ".join(f"{v:.2f}" for v in values)
        print(f"{name}: {shown} (mean {statistics.mean(values):.3f})")


if __name__ == "__main__":
    main()

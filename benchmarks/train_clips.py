"""Training on clips of the sound: does a short clip teach the scanner anything?

Trains LOGMEL scanners (no augmentation) on the wolf bench's ``train/train_00.wav``
(its five marked calls) alone, and with clips centred on each marked call of the
other training recordings (15 clips, each its own training recording), with the
default per-recording normalisation and with none; scans the test split and prints
the calls found, false positives and event F1 (IoU >= 0.3, one to one).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_clips.py /work/wolf-bench OUT
    (--lengths 1.5,3: the clip lengths in seconds)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from audio_embed import Markers, Recording, Scanner, read_markers
from audio_embed.evaluation import evaluate_results, read_labelled_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path)
    ap.add_argument("out", type=Path, help="a folder for the clips")
    ap.add_argument(
        "--lengths",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        default=(1.5, 3.0),
        help="clip lengths in seconds, comma-separated (default: 1.5,3)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    markers = read_markers(args.bench / "markers.csv")
    first = [Recording(f, m) for f, m in markers.items() if f.endswith("train_00.wav")]
    labelled = read_labelled_set(args.bench / "labels.csv", "wolf", split="test")

    def measure(name: str, recs: list[Recording], normalization: str) -> None:
        scanner = Scanner.from_name("LOGMEL", normalization=normalization, augmentation=None)
        scanner.fit(recs)
        results = {str(f): scanner.scan(f) for f in labelled.files}
        ev = evaluate_results(results, labelled, threshold=scanner.scan_threshold).overall
        print(
            f"{name:<28} {normalization:<9} threshold {scanner.scan_threshold:.2f}: "
            f"{ev.n_found}/{ev.n_events} found, {ev.n_false_positives} false positive(s), "
            f"F1 {ev.f1:.3f}",
            flush=True,
        )

    for normalization in ("recording", "none"):
        measure("train_00.wav alone", first, normalization)
    for length in args.lengths:
        clips = []
        for file, m in markers.items():
            if file.endswith("train_00.wav"):
                continue
            audio, rate = sf.read(file, dtype="float32")
            for i, t in enumerate(m.positive):
                a = max(0, int((t - length / 2) * rate))
                path = args.out / f"{Path(file).stem}_{i}_{length:g}s.wav"
                sf.write(path, audio[a : a + int(length * rate)], rate)
                clips.append(Recording(str(path), Markers(positive=(t - a / rate,))))
        for normalization in ("recording", "none"):
            measure(f"+ {len(clips)} clips of {length:g} s", first + clips, normalization)


if __name__ == "__main__":
    main()

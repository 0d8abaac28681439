r"""How LOGMEL detections hold up when the recording to scan is quieter than the
training ones (README "Errors and limits", "a recording much quieter …").

Makes the demo's data set (``audio-embed demo``'s: ``make_demo_set`` with seed 0,
3 training and 2 test recordings of 120 s, 5 horns each), trains the demo's scanner
(LOGMEL, the library's defaults) on its markers, then scans ``test/test_00.wav``
rescaled by each gain, written as float WAV (no quantisation) and as 16-bit WAV, and
counts the labelled horns a detection overlaps (of 5) and the detections:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loudness.py [--set floor=1e-10]

``--set KEY=VALUE`` passes a keyword to the LOGMEL embedder (repeatable). One JSON
row per gain and format.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audio_embed import Recording, Scanner, create_embedder, load_audio, read_markers
from audio_embed.demo import SR, make_demo_set, write_wav
from audio_embed.evaluation import read_labelled_set


def _setting(item: str) -> tuple[str, Any]:
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gains", default="0,-6,-20,-30,-40,-60", help="dB, comma-separated")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--file", default="test/test_00.wav", help="the demo recording to rescale")
    args = ap.parse_args(argv)
    kwargs = dict(_setting(s) for s in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        demo = make_demo_set(root / "demo")
        embedder = create_embedder("LOGMEL", **kwargs)
        scanner = Scanner(embedder)
        markers = read_markers(demo.markers_csv)
        scanner.fit([Recording(f, m) for f, m in sorted(markers.items())])
        labelled = read_labelled_set(demo.labels_csv, "horn", split="test")
        horns = next(v for k, v in labelled.events.items() if str(k).endswith(args.file))
        audio = load_audio(root / "demo" / args.file)
        for gain in (float(g) for g in args.gains.split(",")):
            scaled = (audio * 10 ** (gain / 20)).astype(np.float32)
            for fmt in ("float", "pcm16"):
                path = root / f"{fmt}_{gain:g}.wav"
                if fmt == "float":
                    sf.write(path, scaled, SR, subtype="FLOAT")
                else:
                    write_wav(path, scaled, SR)
                dets = scanner.scan(path).detections()
                found = sum(any(d.start < b and d.end > a for d in dets) for a, b in horns)
                row = {
                    "gain_db": gain,
                    "format": fmt,
                    "horns_found": found,
                    "horns": len(horns),
                    "detections": len(dets),
                    "threshold": round(scanner.scan_threshold, 4),
                    "floor": getattr(embedder, "floor", None),
                    **kwargs,
                }
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

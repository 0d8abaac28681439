"""Encode a bench's ``.wav`` test recordings as 16 kHz mono MP3 (LAME through PyAV),
for ``benchmarks/wolf.py --test-dirs`` (README, "Errors and limits": recordings whose
codec cut the highs).

    .venv/bin/python benchmarks/encode_mp3.py wolf-bench OUT [--kbps 64,24]

writes ``OUT/mp3-64/test/test_02.mp3``, … (keep OUT outside the repository).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

from audio_embed import load_audio


def encode(wav: Path, out: Path, kbps: int) -> None:
    """``wav`` decoded at 16 kHz mono, as an MP3 of ``kbps`` kbit/s at ``out``."""
    pcm = (np.clip(load_audio(wav), -1, 1) * 32767).astype(np.int16)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libmp3lame", rate=16000, layout="mono")
        stream.bit_rate = kbps * 1000
        for i in range(0, len(pcm), 16000):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 16000], "s16", "mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bench", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--kbps", default="64,24", help="bit rates, e.g. 64,24")
    args = ap.parse_args()
    for kbps in (int(k) for k in args.kbps.split(",")):
        folder = args.out / f"mp3-{kbps}" / "test"
        folder.mkdir(parents=True, exist_ok=True)
        for wav in sorted((args.bench / "test").glob("*.wav")):
            encode(wav, folder / f"{wav.stem}.mp3", kbps)
            print(folder / f"{wav.stem}.mp3")


if __name__ == "__main__":
    main()

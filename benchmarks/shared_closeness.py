"""How close shared-context vectors are to per-window ones, and why.

Real-size models with random weights (benchmarks/models.py), a 60 s synthetic
recording, 8 s / 1 s windows. Three cosines per model:

* shared vs per-window (what the speed benchmark reports);
* per-window pooled over the window's own frames only vs per-window
  (what padding a short clip to the model's input length costs);
* shared vs per-window pooled over its own frames (what other position
  codes and more context cost).

    python benchmarks/shared_closeness.py EAT AST
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from models import MODELS, synth_audio

from audio_embed.embedders.base import LayeredEmbedder
from audio_embed.windows import SlidingWindows

SR = 16000


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return out


def own_frames(embedder: LayeredEmbedder, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each window encoded alone, pooled over the frames of its own audio (no padding)."""
    geometry = embedder.frame_geometry()
    assert geometry is not None
    rows = []
    for start in starts:
        a = round(float(start) * SR)
        piece = torch.from_numpy(np.ascontiguousarray(audio[a : a + 8 * SR]))[None]
        with torch.inference_mode():
            (frames,) = embedder.frame_states(piece)
        n = (piece.shape[1] - geometry.field) // geometry.hop + 1
        rows.append(frames[0, :n].mean(0).numpy())
    return np.stack(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", choices=[m for m in MODELS if m != "LOGMEL"])
    args = ap.parse_args(argv)
    audio = synth_audio(60.0, seed=1)
    starts = SlidingWindows(8.0, 1.0).starts(len(audio) / SR)
    for name in args.models:
        embedder = MODELS[name]()
        if not isinstance(embedder, LayeredEmbedder):
            raise SystemExit(f"{name} is not a layered model with frame hooks")
        shared = embedder.embed_windows(audio, starts, 8.0, encoding="shared")
        per_window = embedder.embed_windows(audio, starts, 8.0)
        own = own_frames(embedder, audio, starts)
        for label, (x, y) in {
            "shared vs per-window": (shared, per_window),
            "per-window own frames vs per-window (padding)": (own, per_window),
            "shared vs per-window own frames (positions, context)": (shared, own),
        }.items():
            c = cosine(x, y)
            print(f"{name}: {label}: mean {c.mean():.4f} min {c.min():.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

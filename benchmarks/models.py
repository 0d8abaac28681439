"""Real-size models with random weights (nothing is downloaded) for the benchmarks.

Speed depends on the architecture, not on the weights, so random weights give
the real throughput. Detection quality with random weights means nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audio_embed.embedders.base import Embedder
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.embedders.torchaudio import TorchaudioEmbedder
from audio_embed.scanner import Scanner
from audio_embed.windows import SlidingWindows

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def _seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)


def hubert_base() -> Embedder:
    import torchaudio

    _seeded()
    return TorchaudioEmbedder(model=torchaudio.models.hubert_base(), name="HUBERT_BASE")


def hubert_base_ml() -> Embedder:
    return MultiLayerEmbedder(hubert_base(), layers="quartiles")


def wav2vec2_base() -> Embedder:
    import torchaudio

    _seeded()
    return TorchaudioEmbedder(model=torchaudio.models.wav2vec2_base(), name="WAV2VEC2_BASE")


def beats() -> Embedder:
    from audio_embed.embedders.beats import BEATsEmbedder

    cfg = json.loads((DATA / "beats_base_schema.json").read_text())["cfg"]
    return BEATsEmbedder.from_config(cfg, seed=0)


def ast() -> Embedder:
    from transformers import ASTConfig, ASTModel

    from audio_embed.embedders.ast import ASTEmbedder

    _seeded()
    return ASTEmbedder(model=ASTModel(ASTConfig()).eval())


def eat() -> Embedder:
    from audio_embed.embedders.eat import EATConfig, EATEmbedder

    return EATEmbedder.from_config(EATConfig(), seed=0)


def logmel() -> Embedder:
    return LogMelEmbedder()


MODELS: dict[str, Callable[[], Embedder]] = {
    "HUBERT_BASE": hubert_base,
    "HUBERT_BASE_ML": hubert_base_ml,
    "WAV2VEC2_BASE": wav2vec2_base,
    "AST": ast,
    "EAT": eat,
    "BEATS": beats,
    "LOGMEL": logmel,
}


#: The original application's scan: every window encoded on its own, 16 per batch.
ORIGINAL_BATCH = 16


def original_scanner(embedder: Embedder, **kwargs: Any) -> Scanner:
    """A scanner that scans the original application's way, through the public API:
    per-window encoding (every window encoded alone), batches of 16."""
    return Scanner(
        embedder,
        scan_windows=SlidingWindows(8.0, 1.0, "per_window"),
        batch_size=ORIGINAL_BATCH,
        **kwargs,
    )


def shared_scanner(embedder: Embedder, **kwargs: Any) -> Scanner:
    """A scanner with shared-context encoding (models without frames: per window)."""
    return Scanner(embedder, scan_windows=SlidingWindows(8.0, 1.0, "shared"), **kwargs)


def random_scanner(embedder: Embedder) -> Scanner:
    """A default :class:`Scanner` of ``embedder`` whose classifier is fitted on random
    vectors of its feature size (speed does not depend on what it learnt)."""
    from audio_embed.classifier import CalibratedClassifier

    scanner = Scanner(embedder)
    # The classifier sees each window's embedding and, with context, its
    # difference from the windows around it.
    n_features = embedder.dim * (2 if scanner.context > 0 else 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, n_features)).astype(np.float32)
    y = np.r_[np.ones(40), np.zeros(160)].astype(int)
    x[y == 1] += 0.5
    scanner.classifier = CalibratedClassifier().fit(x, y)
    return scanner


def synth_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """A recording-like signal: a fluctuating noise floor with tonal and noisy events."""
    from audio_embed.demo import synth_recording

    rng = np.random.default_rng(seed)
    pieces = []
    left = seconds
    while left > 0:  # in 10-minute pieces, so long files do not need much memory
        part = min(left, 600.0)
        n_events = max(1, int(part // 8))
        audio, _, _ = synth_recording(max(part, 16.0), n_events // 3, n_events - n_events // 3, rng)
        pieces.append(audio[: round(part * 16000)])
        left -= part
    return np.concatenate(pieces)


def write_recording(path: Path, seconds: float, seed: int = 0) -> Path:
    """Write ``seconds`` of :func:`synth_audio` as a 16 kHz 16-bit WAV, 10 minutes at a time."""
    import wave

    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(16000)
        left, piece = seconds, 0
        while left > 0:
            part = min(left, 600.0)
            audio = synth_audio(part, seed=seed + piece)
            fh.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
            left -= part
            piece += 1
    return path

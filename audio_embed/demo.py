"""A small labelled set of recordings built from sounds synthesised on the spot.

Used by ``audio-embed demo`` and by the tests: it needs no download. The
target is a two-note horn with harmonics; the distractors are beeps of other
pitches, noise bursts, click trains and frequency sweeps, over a fluctuating
noise floor.
"""

from __future__ import annotations

import csv
import os
import wave
from pathlib import Path

import numpy as np
from attrs import frozen

from audio_embed.errors import InvalidInputError

__all__ = ["DemoSet", "horn", "make_demo_set", "synth_recording", "write_wav"]

SR = 16000


def _envelope(n: int, attack: float = 0.02, release: float = 0.05) -> np.ndarray:
    env = np.ones(n)
    a, r = max(1, int(attack * SR)), max(1, int(release * SR))
    env[:a] = np.linspace(0, 1, a)
    env[-r:] = np.linspace(1, 0, r)
    return env


def horn(rng: np.random.Generator) -> np.ndarray:
    """The target: two notes (a rising fourth) with five harmonics, ~1 s."""
    base = rng.uniform(330, 370)
    seg = int(0.45 * SR)
    t = np.arange(seg) / SR
    out = []
    for f0 in (base, base * 4 / 3):
        note = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
        out.append(note * _envelope(seg))
    x: np.ndarray = np.concatenate(out)
    return np.asarray(x / np.abs(x).max(), dtype=np.float32)


def _distractor(rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(4)
    n = int(rng.uniform(0.3, 1.2) * SR)
    t = np.arange(n) / SR
    if kind == 0:  # a pure beep at another pitch
        x = np.sin(2 * np.pi * rng.uniform(900, 3000) * t)
    elif kind == 1:  # a noise burst
        x = rng.standard_normal(n)
    elif kind == 2:  # a click train
        x = np.zeros(n)
        x[:: int(SR / rng.uniform(8, 30))] = 1.0
        x = np.convolve(x, np.hanning(32), mode="same")
    else:  # a sweep
        f = np.linspace(rng.uniform(200, 800), rng.uniform(1500, 5000), n)
        x = np.sin(2 * np.pi * np.cumsum(f) / SR)
    x = x * _envelope(n)
    return np.asarray(x / (np.abs(x).max() + 1e-9), dtype=np.float32)


def synth_recording(
    seconds: float, n_targets: int, n_distractors: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[float, float]], list[tuple[float, float]]]:
    """One recording: audio, target (onset, offset) events and distractor events."""
    slots_available = np.arange(2, int(seconds) - 3, 4)
    if n_targets + n_distractors > len(slots_available):
        raise InvalidInputError(
            f"A {seconds:g} s demo recording has room for {len(slots_available)} events (one "
            f"per 4 s); asked for {n_targets} targets and {n_distractors} distractors."
        )
    n = int(seconds * SR)
    # a slowly fluctuating, slightly low-passed noise floor
    noise = np.convolve(rng.standard_normal(n), np.ones(4) / 4, mode="same")
    level = 0.02 * (1 + 0.5 * np.sin(2 * np.pi * np.arange(n) / (SR * rng.uniform(20, 60))))
    audio: np.ndarray = (noise * level).astype(np.float32)
    slots = np.sort(rng.choice(slots_available, n_targets + n_distractors, replace=False))
    kinds = rng.permutation([1] * n_targets + [0] * n_distractors)
    targets: list[tuple[float, float]] = []
    others: list[tuple[float, float]] = []
    for slot, is_target in zip(slots, kinds, strict=True):
        onset = float(slot + rng.uniform(0, 1.5))
        clip = horn(rng) if is_target else _distractor(rng)
        a = int(onset * SR)
        clip = clip[: n - a] * rng.uniform(0.1, 0.3)
        audio[a : a + len(clip)] += clip
        (targets if is_target else others).append((onset, onset + len(clip) / SR))
    return audio, targets, others


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM WAV (standard library ``wave``)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(sample_rate)
        fh.writeframes(pcm.tobytes())


@frozen
class DemoSet:
    """Where :func:`make_demo_set` wrote things."""

    root: Path
    train_files: list[Path]
    test_files: list[Path]
    markers_csv: Path
    labels_csv: Path


def make_demo_set(
    root: str | os.PathLike[str],
    *,
    n_train: int = 3,
    n_test: int = 2,
    seconds: float = 120.0,
    targets_per_file: int = 5,
    distractors_per_file: int = 10,
    seed: int = 0,
) -> DemoSet:
    """Write train/test WAV files, ``markers.csv`` (one positive marker per
    training target, at its midpoint) and ``labels.csv`` (every event of every
    file: ``split,file,onset,offset,label``)."""
    rng = np.random.default_rng(seed)
    out = Path(root)
    paths: dict[str, list[Path]] = {"train": [], "test": []}
    marker_rows: list[tuple[str, float, str]] = []
    label_rows: list[tuple[str, str, float, float, str]] = []
    for split, count in (("train", n_train), ("test", n_test)):
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            audio, targets, others = synth_recording(
                seconds, targets_per_file, distractors_per_file, rng
            )
            rel = f"{split}/{split}_{i:02d}.wav"
            write_wav(out / rel, audio, SR)
            paths[split].append(out / rel)
            for a, b in targets:
                label_rows.append((split, rel, a, b, "horn"))
                if split == "train":
                    marker_rows.append((rel, round((a + b) / 2, 3), "positive"))
            for a, b in others:
                label_rows.append((split, rel, a, b, "other"))
    with (out / "markers.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "time", "kind"])
        w.writerows(marker_rows)
    with (out / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "file", "onset", "offset", "label"])
        label_rows.sort(key=lambda r: (r[1], r[2]))
        w.writerows(label_rows)
    return DemoSet(
        root=out,
        train_files=paths["train"],
        test_files=paths["test"],
        markers_csv=out / "markers.csv",
        labels_csv=out / "labels.csv",
    )

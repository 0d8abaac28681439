"""Scanner.adapt: self-training on the recordings to be scanned (pseudo-labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio_embed import LogMelEmbedder
from audio_embed.cache import CachedEmbeddings
from audio_embed.demo import synth_recording, write_wav
from audio_embed.detect import Postprocessing
from audio_embed.errors import InvalidInputError, TrainingDataError
from audio_embed.scanner import Recording, Scanner
from audio_embed.scanner.adapt import pseudo_labels
from audio_embed.windows import Markers, TargetedWindows

SR = 16000


def _variant(rng: np.random.Generator, ratio: float) -> np.ndarray:
    """The demo horn (two notes, a rising fourth, five harmonics) ``ratio`` times higher:
    another take of the target that the training recordings do not hold."""
    base = rng.uniform(330, 370) * ratio
    t = np.arange(int(0.45 * SR)) / SR
    env = np.minimum(1.0, np.minimum(t / 0.02, (t[-1] - t) / 0.05))
    notes = [sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * env
             for f0 in (base, base * 4 / 3)]  # fmt: skip
    x = np.concatenate(notes)
    return np.asarray(x / np.abs(x).max(), dtype=np.float32)


def _scanned(seed: int, seconds: float = 90.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Distractors plus five occurrences of the variant, away from them."""
    rng = np.random.default_rng(seed)
    audio, _, others = synth_recording(seconds, 0, 8, rng)
    free = [t for t in np.arange(2.0, seconds - 3, 4.0) if all(abs(t - a) > 2.5 for a, _ in others)]
    events = []
    for t in sorted(rng.choice(free, 5, replace=False)):
        clip = _variant(rng, 1.2) * 0.25
        a = int(t * SR)
        audio[a : a + len(clip)] += clip
        events.append((float(t), float(t) + len(clip) / SR))
    return audio, events


@pytest.fixture(scope="module")
def training() -> list[Recording]:
    recs = []
    for seed in (21, 22):
        audio, targets, _ = synth_recording(60.0, 4, 6, np.random.default_rng(seed))
        recs.append(Recording(audio, Markers(positive=[a + 0.3 for a, _ in targets]), SR))
    return recs


@pytest.fixture(scope="module")
def trained(training: list[Recording]) -> Scanner:
    # A fixed threshold: what changes below is the ranking, not the threshold.
    return Scanner(LogMelEmbedder(), seed=0).fit(training, threshold=0.8)


def _peaks_and_hits(scanner: Scanner, audio: np.ndarray, events: list[tuple[float, float]]) -> Any:
    r = scanner.scan(audio, sample_rate=SR)
    centres = r.starts + r.window / 2
    peaks = np.array([r.probabilities[(centres >= a) & (centres <= b)].max() for a, b in events])
    dets = r.detections()
    hits = sum(any(d.start < b and a < d.end for d in dets) for a, b in events)
    return r, peaks, hits


def test_adapting_finds_the_other_occurrences_of_an_unmarked_take(trained: Scanner) -> None:
    audio, events = _scanned(5)
    before, peaks_before, hits_before = _peaks_and_hits(trained, audio, events)
    adapted = trained.adapt([audio], sample_rate=SR, top=1)
    after, peaks_after, hits_after = _peaks_and_hits(adapted, audio, events)
    info = (adapted.training_summary or {})["adaptation"]
    assert info["pseudo_positive_markers"] == 1 and info["first_scan_detections"] >= 1
    assert hits_after >= hits_before + 2
    # The occurrences that were not pseudo-labelled rise more than the noise does.
    labelled = int(np.argmax(peaks_before))
    others = np.delete(np.arange(len(events)), labelled)
    rise = peaks_after[others] - peaks_before[others]
    centres = before.starts + before.window / 2
    far = np.ones(len(centres), dtype=bool)
    for a, b in events:
        far &= (centres < a - 1.0) | (centres > b + 1.0)
    noise_rise = np.quantile(after.probabilities[far], 0.99) - np.quantile(
        before.probabilities[far], 0.99
    )
    assert rise.min() > 0 and rise.mean() > noise_rise + 0.05


def test_adapt_leaves_the_original_unchanged_and_is_deterministic(
    trained: Scanner, training: list[Recording]
) -> None:
    audio, _ = _scanned(6)
    summary = dict(trained.training_summary or {})
    classifier, threshold = trained.classifier, trained.scan_threshold
    scores = trained.scan(audio, sample_rate=SR).probabilities
    a = trained.adapt([audio], sample_rate=SR, top=2, rounds=2)
    b = trained.adapt([audio], sample_rate=SR, top=2, rounds=2)
    assert trained.classifier is classifier and trained.scan_threshold == threshold
    assert trained.training_summary == summary and "adaptation" not in summary
    np.testing.assert_array_equal(trained.scan(audio, sample_rate=SR).probabilities, scores)
    assert a is not trained and a.classifier is not classifier
    np.testing.assert_array_equal(
        a.scan(audio, sample_rate=SR).probabilities, b.scan(audio, sample_rate=SR).probabilities
    )
    info = (a.training_summary or {})["adaptation"]
    assert info["rounds"] == 2 and info["top"] == 2 and info["recordings"] == 1
    assert info["pseudo_positive_markers"] <= 2
    assert (a.training_summary or {})["files"] == summary["files"]  # the marked recordings


def test_adapt_chooses_the_threshold_again_when_fit_did(training: list[Recording]) -> None:
    audio, _ = _scanned(7)
    auto = Scanner(LogMelEmbedder(), seed=0).fit(training)
    adapted = auto.adapt([audio], sample_rate=SR)
    th = (adapted.training_summary or {})["threshold"]
    assert th["method"] == "leave-one-recording-out" and 0.0 < adapted.scan_threshold < 1.0


def test_adapt_rejects_bad_arguments(
    trained: Scanner, training: list[Recording], tmp_path: Path
) -> None:
    audio = (np.random.default_rng(8).standard_normal(20 * SR) * 0.01).astype(np.float32)
    for kwargs in ({"top": 0}, {"rounds": 0}, {"top": 1.5}, {"rounds": True},
                   {"negative_quantile": 1.5}, {"negative_quantile": float("nan")}):  # fmt: skip
        with pytest.raises(InvalidInputError, match=r"Scanner\.adapt"):
            trained.adapt([audio], sample_rate=SR, **kwargs)
    with pytest.raises(InvalidInputError, match="at least one"):
        trained.adapt([])
    wav = tmp_path / "train.wav"
    write_wav(wav, np.asarray(training[0].source), SR)
    on_file = Scanner(LogMelEmbedder()).fit([Recording(wav, training[0].markers)], threshold=0.5)
    with pytest.raises(InvalidInputError, match="training recording"):
        on_file.adapt([wav])
    on_file.save(tmp_path / "s.scanner")
    with pytest.raises(TrainingDataError, match="fit"):
        Scanner.load(tmp_path / "s.scanner").adapt([audio], sample_rate=SR)


def test_pseudo_labels_take_the_best_detections_and_far_low_negatives() -> None:
    starts = np.arange(0.0, 59.0 + 1e-9, 0.1)
    scores = np.full(len(starts), 0.05)
    scores[: len(starts) // 2] = 0.02  # the first half scores lower
    for at, height in ((10.0, 0.9), (30.0, 0.7), (50.0, 0.95)):  # three bumps
        scores[np.abs(starts + 0.5 - at) < 0.5] = height
    entry = CachedEmbeddings(starts, np.zeros((len(starts), 2), np.float32), 60.0)
    tw = TargetedWindows(1.0, hop=0.1)
    out = pseudo_labels(
        entry, scores, window=1.0, threshold=0.5, postprocessing=Postprocessing(),
        train_windows=tw, top=2, negative_quantile=0.5,
    )  # fmt: skip
    assert out.detections == 3
    assert sorted(round(p) for p in out.peaks) == [10, 50]  # the two best
    pos = starts[out.index[out.labels == 1]]
    assert all(any(s <= p <= s + 1.0 for p in out.peaks) for s in pos) and len(pos) > 0
    neg = starts[out.index[out.labels == 0]]
    assert len(neg) > 0
    assert np.all(scores[out.index[out.labels == 0]] <= np.quantile(scores, 0.5))
    # No negative window comes near the third detection (soft) nor the two positives.
    for t in (10.0, 30.0, 50.0):
        assert not np.any((neg + 1.0 > t - 7.5) & (neg < t + 7.5))
    none = pseudo_labels(
        entry, np.zeros(len(starts)), window=1.0, threshold=0.5,
        postprocessing=Postprocessing(), train_windows=tw, top=1, negative_quantile=0.5,
    )  # fmt: skip
    assert none.detections == 0 and len(none.index) == 0

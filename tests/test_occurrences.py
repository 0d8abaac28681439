"""From one marker up: never a constant classifier; the automatic threshold; ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audio_embed import LogMelEmbedder, TrainingDataError
from audio_embed.classifier import CalibratedClassifier, PrototypeClassifier
from audio_embed.demo import synth_recording
from audio_embed.scanner import Recording, Scanner
from audio_embed.threshold import fold_plan
from audio_embed.windows import Markers

SR = 16000


def _separable(n: int, n_pos: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8))
    y = np.zeros(n, dtype=int)
    y[:n_pos] = 1
    x[:n_pos] += 2.0  # perfectly learnable, as in the report
    return x, y


@pytest.mark.parametrize("n_pos", [1, 2, 3, 5, 12, 40, 120])
def test_the_default_classifier_is_never_constant(n_pos: int) -> None:
    x, y = _separable(max(40, 4 * n_pos), n_pos)
    clf = CalibratedClassifier().fit(x, y)
    p = clf.score_windows(x)
    assert np.ptp(p) > 1e-6
    assert p[y == 1].mean() > p[y == 0].mean()  # and it points the right way
    assert clf.summary_["estimator_choice"].startswith("auto: ")
    assert clf.summary_["calibration_note"]  # says what happened to calibration


def test_calibration_that_cannot_run_is_reported() -> None:
    x, y = _separable(40, 3)
    clf = CalibratedClassifier().fit(x, y)
    assert clf.calibration_ is None
    assert "calibration skipped" in clf.summary_["calibration_note"]


def test_windows_that_cannot_be_told_apart_fail_loudly() -> None:
    x = np.ones((30, 4))
    y = np.array([1] * 10 + [0] * 20)
    with pytest.raises(TrainingDataError, match="same probability"):
        CalibratedClassifier().fit(x, y)


def test_prototype_scores_by_similarity_to_the_positives() -> None:
    x, y = _separable(60, 4, seed=3)
    proto = PrototypeClassifier().fit(x, y)
    p = proto.predict_proba(x)
    assert p.shape == (60, 2) and np.allclose(p.sum(axis=1), 1.0)
    assert p[y == 1, 1].min() > np.median(p[y == 0, 1])


@given(st.lists(st.integers(0, 6), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_fold_plan_holds_out_every_marker_once(counts: list[int], seed: int) -> None:
    plan = fold_plan(counts, seed)
    assert plan == fold_plan(counts, seed)  # reproducible with a seed
    held = [pair for fold in plan for pair in fold]
    if plan:
        assert sorted(held) == sorted({(i, k) for i, n in enumerate(counts) for k in range(n)})
    else:  # nothing to hold out: at most one positive marker in all
        assert sum(1 for n in counts if n > 0) <= 1 and max(counts) <= 1


def _recording(seed: int, seconds: float = 60.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    audio, targets, _ = synth_recording(seconds, 4, 6, np.random.default_rng(seed))
    return audio, targets


def test_one_marker_ranks_the_other_occurrences_above_the_noise() -> None:
    train, t_train = _recording(11)
    test, t_test = _recording(12)
    first = t_train[0][0] + 0.3
    scanner = Scanner(LogMelEmbedder()).fit(
        [Recording(train, Markers(positive=[first]), sample_rate=SR)]
    )
    summary = scanner.training_summary or {}
    assert "prototype" in summary["classifier_estimator_choice"]
    assert 0.0 < scanner.scan_threshold < 1.0
    assert summary["threshold"]["method"] == "from training scores"
    result = scanner.scan(test, sample_rate=SR)
    centres = result.starts + result.window / 2
    near = np.zeros(len(centres), dtype=bool)
    for a, b in t_test:
        near |= (centres > a - 1.0) & (centres < b + 1.0)
    noise_top = np.quantile(result.probabilities[~near], 0.95)
    for a, b in t_test:
        inside = (centres >= a) & (centres <= b)
        assert result.probabilities[inside].max() > noise_top


def test_auto_threshold_is_reproducible_and_reported() -> None:
    recs = []
    for seed in (21, 22):
        audio, targets = _recording(seed)
        recs.append(Recording(audio, Markers(positive=[a + 0.3 for a, _ in targets]), SR))

    def fit(seed: int) -> Scanner:
        return Scanner(LogMelEmbedder(), seed=seed).fit(recs)

    a, b = fit(3), fit(3)
    assert a.scan_threshold == b.scan_threshold
    assert 0.0 < a.scan_threshold < 1.0
    th = (a.training_summary or {})["threshold"]
    assert th["method"] == "leave-one-recording-out" and th["folds"] == 2
    assert 0.0 <= th["cv_f1"] <= 1.0
    # One recording: folds over its markers.
    one = Scanner(LogMelEmbedder(), seed=3).fit(recs[:1])
    assert (one.training_summary or {})["threshold"]["method"] == "folds over markers"
    # A given threshold is used as is.
    given_ = Scanner(LogMelEmbedder()).fit(recs[:1], threshold=0.42)
    assert given_.scan_threshold == 0.42
    assert (given_.training_summary or {})["threshold"]["method"] == "given"


def test_scanner_rejects_a_bad_threshold() -> None:
    from audio_embed.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="threshold"):
        Scanner(LogMelEmbedder(), threshold=1.5)
    with pytest.raises(InvalidInputError, match="threshold"):
        Scanner(LogMelEmbedder(), threshold="best")  # type: ignore[arg-type]


def test_marked_spans_train_and_choose_the_threshold() -> None:
    audio, targets = _recording(31)
    rec = Recording(audio, Markers(spans=targets), SR)
    scanner = Scanner(LogMelEmbedder(), seed=1).fit([rec])
    th = (scanner.training_summary or {})["threshold"]
    assert th["method"] == "folds over markers" and th["cv_f1"] is not None
    test, t_test = _recording(32)
    dets = scanner.scan(test, sample_rate=SR).detections()
    found = sum(any(d.start < b and a < d.end for d in dets) for a, b in t_test)
    assert found >= len(t_test) - 1

"""CalibratedClassifier: a real scikit-learn estimator."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.errors import TrainingDataError


def blobs(n_pos: int, n_neg: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(1.5, 1, (n_pos, 5)), rng.normal(-1.5, 1, (n_neg, 5))])
    return x, np.array([1] * n_pos + [0] * n_neg)


@parametrize_with_checks(
    [CalibratedClassifier(make_base_estimator("logreg"), calibration=None, max_neg_ratio=None)]
)
def test_sklearn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_clone_and_params() -> None:
    clf = CalibratedClassifier(max_neg_ratio=2.0, calibration="sigmoid")
    params = clone(clf).get_params()
    assert params["max_neg_ratio"] == 2.0 and params["calibration"] == "sigmoid"


def test_negatives_are_subsampled_reproducibly() -> None:
    x, y = blobs(20, 500)
    a = CalibratedClassifier(max_neg_ratio=3.0).fit(x, y)
    b = CalibratedClassifier(max_neg_ratio=3.0).fit(x, y)
    assert a.summary_["n_negative"] == 60 and a.summary_["n_negative_available"] == 500
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert CalibratedClassifier(max_neg_ratio=None).fit(x, y).summary_["n_negative"] == 500


def test_isotonic_calibration_used_with_enough_samples() -> None:
    x, y = blobs(30, 90)
    clf = CalibratedClassifier().fit(x, y)
    assert clf.calibration_ == "isotonic"
    assert isinstance(clf.estimator_, CalibratedClassifierCV)
    p = clf.predict_proba(x)
    assert p.shape == (120, 2) and np.all((p >= 0) & (p <= 1))
    assert (clf.predict(x) == y).mean() > 0.9


def test_calibration_skipped_with_few_samples(caplog: pytest.LogCaptureFixture) -> None:
    x, y = blobs(4, 40)
    with caplog.at_level(logging.INFO, logger="audio_embed.classifier"):
        clf = CalibratedClassifier().fit(x, y)
    assert clf.calibration_ is None
    assert "fewer than 6" in clf.summary_["calibration_note"]
    assert "calibration skipped" in caplog.text


@pytest.mark.parametrize("labels", [[1] * 10, [0] * 10])
def test_one_class_is_a_clear_error(labels: list[int]) -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(TrainingDataError, match="only one class") as info:
        CalibratedClassifier().fit(x, labels)
    n_pos = sum(labels)
    assert f"{n_pos} positive and {10 - n_pos} negative" in str(info.value)


def test_bad_parameters_raise_in_fit() -> None:
    x, y = blobs(10, 10)
    with pytest.raises(ValueError, match="calibration"):
        CalibratedClassifier(calibration="platt").fit(x, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_neg_ratio"):
        CalibratedClassifier(max_neg_ratio=0).fit(x, y)


def test_any_estimator_with_predict_proba() -> None:
    x, y = blobs(30, 60)
    clf = CalibratedClassifier(make_base_estimator("logreg"), calibration="sigmoid").fit(x, y)
    assert clf.calibration_ == "sigmoid" and (clf.predict(x) == y).mean() > 0.9


def test_fit_draws_averages_one_model_per_training_set() -> None:
    draws = [blobs(40, 200, seed=k) for k in range(3)]
    clf = CalibratedClassifier().fit_draws(draws)
    singles = [CalibratedClassifier().fit(x, y) for x, y in draws]
    x = blobs(30, 30, seed=9)[0]
    want = np.mean([m.predict_proba(x) for m in singles], axis=0)
    np.testing.assert_allclose(clf.predict_proba(x), want, rtol=0, atol=1e-12)
    assert clf.summary_["draws"] == 3
    assert clf.summary_["n_positive_per_draw"] == [40, 40, 40]
    one = CalibratedClassifier().fit_draws(draws[:1])
    np.testing.assert_array_equal(one.predict_proba(x), singles[0].predict_proba(x))
    assert "draws" not in one.summary_


def test_fit_draws_refuses_training_sets_that_disagree() -> None:
    x, y = blobs(40, 200)
    with pytest.raises(ValueError, match="at least one"):
        CalibratedClassifier().fit_draws([])
    with pytest.raises(ValueError, match="features"):
        CalibratedClassifier().fit_draws([(x, y), (x[:, :2], y)])
    with pytest.raises(ValueError, match="classes"):
        CalibratedClassifier().fit_draws([(x, y), (x, y + 1)])


def test_a_failed_fit_draws_leaves_the_fitted_classifier_as_it_was() -> None:
    x, y = blobs(40, 200)
    clf = CalibratedClassifier().fit(x, y)
    before = clf.predict_proba(x)
    labels = np.where(y == 1, "b", "a")
    with pytest.raises(ValueError, match="classes"):
        clf.fit_draws([(x, labels), (x, np.where(y == 1, "c", "a"))])
    assert list(clf.classes_) == [0, 1] and clf.n_features_in_ == 5
    np.testing.assert_array_equal(clf.predict_proba(x), before)


def test_fit_draws_checks_cancel_before_each_model() -> None:
    from audio_embed.errors import Cancelled
    from audio_embed.progress import CancelToken

    token = CancelToken()
    token.cancel()
    clf = CalibratedClassifier()
    with pytest.raises(Cancelled):
        clf.fit_draws([blobs(40, 200)], cancel=token)
    assert not hasattr(clf, "estimator_")

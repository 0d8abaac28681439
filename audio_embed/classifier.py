"""A calibrated binary classifier over window embeddings (a scikit-learn estimator)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data
from threadpoolctl import threadpool_limits

from audio_embed.errors import TrainingDataError

__all__ = ["CalibratedClassifier", "make_base_estimator"]

log = logging.getLogger(__name__)

#: Below this many samples in the smaller class, calibration is skipped.
MIN_CALIBRATION_SAMPLES = 6


def _single_threaded() -> Any:
    """Run scikit-learn's OpenMP code on one thread.

    The training sets here are small (hundreds to thousands of windows), where
    threads buy little; next to torch's own OpenMP pool on a busy CPU they spin
    against each other (HistGradientBoosting fits measured 6x slower on 2 cores).
    """
    return threadpool_limits(limits=1, user_api="openmp")


def make_base_estimator(kind: Literal["hgb", "logreg"] = "hgb", random_state: int = 42) -> Any:
    """The built-in base estimators: gradient boosting (default) or logistic regression."""
    if kind == "hgb":
        return HistGradientBoostingClassifier(
            max_iter=200, max_depth=5, learning_rate=0.1, random_state=random_state
        )
    if kind == "logreg":
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=random_state)
        )
    raise ValueError(f"The 'kind' of base estimator must be 'hgb' or 'logreg'. Got {kind!r}.")


class CalibratedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary classifier with negative subsampling and probability calibration.

    Args:
        estimator: any scikit-learn classifier with ``predict_proba``; None =
            ``HistGradientBoostingClassifier(max_iter=200, max_depth=5,
            learning_rate=0.1, random_state=42)``.
        max_neg_ratio: negatives are subsampled (seeded) to at most this many
            times the positives; None keeps them all.
        calibration: ``"isotonic"`` (default), ``"sigmoid"`` or None. Uses
            ``CalibratedClassifierCV(cv=min(3, n_pos, n_neg))``; skipped, with
            the reason logged, when the smaller class has fewer than 6 samples.
        random_state: seed of the subsampling.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``estimator_``,
    ``calibration_`` (the method used, or None) and ``summary_`` (counts).
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        max_neg_ratio: float | None = 3.0,
        calibration: Literal["isotonic", "sigmoid"] | None = "isotonic",
        random_state: int = 42,
    ) -> None:
        self.estimator = estimator
        self.max_neg_ratio = max_neg_ratio
        self.calibration = calibration
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X: Any, y: Any) -> CalibratedClassifier:
        """Fit on embeddings ``X`` [n, dim] and binary labels ``y``; returns ``self``."""
        if self.calibration not in ("isotonic", "sigmoid", None):
            raise ValueError(
                "The 'calibration' parameter of CalibratedClassifier must be 'isotonic', "
                f"'sigmoid' or None. Got {self.calibration!r} instead."
            )
        if self.max_neg_ratio is not None and not self.max_neg_ratio > 0:
            raise ValueError(
                "The 'max_neg_ratio' parameter of CalibratedClassifier must be > 0 or None. "
                f"Got {self.max_neg_ratio!r} instead."
            )
        X, y = check_X_y(X, y, dtype=np.float64)
        validate_data(self, X, reset=True, skip_check_array=True)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target "
                f"is {y_type} ({len(np.unique(y))} classes)."
            )
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            n_pos = int(np.sum(y == 1))
            raise TrainingDataError(
                f"Training needs both classes but only one class was found: {n_pos} positive "
                f"and {len(y) - n_pos} negative window(s). Mark at least one moment of the "
                "target sound (positive) and make sure the recordings also hold audio far "
                "from every marker (or mark negatives)."
            )
        self.classes_ = classes
        pos_idx = np.flatnonzero(y_idx == 1)
        neg_idx = np.flatnonzero(y_idx == 0)
        rng = np.random.default_rng(self.random_state)
        if self.max_neg_ratio is not None:
            cap = max(1, round(self.max_neg_ratio * len(pos_idx)))
            if len(neg_idx) > cap:
                neg_idx = np.sort(rng.choice(neg_idx, size=cap, replace=False))
        keep = np.concatenate([pos_idx, neg_idx])
        Xs, ys = X[keep], y_idx[keep]
        n_pos, n_neg = len(pos_idx), len(neg_idx)
        base = clone(self.estimator) if self.estimator is not None else make_base_estimator()
        smaller = min(n_pos, n_neg)
        self.calibration_: str | None = None
        if self.calibration is None:
            reason = "calibration disabled"
        elif smaller < MIN_CALIBRATION_SAMPLES:
            reason = (
                f"calibration skipped: the smaller class has {smaller} window(s), "
                f"fewer than {MIN_CALIBRATION_SAMPLES}"
            )
            log.info("%s", reason)
        else:
            reason = f"{self.calibration} calibration, cv={min(3, n_pos, n_neg)}"
            self.calibration_ = self.calibration
        if self.calibration_ is not None:
            model: Any = CalibratedClassifierCV(
                base, method=self.calibration_, cv=min(3, n_pos, n_neg)
            )
        else:
            model = base
        with _single_threaded():
            model.fit(Xs, ys)
        self.estimator_ = model
        final = base.steps[-1][1] if hasattr(base, "steps") else base
        self.summary_ = {
            "estimator": type(final).__name__,
            "n_positive": int(n_pos),
            "n_negative": int(n_neg),
            "n_negative_available": int((y_idx == 0).sum()),
            "calibration": self.calibration_,
            "calibration_note": reason,
        }
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``[n, 2]`` of the classes in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with _single_threaded():
            proba: np.ndarray = np.clip(self.estimator_.predict_proba(X), 0.0, 1.0)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        out: np.ndarray = self.classes_[(proba[:, 1] >= 0.5).astype(int)]
        return out

    def score_windows(self, X: Any) -> np.ndarray:
        """Probability of the positive class (``classes_[1]``) for each row."""
        proba: np.ndarray = self.predict_proba(X)[:, 1]
        return proba

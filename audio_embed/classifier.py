"""A calibrated binary classifier over window embeddings (a scikit-learn estimator)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data
from threadpoolctl import threadpool_limits

from audio_embed.errors import TrainingDataError
from audio_embed.progress import CancelToken

__all__ = ["CalibratedClassifier", "PrototypeClassifier", "make_base_estimator"]

log = logging.getLogger(__name__)

#: Below this many samples in the smaller class, calibration is skipped.
MIN_CALIBRATION_SAMPLES = 6
#: Rows :meth:`CalibratedClassifier.score_windows` scores at once (memory, not results).
SCORE_ROWS = 4096
#: With ``estimator=None``: the prototype scorer below this many positive
#: windows (1-2 markers at the default 1 s / 0.1 s windows), extremely
#: randomised trees up to :data:`MIN_BOOSTING_POSITIVES`, gradient boosting
#: from there on (measured on the wolf benchmark, see the README).
MIN_TREE_POSITIVES = 30
MIN_BOOSTING_POSITIVES = 100
#: Isotonic calibration needs this many positive windows; below, sigmoid.
MIN_ISOTONIC_POSITIVES = 30


def _single_threaded() -> Any:
    """Run scikit-learn's OpenMP code on one thread.

    The training sets here are small (hundreds to thousands of windows), where
    threads buy little; next to torch's own OpenMP pool on a busy CPU they spin
    against each other (HistGradientBoosting fits measured 6x slower on 2 cores).
    """
    return threadpool_limits(limits=1, user_api="openmp")


class PrototypeClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Cosine similarity to the mean positive, in a space standardised by the negatives.

    A few-shot scorer: with one or two marked sounds there is too little to
    fit a boundary, but "how much does this window look like the marked ones,
    relative to everything else" ranks well (wolf benchmark, README).
    ``predict_proba`` maps the cosine from [-1, 1] to [0, 1].
    """

    def fit(self, X: Any, y: Any) -> PrototypeClassifier:
        X, y = check_X_y(X, y, dtype=np.float64)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise TrainingDataError("PrototypeClassifier needs positive and negative windows.")
        neg, pos = X[y_idx == 0], X[y_idx == 1]
        self.mean_ = neg.mean(axis=0)
        self.scale_ = np.maximum(neg.std(axis=0), 1e-6)
        self.prototype_ = ((pos - self.mean_) / self.scale_).mean(axis=0)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        Xn = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        norm = np.linalg.norm(Xn, axis=1) * np.linalg.norm(self.prototype_)
        out: np.ndarray = (Xn @ self.prototype_) / np.maximum(norm, 1e-12)
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.clip((self.decision_function(X) + 1.0) / 2.0, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)


BaseKind = Literal["hgb", "logreg", "extratrees", "prototype"]


def make_base_estimator(kind: BaseKind = "hgb", random_state: int = 42) -> Any:
    """The built-in base estimators: gradient boosting (default), logistic regression,
    extremely randomised trees, or the few-shot :class:`PrototypeClassifier`."""
    if kind == "prototype":
        return PrototypeClassifier()
    if kind == "extratrees":
        return ExtraTreesClassifier(
            n_estimators=300,
            min_samples_leaf=2,
            class_weight="balanced",
            random_state=random_state,
            n_jobs=1,
        )
    if kind == "hgb":
        return HistGradientBoostingClassifier(
            max_iter=200, max_depth=5, learning_rate=0.1, random_state=random_state
        )
    if kind == "logreg":
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=random_state)
        )
    raise ValueError(
        "The 'kind' of base estimator must be 'hgb', 'logreg', 'extratrees' or 'prototype'. "
        f"Got {kind!r}."
    )


class CalibratedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary classifier with negative subsampling and probability calibration.

    Args:
        estimator: any scikit-learn classifier with ``predict_proba``; None
            (default) chooses by the number of positive windows: gradient
            boosting (:func:`make_base_estimator` ``"hgb"``) from
            :data:`MIN_BOOSTING_POSITIVES` on, logistic regression
            (``"logreg"``) below, where boosting cannot split.
        max_neg_ratio: negatives are subsampled (seeded) to at most this many
            times the positives; None keeps them all.
        calibration: ``"isotonic"`` (default), ``"sigmoid"`` or None. Uses
            ``CalibratedClassifierCV(cv=min(3, n_pos, n_neg))``; skipped, with
            the reason logged, when the smaller class has fewer than 6 samples.
        random_state: seed of the subsampling.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``estimator_``,
    ``calibration_`` (the method used, or None) and ``summary_`` (counts, the
    estimator used and why, and what happened to calibration).

    Never constant: when the fitted model gives every training window the same
    probability (boosting with too few positives, or a calibration fold without
    positives), it is refitted without calibration, then as logistic
    regression (when the estimator was chosen automatically), and the summary
    says so; if it is still constant, :class:`TrainingDataError` is raised.
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        max_neg_ratio: float | None = 30.0,
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

    def fit(self, X: Any, y: Any, *, choose_by: int | None = None) -> CalibratedClassifier:
        """Fit on embeddings ``X`` [n, dim] and binary labels ``y``; returns ``self``.

        ``choose_by``: with ``estimator=None``, the number of positive windows
        the automatic choice goes by instead of the positives in ``y`` (a
        scanner trained with augmented copies of its marked windows chooses by
        the marked ones); None (default) counts ``y``.
        """
        return self.fit_draws([(X, y)], choose_by=choose_by)

    def fit_draws(
        self,
        draws: Sequence[tuple[Any, Any]],
        *,
        choose_by: int | None = None,
        cancel: CancelToken | None = None,
    ) -> CalibratedClassifier:
        """Fit one model per training set ``(X, y)`` of ``draws`` and average their
        probabilities; returns ``self``.

        The training sets are meant to be the same marked windows with another
        draw of augmented copies each (``MixAugmentation(draws=K)``,
        :mod:`audio_embed.scanner.augmented`): one model per draw, scored by the
        mean of their calibrated probabilities (scikit-learn's soft
        ``VotingClassifier`` over the frozen models), steadies what a single draw
        leaves to chance (README, "Several draws averaged"). One training set is
        :meth:`fit`. ``summary_`` is the first model's, with ``draws`` and every
        model's positive windows (``n_positive_per_draw``) added for several.
        Every training set is checked before any is fitted, and the fitted state
        changes only when all are; ``cancel`` is checked before each model.
        """
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
        if not draws:
            raise ValueError("fit_draws needs at least one training set (X, y).")
        checked = [self._checked(X, y) for X, y in draws]  # every draw before any fit
        X0, _, classes = checked[0]
        for k, (X, _, other) in enumerate(checked[1:], start=1):
            if X.shape[1] != X0.shape[1]:
                raise ValueError(
                    f"Every draw needs the same features: draw {k} has {X.shape[1]}, "
                    f"draw 0 {X0.shape[1]}."
                )
            if not np.array_equal(other, classes):
                raise ValueError(f"Every draw needs the classes {classes}; draw {k} has {other}.")
        fitted = []
        for X, y_idx, _ in checked:
            if cancel is not None:
                cancel.check()
            fitted.append(self._fit_draw(X, y_idx, choose_by))
        model, method, summary, Xs, ys = fitted[0]
        if len(fitted) > 1:
            from sklearn.ensemble import VotingClassifier
            from sklearn.frozen import FrozenEstimator

            frozen_models = [(f"draw{k}", FrozenEstimator(f[0])) for k, f in enumerate(fitted)]
            with _single_threaded():
                model = VotingClassifier(frozen_models, voting="soft").fit(Xs, ys)
            methods = [f[1] for f in fitted]
            summary = {
                **summary,
                "draws": len(fitted),
                "n_positive_per_draw": [f[2]["n_positive"] for f in fitted],
            }
            if len(set(methods)) > 1:
                summary["calibration_note"] += f"; per draw: {methods}"
        # the fitted state changes only now, when every draw has been fitted
        validate_data(self, X0, reset=True, skip_check_array=True)
        self.classes_ = classes
        self.calibration_: str | None = method
        self.estimator_ = model
        self.summary_ = summary
        return self

    @staticmethod
    def _checked(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One training set validated: its windows, labels as class indices, classes."""
        X, y = check_X_y(X, y, dtype=np.float64)
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
        return X, y_idx, classes

    def _fit_draw(
        self, X: np.ndarray, y_idx: np.ndarray, choose_by: int | None
    ) -> tuple[Any, str | None, dict[str, Any], np.ndarray, np.ndarray]:
        """One model for one checked training set: the model, its calibration, its
        summary and the (subsampled) windows it was fitted on."""
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
        base, chosen = self._choose_estimator(n_pos if choose_by is None else int(choose_by))
        if choose_by is not None and self.estimator is None:
            chosen += f"; chosen by the marked windows, {n_pos} positive windows in all"
        calibration, reason = self._calibration_plan(n_pos, n_neg)
        attempts: list[tuple[Any, str | None, str]] = [(base, calibration, "")]
        if calibration is not None:
            attempts.append((base, None, "calibration gave constant scores; uncalibrated"))
        if self.estimator is None and not chosen.startswith("auto: prototype"):
            fallback = make_base_estimator("logreg", self.random_state)
            attempts.append((fallback, None, "trees gave constant scores; logistic regression"))
        for model_base, method, note in attempts:  # noqa: B007 (the one that worked)
            model = self._fit_one(model_base, method, Xs, ys, min(3, n_pos, n_neg))
            with _single_threaded():
                spread = float(np.ptp(model.predict_proba(Xs)[:, 1]))
            if spread > 1e-9:
                break
        else:
            raise TrainingDataError(
                f"The classifier gives every training window the same probability "
                f"({n_pos} positive, {n_neg} negative windows): the marked windows cannot be "
                "told apart from the others. Mark more examples, or use another embedder."
            )
        if note:
            log.warning("%s", note)
        if calibration is not None and method is None:
            reason = f"{calibration} calibration dropped: it gave every window the same score"
        final = model_base.steps[-1][1] if hasattr(model_base, "steps") else model_base
        summary = {
            "estimator": type(final).__name__,
            "estimator_choice": f"{chosen}; {note}" if note else chosen,
            "n_positive": int(n_pos),
            "n_negative": int(n_neg),
            "n_negative_available": int((y_idx == 0).sum()),
            "calibration": method,
            "calibration_note": reason,
        }
        return model, method, summary, Xs, ys

    def _choose_estimator(self, n_pos: int) -> tuple[Any, str]:
        """The estimator to fit, and why: the given one, or by the number of positives."""
        if self.estimator is not None:
            return clone(self.estimator), "given"
        if n_pos >= MIN_BOOSTING_POSITIVES:
            base = make_base_estimator("hgb", self.random_state)
            chosen = f"auto: gradient boosting ({n_pos} positive windows)"
        elif n_pos >= MIN_TREE_POSITIVES:
            base = make_base_estimator("extratrees", self.random_state)
            chosen = (
                f"auto: extra trees ({n_pos} positive windows, fewer than the "
                f"{MIN_BOOSTING_POSITIVES} for gradient boosting)"
            )
        else:
            base = make_base_estimator("prototype", self.random_state)
            chosen = (
                f"auto: prototype similarity ({n_pos} positive windows, fewer than the "
                f"{MIN_TREE_POSITIVES} for trees)"
            )
        return base, chosen

    def _calibration_plan(self, n_pos: int, n_neg: int) -> tuple[str | None, str]:
        """The calibration method to try (None: none) and the sentence that explains it."""
        smaller = min(n_pos, n_neg)
        calibration: str | None = self.calibration
        if self.calibration is None:
            reason = "calibration disabled"
        elif smaller < MIN_CALIBRATION_SAMPLES:
            calibration = None
            reason = (
                f"calibration skipped: the smaller class has {smaller} window(s), "
                f"fewer than {MIN_CALIBRATION_SAMPLES}"
            )
            log.info("%s", reason)
        elif self.calibration == "isotonic" and n_pos < MIN_ISOTONIC_POSITIVES:
            calibration = "sigmoid"
            reason = (
                f"sigmoid calibration, cv={min(3, n_pos, n_neg)} (isotonic asked for, but "
                f"{n_pos} positive windows are fewer than its {MIN_ISOTONIC_POSITIVES})"
            )
        else:
            reason = f"{self.calibration} calibration, cv={min(3, n_pos, n_neg)}"
        return calibration, reason

    @staticmethod
    def _fit_one(base: Any, method: str | None, X: np.ndarray, y: np.ndarray, cv: int) -> Any:
        model: Any = base if method is None else CalibratedClassifierCV(base, method=method, cv=cv)
        model = clone(model)
        with _single_threaded():
            model.fit(X, y)
        return model

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
        """Probability of the positive class (``classes_[1]``) for each row.

        Scored :data:`SCORE_ROWS` rows at a time: the estimators work on a float64
        copy of what they score, which for every window of a long recording is the
        largest thing a scan holds (rows are scored independently: the same values)."""
        if not hasattr(X, "shape"):
            X = np.asarray(X)
        if len(X) <= SCORE_ROWS:
            proba: np.ndarray = self.predict_proba(X)[:, 1]
            return proba
        return np.concatenate(
            [self.predict_proba(X[i : i + SCORE_ROWS])[:, 1] for i in range(0, len(X), SCORE_ROWS)]
        )

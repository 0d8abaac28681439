"""Per-model scan defaults (Embedder.scan_defaults): Scanner takes them, callers override."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest
import torch

from audio_embed import LogMelEmbedder
from audio_embed.classifier import CalibratedClassifier, PrototypeClassifier
from audio_embed.errors import InvalidInputError
from audio_embed.scanner import (
    DEFAULT_CONTEXT,
    DEFAULT_POSTPROCESSING,
    Postprocessing,
    Recording,
    Scanner,
    model_classifier,
)
from audio_embed.types import ScanDefaults
from audio_embed.windows import Markers, SlidingWindows

OWN = ScanDefaults(window=2.0, hop=0.5, classifier="logreg", context=0.0, extent="intersection")


class OwnDefaults(LogMelEmbedder):
    """LOGMEL with a model's own scan defaults."""

    def __init__(self, defaults: ScanDefaults = OWN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.defaults = defaults

    def scan_defaults(self) -> ScanDefaults:
        return self.defaults


def _estimator(scanner: Scanner) -> Any:
    return scanner.classifier.get_params()["estimator"]


def test_scanner_takes_the_models_defaults() -> None:
    scanner = Scanner(OwnDefaults())
    assert (scanner.scan_windows.window, scanner.scan_windows.hop) == (2.0, 0.5)
    assert scanner.train_windows.window == 2.0 and scanner.train_windows.hop == 0.5
    steps = [name for name, _ in _estimator(scanner).steps]
    assert steps == ["standardscaler", "logisticregression"]
    assert scanner.context == 0.0
    assert scanner.postprocessing.extent == "intersection"
    # Everything else in the post-processing stays the library's.
    assert scanner.postprocessing.smooth == DEFAULT_POSTPROCESSING.smooth
    assert scanner.postprocessing.valley == DEFAULT_POSTPROCESSING.valley


def test_explicit_arguments_win() -> None:
    post = Postprocessing(smooth=0.3)
    scanner = Scanner(
        OwnDefaults(),
        scan_windows=SlidingWindows(1.0, 0.25),
        classifier=CalibratedClassifier(PrototypeClassifier()),
        context=3.0,
        postprocessing=post,
    )
    assert (scanner.scan_windows.window, scanner.scan_windows.hop) == (1.0, 0.25)
    assert isinstance(_estimator(scanner), PrototypeClassifier)
    assert scanner.context == 3.0 and scanner.postprocessing == post


def test_a_model_without_defaults_gets_the_librarys() -> None:
    scanner = Scanner(LogMelEmbedder())
    assert scanner.scan_windows == SlidingWindows()
    assert _estimator(scanner) is None  # the automatic choice
    assert scanner.context == DEFAULT_CONTEXT
    assert scanner.postprocessing == DEFAULT_POSTPROCESSING
    # Only the settings a model gives are replaced.
    half = Scanner(OwnDefaults(ScanDefaults(hop=0.2)))
    assert (half.scan_windows.window, half.scan_windows.hop) == (SlidingWindows().window, 0.2)
    assert _estimator(half) is None and half.context == DEFAULT_CONTEXT


def test_saved_scanner_keeps_its_settings(tmp_path: Any) -> None:
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(16000 * 60)).astype(np.float32)
    for t in (5.0, 25.0, 45.0):
        a = int(t * 16000)
        audio[a : a + 8000] += np.sin(np.arange(8000) * 0.3).astype(np.float32)
    scanner = Scanner(OwnDefaults()).fit(
        [Recording(audio, Markers(positive=[5.0, 25.0, 45.0]), sample_rate=16000)], threshold=0.5
    )
    path = scanner.save(tmp_path / "s.scanner")
    # Loaded with an embedder whose defaults are now none: the saved settings hold.
    loaded = Scanner.load(path, embedder=OwnDefaults(ScanDefaults()))
    assert loaded.scan_windows == scanner.scan_windows
    assert loaded.context == 0.0 and loaded.postprocessing.extent == "intersection"
    assert torch.allclose(
        torch.from_numpy(loaded.scan(audio, sample_rate=16000).probabilities),
        torch.from_numpy(scanner.scan(audio, sample_rate=16000).probabilities),
    )


def _tones(seconds: int = 120) -> tuple[np.ndarray, Markers]:
    """Noise with two marked tone bursts: more negative windows than 30x the positives."""
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(16000 * seconds)).astype(np.float32)
    marks = [20.0, 80.0]
    for t in marks:
        a = int(t * 16000)
        audio[a : a + 8000] += np.sin(np.arange(8000) * 0.3).astype(np.float32)
    return audio, Markers(positive=marks)


def test_all_negatives_makes_the_fit_independent_of_the_seed() -> None:
    """``all_negatives=True`` keeps every negative window, so the classifier's seed (which
    draws the negative subsample otherwise) no longer changes the scores."""
    audio, markers = _tones()
    own = ScanDefaults(window=1.0, hop=0.25, classifier="logreg", all_negatives=True)
    assert Scanner(OwnDefaults(own)).classifier.max_neg_ratio is None
    assert Scanner(OwnDefaults(ScanDefaults(classifier="logreg"))).classifier.max_neg_ratio == 30
    # what the caller passes wins
    assert model_classifier(OwnDefaults(own), max_neg_ratio=5.0).max_neg_ratio == 5.0

    def scores(defaults: ScanDefaults, seed: int) -> np.ndarray:
        embedder = OwnDefaults(defaults)
        scanner = Scanner(
            embedder, classifier=model_classifier(embedder, random_state=seed), threshold=0.5
        )
        scanner.fit([Recording(audio, markers, sample_rate=16000)])
        summary = scanner.training_summary or {}
        kept, available = (summary[f"classifier_n_negative{k}"] for k in ("", "_available"))
        assert kept == available if defaults.all_negatives else kept < available
        return scanner.scan(audio, sample_rate=16000).probabilities

    np.testing.assert_array_equal(scores(own, 1), scores(own, 2))
    subsampled = attrs.evolve(own, all_negatives=None)
    assert not np.array_equal(scores(subsampled, 1), scores(subsampled, 2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0.0}, "window"),
        ({"hop": -1.0}, "hop"),
        ({"classifier": "svm"}, "classifier"),
        ({"context": -1.0}, "context"),
        ({"extent": "union"}, "extent"),
    ],
)
def test_bad_scan_defaults_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ScanDefaults(**kwargs)


def test_as_dict_lists_what_is_set() -> None:
    assert ScanDefaults().as_dict() == {}
    assert OWN.as_dict() == {
        "window": 2.0,
        "hop": 0.5,
        "classifier": "logreg",
        "context": 0.0,
        "extent": "intersection",
    }
    assert ScanDefaults(all_negatives=True).as_dict() == {"all_negatives": True}

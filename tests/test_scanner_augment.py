"""Scanner(augmentation=MixAugmentation(...)): augmented positive windows in fit."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from audio_embed import LogMelEmbedder
from audio_embed.augment import (
    AUTO_AUGMENTATION,
    AUTO_MANY_AUGMENTATION,
    MixAugmentation,
    MixedSound,
)
from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.demo import synth_recording
from audio_embed.errors import InvalidInputError
from audio_embed.scanner import Recording, Scanner
from audio_embed.scanner.augmented import (
    AUTO_MANY_MIN_RECORDINGS,
    AUTO_MAX_MARKERS,
    AUTO_MIN_MARKERS,
    AugmentationDecision,
    AugmentedPool,
    AugmentedUnit,
    _unit_features,
    decide_augmentation,
    fold_kept,
)
from audio_embed.windows import Markers

SR = 16000


def _recording(seed: int, n_targets: int = 4, seconds: float = 60.0) -> Recording:
    audio, targets, _ = synth_recording(seconds, n_targets, 4, np.random.default_rng(seed))
    return Recording(audio, Markers(positive=[a + 0.3 for a, _ in targets]), SR)


@pytest.fixture(scope="module")
def one_file() -> list[Recording]:
    return [_recording(31)]


def _aug(copies: int = 3, seed: int = 0) -> MixAugmentation:
    return MixAugmentation(copies=copies, speed=(0.95, 1.05), min_distance=3.0, seed=seed)


def _probabilities(scanner: Scanner, audio: np.ndarray) -> np.ndarray:
    return scanner.scan(audio, sample_rate=SR).probabilities


def test_no_augmentation_and_zero_copies_train_the_same_classifier(
    one_file: list[Recording],
) -> None:
    plain = Scanner(LogMelEmbedder(), augmentation=None).fit(one_file)
    zero = Scanner(LogMelEmbedder(), augmentation=_aug(copies=0)).fit(one_file)
    off = (plain.training_summary or {})["augmentation"]
    assert off["ran"] is False and off["setting"] == "off" and off["windows_added"] == 0
    info = (zero.training_summary or {})["augmentation"]
    assert info["ran"] is True and info["setting"] == "given"
    assert info["windows_added"] == 0 and info["mixed_sounds"] == 0
    audio = np.asarray(one_file[0].source)
    np.testing.assert_array_equal(_probabilities(plain, audio), _probabilities(zero, audio))
    assert plain.threshold_ == zero.threshold_


def test_summary_counts_augmented_windows_and_the_estimator_follows_marked_ones(
    one_file: list[Recording],
) -> None:
    scanner = Scanner(LogMelEmbedder(), augmentation=_aug(copies=4)).fit(one_file)
    s = scanner.training_summary or {}
    info = s["augmentation"]
    marked = s["windows_positive"]
    assert 30 <= marked < 100  # extra trees by the marked count
    assert info["windows_added"] > 100 - marked  # enough to flip to boosting if counted
    assert s["classifier_n_positive"] == marked + info["windows_added"]
    assert s["classifier_estimator"] == "ExtraTreesClassifier"
    assert "marked" in s["classifier_estimator_choice"]
    assert info["settings"]["copies"] == 4 and info["settings"]["step"] == 0.1


def test_the_same_seed_gives_the_same_scanner(one_file: list[Recording]) -> None:
    audio = np.asarray(one_file[0].source)
    a = Scanner(LogMelEmbedder(), augmentation=_aug(seed=5)).fit(one_file)
    b = Scanner(LogMelEmbedder(), augmentation=_aug(seed=5)).fit(one_file)
    c = Scanner(LogMelEmbedder(), augmentation=_aug(seed=6)).fit(one_file)
    assert a.training_summary == b.training_summary
    np.testing.assert_array_equal(_probabilities(a, audio), _probabilities(b, audio))
    assert not np.array_equal(_probabilities(a, audio), _probabilities(c, audio))


def test_folds_keep_only_units_of_their_kept_markers_and_files() -> None:
    markers = [Markers(positive=[5.0, 15.0, 25.0]), Markers(positive=[5.0, 15.0])]
    # leave one recording out: recording 0 is held out whole
    pairs, files = fold_kept(markers, {0: {1}}, by_recording=True)
    assert files == {1} and pairs == {(1, 0), (1, 1)}
    # folds over markers: marker 1 of recording 0 held out, the recordings kept
    pairs, files = fold_kept(markers, {0: {1}}, by_recording=False)
    assert files == {0, 1} and pairs == {(0, 0), (0, 2), (1, 0), (1, 1)}

    def unit(src: tuple[int, int], bg: int, value: float) -> AugmentedUnit:
        return AugmentedUnit(src, bg, np.full((2, 3), value, np.float32))

    given = AugmentationDecision("given", MixAugmentation(), "given")
    units = (unit((0, 1), 0, 1), unit((0, 0), 1, 2), unit((1, 0), 0, 3))
    pool = AugmentedPool(units, 3, given)
    assert pool.rows().shape == (6, 3)
    got = pool.rows({(0, 0), (0, 2), (1, 0), (1, 1)}, {0, 1})  # (0, 1) is held out
    assert sorted(set(got[:, 0].tolist())) == [2.0, 3.0]
    got = pool.rows({(1, 0), (1, 1)}, {1})  # only recording 1: sources and backgrounds
    assert got.shape == (0, 3)


@pytest.mark.parametrize("frontend", ["log", "log+pcen"])
def test_unit_features_equal_the_recordings_own_when_nothing_is_mixed_in(
    one_file: list[Recording], frontend: str
) -> None:
    """Also with PCEN, whose windows depend on the 2 s before them: the segment's own
    windows are embedded after that lead-in (before: from a cold smoother, their
    context features off by about 1 against values of about 9)."""
    scanner = Scanner(LogMelEmbedder(frontend=frontend))
    rec = one_file[0]
    audio = np.asarray(rec.source)
    entry = scanner.sliding_embeddings(audio, sample_rate=SR)
    grid = scanner._normalise(entry.embeddings, entry.embeddings)
    own = scanner._scan_features(entry)
    first = round(27.0 * SR)
    m = MixedSound(audio=audio[first : first + 7 * SR].copy(), start=first / SR, marker=30.0,
                   source=(0, 0), background=0, speed=1.0, gain_db=0.0)  # fmt: skip
    before = audio[first - round(scanner.embedder.lead_in * SR) : first]
    feats = _unit_features(scanner, m, entry, grid, SR, before)
    rows = np.flatnonzero((entry.starts >= 29.0 - 1e-6) & (entry.starts <= 30.0 + 1e-6))
    assert feats.shape == (len(rows), own.shape[1])
    scale = np.abs(own[rows]).max()
    np.testing.assert_allclose(feats, own[rows], rtol=0, atol=1e-3 * scale)


def test_one_file_few_markers_end_to_end(tmp_path: Path) -> None:
    rec = _recording(41, n_targets=3)
    scanner = Scanner(LogMelEmbedder(), augmentation=_aug(copies=3)).fit([rec])
    s = scanner.training_summary or {}
    assert s["augmentation"]["windows_added"] > 0
    assert s["threshold"]["method"] != "fallback"
    test_audio, targets, _ = synth_recording(60.0, 3, 4, np.random.default_rng(42))
    result = scanner.scan(test_audio, sample_rate=SR)
    dets = result.detections()
    assert any(d.start < b and a < d.end for d in dets for a, b in targets)
    loaded = Scanner.load(scanner.save(tmp_path / "s.scanner"))
    assert loaded.augmentation == scanner.augmentation
    np.testing.assert_allclose(
        loaded.scan(test_audio, sample_rate=SR).probabilities, result.probabilities, atol=1e-6
    )


def test_a_recording_with_no_place_for_a_copy_is_named_in_the_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 0.3 s training file said "No place 8.0 s from every marker in recording 0":
    the file is named now."""
    import soundfile as sf

    rec = _recording(41, n_targets=3)
    short = tmp_path / "short take.wav"
    sf.write(short, np.zeros(SR // 3, np.float32), SR)
    with caplog.at_level("WARNING", logger="audio_embed"):
        Scanner(LogMelEmbedder(), augmentation=_aug(copies=1), threshold=0.5).fit(
            [rec, Recording(short, Markers(positive=[0.1]))]
        )
    said = [r.getMessage() for r in caplog.records if "No place" in r.getMessage()]
    assert said and all(f"in {short} (0.3 s long)" in m for m in said), said


def test_no_place_is_warned_once_per_fit_over_every_draw(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With three draws (the many-marker default's) the same "No place …" warning came
    three times, one per draw, each with that draw's count; now once, with the fit's."""
    import soundfile as sf

    rec = _recording(41, n_targets=3)
    short = tmp_path / "short take.wav"
    sf.write(short, np.zeros(SR // 3, np.float32), SR)
    aug = attrs.evolve(_aug(copies=1), draws=3)
    with caplog.at_level("WARNING", logger="audio_embed"):
        Scanner(LogMelEmbedder(), augmentation=aug, threshold=0.5).fit(
            [rec, Recording(short, Markers(positive=[0.1]))]
        )
    said = [r.getMessage() for r in caplog.records if "No place" in r.getMessage()]
    # 4 marked sounds x 1 copy x 3 draws, none placed in a 0.3 s take
    assert said == [
        f"No place 3.0 s from every marker in {short} (0.3 s long): 12 of 12 copies "
        "skipped over 3 draws."
    ], said


def test_a_cancel_while_augmenting_leaves_the_scanner_unchanged(
    one_file: list[Recording],
) -> None:
    from audio_embed.errors import Cancelled
    from audio_embed.progress import CancelToken, ProgressEvent

    token = CancelToken()

    def progress(event: ProgressEvent) -> None:
        if event.stage == "train-files":  # every file embedded: augmentation comes next
            token.cancel()

    scanner = Scanner(LogMelEmbedder(), augmentation=_aug())
    with pytest.raises(Cancelled):
        scanner.fit(one_file, progress=progress, cancel=token)
    assert not scanner.is_fitted and scanner.training_summary is None


@pytest.mark.parametrize("augmented", [False, True])
def test_threshold_folds_of_an_augmented_fit_fit_the_estimator_that_scans(
    monkeypatch: pytest.MonkeyPatch, augmented: bool
) -> None:
    """Three markers: 30 marked windows choose extra trees; a fold keeps two (20), which
    on its own count chooses the prototype scorer. Augmented, every fold fits extra
    trees too (the prototype's mean, blurred by the copies, gave another threshold:
    IoU F1 0.30 instead of 0.45 on the wolf benchmark); without augmentation each fold
    still chooses by its own positives (measured better there)."""
    from audio_embed.classifier import CalibratedClassifier

    fitted: list[str] = []
    original = CalibratedClassifier.fit_draws  # what fit calls too

    def spy(self: CalibratedClassifier, *args: object, **kwargs: object) -> CalibratedClassifier:
        out = original(self, *args, **kwargs)  # type: ignore[arg-type]
        fitted.append(out.summary_["estimator"])
        return out

    monkeypatch.setattr(CalibratedClassifier, "fit_draws", spy)
    rec = _recording(41, n_targets=3)
    aug = MixAugmentation(copies=1, min_distance=3.0) if augmented else None
    scanner = Scanner(LogMelEmbedder(), augmentation=aug).fit([rec])
    s = scanner.training_summary or {}
    assert s["threshold"]["method"] == "folds over markers" and s["threshold"]["folds"] == 3
    assert 30 <= s["windows_positive"] < 45  # a fold keeps two thirds: under 30
    assert s["classifier_estimator"] == "ExtraTreesClassifier"
    fold = "ExtraTreesClassifier" if augmented else "PrototypeClassifier"
    assert fitted == ["ExtraTreesClassifier"] + [fold] * 3  # the final fit, three folds


def test_auto_decides_by_the_number_of_positive_markers_and_recordings() -> None:
    for n in range(0, AUTO_MAX_MARKERS + 3):
        for r in range(1, AUTO_MANY_MIN_RECORDINGS + 2):
            d = decide_augmentation("auto", n, n_recordings=r)
            want = None
            if AUTO_MIN_MARKERS <= n <= AUTO_MAX_MARKERS:
                want = AUTO_AUGMENTATION
            elif n > AUTO_MAX_MARKERS and r >= AUTO_MANY_MIN_RECORDINGS:
                want = AUTO_MANY_AUGMENTATION
            assert d.augmentation is want and d.setting == "auto"
            assert f"{n} positive marker" in d.reason
            assert d.summary()["ran"] is (want is not None)
    # many markers in too few recordings: says how many recordings it needs (before:
    # "10 positive markers (more than 5 but in 2 recordings, fewer than 4)")
    few_recs = decide_augmentation("auto", AUTO_MAX_MARKERS + 5, n_recordings=2)
    assert few_recs.reason.endswith(
        f"(more than {AUTO_MAX_MARKERS} but in 2 recordings; that many are mixed in only "
        f"from {AUTO_MANY_MIN_RECORDINGS} recordings up)"
    )
    # with the classifier's own estimator (BirdNET's logistic regression), not for many
    own = decide_augmentation(
        "auto", AUTO_MAX_MARKERS + 1, n_recordings=AUTO_MANY_MIN_RECORDINGS,
        automatic_estimator=False,
    )  # fmt: skip
    assert own.augmentation is None and "estimator" in own.reason
    few = decide_augmentation("auto", AUTO_MIN_MARKERS, automatic_estimator=False)
    assert few.augmentation is AUTO_AUGMENTATION
    # the many-marker setting: more copies, mixed in quieter than marked
    assert AUTO_MANY_AUGMENTATION.copies > AUTO_AUGMENTATION.copies
    assert AUTO_MANY_AUGMENTATION.gain_db[1] <= 0 < AUTO_AUGMENTATION.gain_db[1]
    given = _aug()
    assert decide_augmentation(given, 1).augmentation is given  # a given one always runs
    assert decide_augmentation(None, 5).augmentation is None
    index = decide_augmentation("auto", AUTO_MIN_MARKERS, from_index=True)
    assert index.augmentation is None and "index" in index.reason
    with pytest.raises(InvalidInputError, match="'augmentation'"):
        decide_augmentation("sometimes", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="'augmentation'"):
        Scanner(LogMelEmbedder(), augmentation=1)  # type: ignore[arg-type]


def test_the_default_auto_augments_few_markers_and_says_why(tmp_path: Path) -> None:
    """The default setting mixes in takes for three markers and not for two; the summary
    says whether it ran and why, and the setting survives save and load."""
    rec = _recording(41, n_targets=3)
    assert len(rec.markers.positive) == AUTO_MIN_MARKERS
    scanner = Scanner(LogMelEmbedder())
    assert scanner.augmentation == "auto"
    scanner.fit([rec])
    info = (scanner.training_summary or {})["augmentation"]
    assert info["setting"] == "auto" and info["ran"] is True and info["windows_added"] > 0
    assert info["settings"]["copies"] == AUTO_AUGMENTATION.copies
    assert "3 positive markers" in info["reason"]
    loaded = Scanner.load(scanner.save(tmp_path / "auto.scanner"))
    assert loaded.augmentation == "auto"
    assert Scanner.read_metadata(tmp_path / "auto.scanner")["augmentation"] == "auto"
    two = Recording(rec.source, Markers(positive=rec.markers.positive[:2]), SR)
    skipped = Scanner(LogMelEmbedder()).fit([two]).training_summary or {}
    assert skipped["augmentation"]["ran"] is False
    assert "fewer than" in skipped["augmentation"]["reason"]
    # the same fit with augmentation=None: the same classifier as the skipped auto
    plain = Scanner(LogMelEmbedder(), augmentation=None).fit([two]).training_summary or {}
    assert plain["threshold"] == skipped["threshold"]


def test_a_scanner_saved_before_the_setting_loads_without_augmentation(tmp_path: Path) -> None:
    """Files written before ``augmentation`` existed (no key) load as None, as fitted."""
    import json
    import zipfile

    rec = _recording(41, n_targets=2)
    path = Scanner(LogMelEmbedder(), augmentation=None).fit([rec]).save(tmp_path / "a.scanner")
    old = tmp_path / "old.scanner"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        meta = json.loads(src.read("scanner.json"))
        del meta["augmentation"]
        dst.writestr("scanner.json", json.dumps(meta))
        dst.writestr("classifier.skops", src.read("classifier.skops"))
    assert Scanner.load(old).augmentation is None
    given = Scanner(LogMelEmbedder(), augmentation=_aug(copies=2)).fit([rec])
    assert Scanner.load(given.save(tmp_path / "g.scanner")).augmentation == _aug(copies=2)


def test_auto_mixes_in_quieter_copies_for_many_markers_in_many_recordings(
    tmp_path: Path,
) -> None:
    """Two markers in each of AUTO_MANY_MIN_RECORDINGS recordings: ``"auto"`` runs
    AUTO_MANY_AUGMENTATION, every marker mixed into every recording ``copies`` times;
    the summary says so, the threshold is cross-validated per recording with the
    copies, and the saved scanner scores as the fitted one."""
    n = AUTO_MANY_MIN_RECORDINGS
    assert 2 * n > AUTO_MAX_MARKERS
    recs = [_recording(51 + i, n_targets=2, seconds=60.0) for i in range(n)]
    scanner = Scanner(LogMelEmbedder()).fit(recs)
    s = scanner.training_summary or {}
    info = s["augmentation"]
    assert info["ran"] is True and f"{n} recordings" in info["reason"]
    assert info["settings"]["copies"] == AUTO_MANY_AUGMENTATION.copies
    assert info["settings"]["gain_db"] == list(AUTO_MANY_AUGMENTATION.gain_db)
    draws = AUTO_MANY_AUGMENTATION.draws
    assert draws == info["settings"]["draws"] == s["classifier_draws"] == 3
    assert info["mixed_sounds"] == 2 * n * n * AUTO_MANY_AUGMENTATION.copies * draws
    assert len(s["threshold"]["draws"]) == draws
    assert s["threshold"]["value"] == pytest.approx(np.mean(s["threshold"]["draws"]), abs=1e-4)
    assert info["windows_added"] > s["windows_positive"]
    assert s["threshold"]["method"] == "leave-one-recording-out"
    loaded = Scanner.load(scanner.save(tmp_path / "many.scanner"))
    audio = np.asarray(recs[0].source)
    np.testing.assert_array_equal(_probabilities(loaded, audio), _probabilities(scanner, audio))
    assert loaded.threshold_ == scanner.threshold_
    given = CalibratedClassifier(make_base_estimator("logreg"))
    own = Scanner(LogMelEmbedder(), classifier=given).fit(recs).training_summary or {}
    assert own["augmentation"]["ran"] is False and "estimator" in own["augmentation"]["reason"]
    # a recording counts only with a positive marker in it
    unmarked = Recording(recs[-1].source, Markers(negative=[10.0]), SR)
    few = Scanner(LogMelEmbedder()).fit([*recs[:-1], unmarked]).training_summary or {}
    assert few["augmentation"]["ran"] is False
    assert f"in {n - 1} recordings" in few["augmentation"]["reason"]


def test_draws_average_the_classifiers_and_thresholds_of_single_draws() -> None:
    """``draws=3`` scans with the mean probability of three scanners fitted with one
    draw each at seeds 0, 1, 2, at the mean of their thresholds (the wolf benchmark's
    ensemble, README "Several draws averaged")."""
    rec = _recording(41, n_targets=3)
    audio = np.asarray(rec.source)
    singles = [
        Scanner(LogMelEmbedder(), augmentation=_aug(copies=1, seed=k)).fit([rec]) for k in range(3)
    ]
    drawn = Scanner(
        LogMelEmbedder(),
        augmentation=MixAugmentation(copies=1, speed=(0.95, 1.05), min_distance=3.0, draws=3),
    ).fit([rec])
    want = np.mean([_probabilities(s, audio) for s in singles], axis=0)
    np.testing.assert_allclose(_probabilities(drawn, audio), want, rtol=0, atol=1e-12)
    thresholds = [s.threshold_ for s in singles]
    assert len(set(thresholds)) > 1  # the draws differ, so the mean is tested
    assert drawn.threshold_ == pytest.approx(np.mean(thresholds), abs=1e-4)
    s = drawn.training_summary or {}
    assert s["threshold"]["draws"] == thresholds
    assert "mean of 3 augmentation draws" in s["threshold"]["rule"]
    assert s["classifier_draws"] == 3 and len(s["classifier_n_positive_per_draw"]) == 3
    assert s["augmentation"]["mixed_sounds"] == sum(
        (x.training_summary or {})["augmentation"]["mixed_sounds"] for x in singles
    )
    per_draw = [(x.training_summary or {})["augmentation"]["windows_added"] for x in singles]
    assert s["augmentation"]["windows_added_per_draw"] == per_draw
    assert s["classifier_n_positive_per_draw"] == [s["windows_positive"] + n for n in per_draw]

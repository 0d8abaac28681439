"""The automatic threshold: the rule that picks it from the cross-validated F1 curve,
and every rule's value in (0, 1), reproducible (issue 13's property)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio_embed.detect import Postprocessing
from audio_embed.errors import InvalidInputError
from audio_embed.threshold import (
    RULES,
    F1Curve,
    FoldScores,
    ThresholdChoice,
    choose_threshold,
    f1_curve,
    fold_spread,
    mean_choice,
    pick_threshold,
    smoothed_f1,
    threshold_warning,
)

T = np.round(np.linspace(0.05, 0.95, 19), 4)


def _spike_and_plateau() -> F1Curve:
    """Two folds. Pooled F1: a one-threshold spike (0.9) at 0.20, a broad
    plateau (0.8) from 0.45 to 0.85, lower elsewhere. Fold 0 is best on the
    spike, fold 1 on the plateau, so the folds disagree."""
    n = len(T)
    tp = np.array([[2] * n, [1] * n])
    fp = np.array([[2] * n, [1] * n])
    fn = np.array([[3] * n, [4] * n])
    spike = int(np.flatnonzero(np.isclose(T, 0.20))[0])
    tp[:, spike], fp[:, spike], fn[:, spike] = (5, 4), (0, 1), (0, 1)
    plateau = (T >= 0.45) & (T <= 0.85)
    tp[:, plateau] = np.array([[3], [5]])
    fp[:, plateau] = 1
    fn[:, plateau] = np.array([[2], [0]])
    return F1Curve(T, tp, fp, fn)


def test_a_broad_plateau_beats_a_narrow_spike() -> None:
    curve = _spike_and_plateau()
    f1 = curve.f1()
    assert f1.argmax() == np.flatnonzero(np.isclose(T, 0.20))[0]  # the spike is the best F1
    i, how = pick_threshold(curve, "argmax")
    assert T[i] == pytest.approx(0.20)
    i, how = pick_threshold(curve)  # the default rule
    assert 0.45 <= T[i] <= 0.85
    assert "smoothed" in how and "log-odds" in how


def test_smoothing_width_is_the_folds_disagreement() -> None:
    curve = _spike_and_plateau()
    logits = np.log(np.array([0.20, 0.65]) / (1 - np.array([0.20, 0.65])))
    assert fold_spread(curve) == pytest.approx(float(np.std(logits, ddof=1)), rel=1e-9)
    # one fold alone says nothing about the spread: the plain best F1
    one = F1Curve(T, curve.tp[:1], curve.fp[:1], curve.fn[:1])
    assert fold_spread(one) is None
    i, how = pick_threshold(one)
    assert i == one.f1().argmax() and "not smoothed" in how


def test_smoothed_curve_stays_within_the_curve() -> None:
    curve = _spike_and_plateau()
    for sigma in (0.05, 0.5, 5.0):
        s = smoothed_f1(curve, sigma)
        assert s.shape == T.shape
        assert np.all(s >= curve.f1().min() - 1e-12) and np.all(s <= curve.f1().max() + 1e-12)
    flat = F1Curve(
        T, np.ones((2, len(T)), int), np.ones((2, len(T)), int), np.zeros((2, len(T)), int)
    )
    assert np.allclose(smoothed_f1(flat, 0.7), flat.f1())


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="rule"):
        pick_threshold(_spike_and_plateau(), "best")  # type: ignore[arg-type]


@st.composite
def _folds(draw: st.DrawFn) -> list[FoldScores]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(5, 60))
        p = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
        refs = draw(st.lists(st.floats(0, n * 0.5), max_size=4))
        out.append(
            FoldScores(np.arange(n) * 0.5, p, 1.0, n * 0.5 + 0.5, tuple((t, t) for t in refs))
        )
    return out


@settings(max_examples=40, deadline=None)
@given(_folds(), st.sampled_from(RULES))
def test_every_rule_gives_a_reproducible_threshold_in_0_1(
    folds: list[FoldScores], rule: str
) -> None:
    choice = choose_threshold(folds, Postprocessing(), "test", len(folds), rule=rule)  # type: ignore[arg-type]
    assert 0.0 < choice.value < 1.0
    assert choose_threshold(folds, Postprocessing(), "test", len(folds), rule=rule) == choice  # type: ignore[arg-type]
    # the reported CV F1 is the plain pooled F1 at the threshold chosen
    at = f1_curve(folds, Postprocessing(), np.array([choice.value])).f1()[0]
    assert choice.cv_f1 == pytest.approx(at)
    assert choice.rule.startswith("best event F1")


def test_one_recording_takes_the_best_f1_several_recordings_the_smoothed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Folds over one recording's markers pick the plain best F1 (their spread does not
    measure how the threshold moves between recordings); leave-one-recording-out
    smooths. Checked on the folds each fit hands to ``choose_threshold``."""
    import audio_embed.scanner.crossval as crossval
    from audio_embed import LogMelEmbedder
    from audio_embed.demo import synth_recording
    from audio_embed.scanner import Recording, Scanner
    from audio_embed.windows import Markers

    seen: list[tuple[list[FoldScores], Postprocessing, int]] = []
    real = crossval.choose_threshold

    def spy(folds: list[FoldScores], post: Postprocessing, method: str, n: int, **kw: str):  # type: ignore[no-untyped-def]
        seen.append((list(folds), post, n))
        return real(folds, post, method, n, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(crossval, "choose_threshold", spy)
    recs = []
    for seed in (21, 22):
        audio, targets, _ = synth_recording(60.0, 4, 6, np.random.default_rng(seed))
        recs.append(Recording(audio, Markers(positive=[a + 0.3 for a, _ in targets]), 16000))

    one = Scanner(LogMelEmbedder(), seed=3).fit(recs[:1])
    folds, post, n = seen[-1]
    th = (one.training_summary or {})["threshold"]
    assert th["method"] == "folds over markers"
    assert one.scan_threshold == real(folds, post, "", n, rule="argmax").value
    assert th["rule"].startswith("best event F1") and crossval.ONE_RECORDING_RULE in th["rule"]

    two = Scanner(LogMelEmbedder(), seed=3).fit(recs)
    folds, post, n = seen[-1]
    th = (two.training_summary or {})["threshold"]
    assert th["method"] == "leave-one-recording-out"
    assert two.scan_threshold == real(folds, post, "", n, rule="smoothed").value
    assert crossval.ONE_RECORDING_RULE not in th["rule"]


def test_one_recording_whose_folds_find_one_marker_at_most_uses_the_training_scores(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When one recording's folds find at most one held-out marker at any threshold,
    their best F1 is one lucky match (two horn selections: the lowest threshold, 46 % of
    new audio flagged), so the threshold comes from the training scores instead; with
    two matches or more the folds choose."""
    import audio_embed.scanner.crossval as crossval
    from audio_embed import LogMelEmbedder
    from audio_embed.demo import synth_recording
    from audio_embed.scanner import Recording, Scanner
    from audio_embed.windows import Markers

    audio, targets, _ = synth_recording(60.0, 4, 6, np.random.default_rng(21))
    rec = Recording(audio, Markers(positive=[a + 0.3 for a, _ in targets]), 16000)
    import audio_embed.threshold as threshold

    real = threshold.f1_curve
    most: list[int] = []

    def capped(folds: list[FoldScores], post: Postprocessing) -> F1Curve:
        c = real(folds, post)
        tp = np.minimum(c.tp, 1) * (np.arange(len(c.tp))[:, None] == 0)  # fold 0 only
        return F1Curve(c.thresholds, tp if most[0] <= 1 else c.tp, c.fp, c.fn)

    monkeypatch.setattr(threshold, "f1_curve", capped)
    most.append(1)
    with caplog.at_level("WARNING", logger="audio_embed"):
        few = Scanner(LogMelEmbedder(), seed=3).fit([rec])
    th = (few.training_summary or {})["threshold"]
    assert th["method"] == "from training scores" and th["cv_f1"] is None
    assert th["note"].startswith(crossval.FEW_MATCHES)
    # loud, not only a note: a log warning naming the value and what to do, kept in
    # the summary (a fallback from two or three markers can come out near 0.01)
    said = [r.getMessage() for r in caplog.records if "not cross-validated" in r.getMessage()]
    assert len(said) == 1 and f"{few.scan_threshold:g}" in said[0]
    assert "--threshold" in said[0] and "mark more" in said[0]
    assert th["warning"] == said[0]
    caplog.clear()
    most[0] = 2
    enough = Scanner(LogMelEmbedder(), seed=3).fit([rec])
    th = (enough.training_summary or {})["threshold"]
    assert th["method"] == "folds over markers" and th["cv_f1"] is not None
    assert ("warning" in th) == (th["cv_f1"] < 0.5)


def test_thresholds_that_are_not_cross_validated_or_barely_are_warned_about() -> None:
    """Silent before: a threshold from the training scores, the fixed fallback, or a
    cross-validated one at which the held-out markers were mostly missed (synthetic
    3 markers in 60 s: 0.036 at held-out F1 0.11, flagging 90 % of new audio)."""
    low = threshold_warning(ThresholdChoice(0.0357, 0.114, "folds over markers", 3))
    assert "0.0357 is unreliable" in low and "0.11" in low and "--threshold" in low
    one = threshold_warning(
        ThresholdChoice(0.2, None, "from training scores", 0, "one positive marker: no cross")
    )
    assert "0.2 is not cross-validated (one positive marker)" in one
    assert "training scores" in one
    fixed = threshold_warning(ThresholdChoice(0.5, None, "fallback", 0, ""))
    assert "fixed fallback" in fixed
    assert threshold_warning(ThresholdChoice(0.6, 0.8, "leave-one-recording-out", 4)) == ""
    assert threshold_warning(ThresholdChoice(0.3, None, "given", 0)) == ""


def test_mean_choice_averages_the_draws_and_keeps_every_note() -> None:
    a = ThresholdChoice(0.6, 0.7, "leave-one-recording-out", 4, "", "smoothed")
    b = ThresholdChoice(0.7, 0.5, "leave-one-recording-out", 4, "no match at 0.9", "smoothed")
    both = mean_choice([a, b])
    assert both.value == pytest.approx(0.65) and both.cv_f1 == pytest.approx(0.6)
    assert both.draws == (0.6, 0.7) and both.note == "draw 1: no match at 0.9"
    assert "mean of 2 augmentation draws" in both.rule
    assert mean_choice([a]) is a
    fallback = ThresholdChoice(0.5, None, "fallback", 4, "too few")
    assert mean_choice([a, fallback]) is fallback


def test_the_chosen_threshold_says_what_its_folds_found() -> None:
    """A cross-validated F1 alone could not be read ("event F1 0.111 on held-out
    markers"): the choice keeps the held-out markers found and the detections that
    match none at its value, pooled over the folds."""
    curve = _spike_and_plateau()
    folds = [FoldScores(np.arange(10.0), np.zeros(10), 1.0, 10.0, ((2.0, 2.0),)) for _ in range(2)]
    choice = choose_threshold(folds, Postprocessing(), "test", 2)
    found, held_out, unmatched = choice.counts or (-1, -1, -1)
    assert (found, held_out, unmatched) == (0, 2, 0)
    assert choice.as_dict()["held_out"] == {"found": 0, "markers": 2, "unmatched": 0}
    i, _ = pick_threshold(curve)
    assert int(curve.tp[:, i].sum()) == 8  # the plateau: 8 of 10 found, 2 unmatched
    assert ThresholdChoice(0.5, None, "fallback", 0).as_dict()["held_out"] is None
    # folds where the counts depend on the threshold: they are those of the chosen one
    starts = np.arange(0.0, 20.0, 0.1)

    def fold(events: list[float], spots: list[tuple[float, float]]) -> FoldScores:
        p = np.full(len(starts), 0.05)
        for t, v in spots:
            p[(starts >= t - 0.5) & (starts <= t + 0.3)] = v
        return FoldScores(starts, p, 1.0, 20.0, tuple((e, e) for e in events))

    folds = [
        fold([2.0, 8.0], [(2.0, 0.9), (8.0, 0.9), (14.0, 0.9)]),
        fold([5.0, 12.0], [(5.0, 0.9), (12.0, 0.2), (16.0, 0.6)]),
    ]
    choice = choose_threshold(folds, Postprocessing(), "test", 2)
    found, held_out, unmatched = choice.counts or (-1, -1, -1)
    assert held_out == 4 and unmatched > 0
    assert 2 * found / (2 * found + unmatched + held_out - found) == pytest.approx(choice.cv_f1)


def test_a_low_cross_validated_f1_with_the_markers_found_names_unmarked_occurrences() -> None:
    """A few moments marked in a long recording that holds more of the sound (a video
    editor's two gags of ten): the folds find the held-out markers, and the unmarked
    occurrences are detections matching none, so the F1 is low. Before, the warning
    said "mark more occurrences or in more recordings", not that the unmarked ones in
    the marked recording were the cause (they are trained as negatives too)."""
    crowded = threshold_warning(
        ThresholdChoice(0.06, 0.111, "folds over markers", 2, counts=(2, 2, 32))
    )
    assert "2 of 2 held-out marker(s) found, 32 detection(s) matching no marker" in crowded
    assert "mark every occurrence in each recording you mark" in crowded
    assert "--threshold" in crowded
    missed = threshold_warning(
        ThresholdChoice(0.3, 0.2, "leave-one-recording-out", 4, counts=(2, 16, 2))
    )
    assert "2 of 16 held-out marker(s) found" in missed
    assert "every occurrence" not in missed  # mostly missed: not the unmarked ones' doing


def test_fit_on_a_recording_marked_in_part_warns_of_its_unmarked_occurrences(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """End to end: two of seven copies of one horn marked in a minute of noise. The
    training summary and `train`'s text give the counts behind the F1, and the warning
    names the cause."""
    from audio_embed import LogMelEmbedder
    from audio_embed.demo import horn
    from audio_embed.scanner import Recording, Scanner
    from audio_embed.windows import Markers

    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(60 * 16000) * 0.02).astype(np.float32)
    clip = horn(np.random.default_rng(0)) * 0.3
    onsets = [3.0, 11.0, 19.5, 28.0, 36.5, 45.0, 53.0]
    for t in onsets:
        audio[int(t * 16000) : int(t * 16000) + len(clip)] += clip
    rec = Recording(audio, Markers(positive=[t + 0.3 for t in onsets[:2]]), 16000)
    with caplog.at_level("WARNING", logger="audio_embed"):
        scanner = Scanner(LogMelEmbedder(), seed=0).fit([rec])
    th = (scanner.training_summary or {})["threshold"]
    assert th["method"] == "folds over markers" and th["cv_f1"] < 0.5
    held = th["held_out"]
    assert held["markers"] == 2 and held["found"] == 2 and held["unmatched"] > 2
    assert "mark every occurrence in each recording you mark" in th["warning"]
    counts = f"{held['found']} of 2 held-out marker(s) found, {held['unmatched']} detection(s)"
    assert counts in scanner.describe()

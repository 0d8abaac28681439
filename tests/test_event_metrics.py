"""Event metrics: one-to-one IoU matching (DCASE task 5) and sed_eval's collars."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio_embed.detect import Detection
from audio_embed.evaluate import collar_matches, evaluate, iou_matches, iou_matrix
from audio_embed.scanner import ScanResult


def test_iou_matrix_values() -> None:
    m = iou_matrix([(0.0, 2.0), (10.0, 11.0)], [(1.0, 3.0), (20.0, 21.0)])
    assert m[0, 0] == pytest.approx(1 / 3)
    assert m[1].tolist() == [0.0, 0.0] and m[0, 1] == 0.0


def test_iou_matching_is_one_to_one() -> None:
    # One long detection over two events pairs with at most one (and here with none:
    # its IoU with each is 1/5).
    assert iou_matches([(0.0, 1.0), (4.0, 5.0)], [(0.0, 5.0)]) == 0
    # Two detections of one event: one pair, the other detection is a false positive.
    assert iou_matches([(0.0, 1.0)], [(0.0, 1.0), (0.1, 0.9)]) == 1
    # The maximum matching, not the greedy one: detection A suits both events, B only one.
    events = [(0.0, 1.0), (0.5, 1.5)]
    dets = [(0.25, 1.25), (0.0, 0.9)]
    assert iou_matches(events, dets) == 2
    assert iou_matches([], dets) == 0 and iou_matches(events, []) == 0


def test_collar_rules_follow_sed_eval() -> None:
    event = [(10.0, 14.0)]  # offset collar: max(0.2, 0.5 * 4 s) = 2 s
    assert collar_matches(event, [(10.15, 15.9)]) == 1
    assert collar_matches(event, [(10.3, 14.0)]) == 0  # onset 0.3 s off
    assert collar_matches(event, [(10.0, 16.1)]) == 0  # offset 2.1 s off
    assert collar_matches([(0.0, 0.2)], [(0.1, 0.39)]) == 1  # 0.2 s floor on the offset


def _result(dets_at: list[tuple[float, float]], duration: float = 20.0) -> ScanResult:
    starts = np.arange(0.0, duration, 0.5)
    centres = starts + 0.25
    p = np.zeros(len(starts))
    for a, b in dets_at:
        p[(centres > a) & (centres < b)] = 0.9
    return ScanResult("x", starts, p, 0.5, duration, threshold=0.5)


def test_evaluate_reports_every_event_metric() -> None:
    res = _result([(1.0, 2.0), (5.0, 9.0), (15.0, 16.0)])
    ev = evaluate({"x": res}, {"x": [(1.0, 2.0), (5.0, 6.0), (8.0, 9.0)]})
    assert ev.n_detections == 3
    assert ev.iou_true_positives == 1  # (5, 9) is too long for either event inside it
    assert ev.iou_precision == pytest.approx(1 / 3) and ev.iou_recall == pytest.approx(1 / 3)
    assert ev.recall == 1.0  # lenient: the long detection "finds" both
    d = ev.as_dict()
    for key in ("iou_f1", "collar_f1", "lenient_f1", "flagged_fraction", "mean_detection_seconds"):
        assert key in d
    assert d["lenient_f1"] == ev.f1
    assert ev.mean_detection_seconds == pytest.approx(2.0)
    assert ev.mean_event_seconds == pytest.approx(1.0)


_spans = st.lists(
    st.tuples(st.floats(0, 50), st.floats(0.05, 5)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(_spans, _spans)
def test_matches_are_bounded_and_symmetric_in_count(
    events: list[tuple[float, float]], dets: list[tuple[float, float]]
) -> None:
    n = iou_matches(events, dets)
    assert 0 <= n <= min(len(events), len(dets))
    assert iou_matches(dets, events) == n  # IoU is symmetric
    assert collar_matches(events, dets) <= min(len(events), len(dets))
    assert iou_matches(events, events) == len(events) or len(set(events)) < len(events)


@settings(max_examples=60, deadline=None)
@given(_spans, _spans)
def test_collar_f1_agrees_with_sed_eval(
    events: list[tuple[float, float]], dets: list[tuple[float, float]]
) -> None:
    """Dev-only cross-check: runs where sed_eval (and dcase_util) are installed."""
    sed_eval = pytest.importorskip("sed_eval")
    dcase_util = pytest.importorskip("dcase_util")

    def container(spans: list[tuple[float, float]]) -> object:
        return dcase_util.containers.MetaDataContainer(
            [{"filename": "x.wav", "event_label": "t", "onset": a, "offset": b} for a, b in spans]
        )

    metric = sed_eval.sound_event.EventBasedMetrics(event_label_list=["t"], t_collar=0.2)
    metric.evaluate(reference_event_list=container(events), estimated_event_list=container(dets))
    counts = metric.results_overall_metrics()
    ours = collar_matches(events, dets)
    p = ours / len(dets) if dets else 0.0
    r = ours / len(events) if events else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    theirs = counts["f_measure"]["f_measure"]
    assert f == pytest.approx(0.0 if np.isnan(theirs) else theirs, abs=1e-9)


def test_detection_is_importable_from_the_scanner() -> None:
    from audio_embed.scanner import Detection as D

    assert D is Detection

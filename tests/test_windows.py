"""Window strategies and marker labelling, edge cases included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audio_embed.errors import InvalidInputError, MarkerError
from audio_embed.windows import Markers, SlidingWindows, TargetedWindows


def test_sliding_grid_and_end_alignment() -> None:
    sw = SlidingWindows(8.0, 1.0)
    np.testing.assert_array_equal(sw.starts(10.0), [0.0, 1.0, 2.0])
    # 10.5 s: the grid stops at 2 (2 + 8 = 10 < 10.5), one more window is aligned to the end
    np.testing.assert_allclose(sw.starts(10.5), [0.0, 1.0, 2.0, 2.5])
    np.testing.assert_allclose(SlidingWindows(4.0, 3.0).starts(12.0), [0.0, 3.0, 6.0, 8.0])


@pytest.mark.parametrize("duration", [0.01, 3.0, 8.0])
def test_short_file_gets_exactly_one_window(duration: float) -> None:
    np.testing.assert_array_equal(SlidingWindows(8.0, 1.0).starts(duration), [0.0])


@pytest.mark.parametrize(
    ("window", "hop"), [(0.0, 1.0), (-8.0, 1.0), (8.0, 0.0), (8.0, -1.0), (8.0, math.nan)]
)
def test_non_positive_window_or_hop(window: float, hop: float) -> None:
    with pytest.raises(InvalidInputError, match="must be > 0"):
        SlidingWindows(window, hop)


@given(
    duration=st.floats(0.05, 600.0),
    window=st.floats(0.5, 20.0),
    hop=st.floats(0.1, 20.0),
)
def test_sliding_windows_cover_the_recording(duration: float, window: float, hop: float) -> None:
    starts = SlidingWindows(window, hop).starts(duration)
    assert starts[0] == 0.0
    assert np.all(np.diff(starts) > 0)
    assert starts[-1] + window >= duration - 1e-6  # the end is covered
    assert np.all(starts >= 0) and np.all(starts <= max(duration - window, 0.0) + 1e-6)
    if hop <= window:  # no gaps: each window starts before the previous one ends
        assert np.all(starts[1:] <= starts[:-1] + window + 1e-9)


def test_markers_validation_and_dedup() -> None:
    m = Markers(positive=[5.0, 5.0, 1.0], soft=[3], negative=[])
    assert m.positive == (1.0, 5.0) and m.all == (1.0, 3.0, 5.0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(MarkerError):
            Markers(positive=[bad])


def test_markers_beyond_the_end_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = Markers(positive=[10.0, 500.0])
    assert m.within(100.0).positive == (10.0,)
    assert "beyond the end" in caplog.text and "ignored: 500 s" in caplog.text
    assert "milliseconds" not in caplog.text
    # every marker far past the end, each inside it in seconds: times in milliseconds
    # (before: the count alone, then "The markers produced no training windows at all")
    caplog.clear()
    assert Markers(positive=[36737.0, 68836.0], negative=[5000.0]).within(300.0).all == ()
    assert "3 marker(s)" in caplog.text and "5000 s, 36737 s, 68836 s" in caplog.text
    assert "are the times in milliseconds?" in caplog.text


def test_targeted_original_rules() -> None:
    tw = TargetedWindows(window=8.0, tolerance=2.0, neg_margin=10.0, labelling="targeted")
    lw = tw.windows(60.0, Markers(positive=[20.5], negative=[40.0]))
    pos = lw.starts[lw.labels == 1]
    neg = lw.starts[lw.labels == 0]
    np.testing.assert_array_equal(pos, [19.0, 20.0, 21.0, 22.0])  # whole seconds within ±2
    # manual negatives around 40 (38..42) plus automatic ones on the 4 s grid (starts up to
    # 60 - 8 = 52) farther than 10 s from every marker
    expected_auto = [s for s in np.arange(0, 52.1, 4) if min(abs(s - 20.5), abs(s - 40)) > 10]
    assert set(neg) == set([38.0, 39.0, 40.0, 41.0, 42.0]) | set(expected_auto)
    assert not set(pos) & set(neg)


def test_targeted_positive_windows_stay_inside_the_file() -> None:
    tw = TargetedWindows(8.0, tolerance=12.0, neg_margin=0, labelling="targeted")
    lw = tw.windows(30.0, Markers(positive=[3.0, 29.0]))
    assert lw.starts.min() == 0.0 and lw.starts.max() == 22.0  # last start = 30 - 8
    assert lw.n_negative == 0  # neg_margin <= 0: no automatic negatives


def test_targeted_soft_markers_are_never_negative() -> None:
    tw = TargetedWindows(tolerance=1.0, neg_margin=5.0, neg_stride=1.0, labelling="targeted")
    lw = tw.windows(100.0, Markers(positive=[10.0], soft=[50.0], negative=[50.0]))
    neg = set(lw.starts[lw.labels == 0])
    assert not neg & {49.0, 50.0, 51.0}
    assert all(abs(s - 50.0) > 5 for s in neg)


def test_no_markers_give_no_windows() -> None:
    lw = TargetedWindows().windows(100.0, Markers())
    assert len(lw.starts) == 0


def test_overlap_labelling() -> None:
    tw = TargetedWindows(window=8.0, tolerance=0.0, neg_margin=4.0, labelling="overlap", hop=1.0)
    lw = tw.windows(60.0, Markers(positive=[20.0]))
    pos = lw.starts[lw.labels == 1]
    np.testing.assert_array_equal(pos, np.arange(12.0, 21.0))  # windows holding t=20
    neg = lw.starts[lw.labels == 0]
    # negatives: no marker within 4 s of the window [s, s + 8]
    assert all(s + 8 < 16.0 or s > 24.0 for s in neg)
    assert {0.0, 7.0, 25.0, 52.0} <= set(neg)


def test_bad_targeted_parameters() -> None:
    with pytest.raises(InvalidInputError, match="tolerance"):
        TargetedWindows(tolerance=-1)
    with pytest.raises(InvalidInputError, match="labelling"):
        TargetedWindows(labelling="nearest")  # type: ignore[arg-type]


def test_window_settings_that_only_look_like_numbers_are_refused() -> None:
    """``SlidingWindows("1", 0.1)`` (a value from a config file) was kept as text and
    failed in the first scan with ``TypeError: unsupported operand type(s) for -``;
    ``SlidingWindows(True, 0.5)`` was a 1 s window; ``TargetedWindows(tolerance="1")``
    was a ``TypeError``."""
    for make, name in (
        (lambda: SlidingWindows("1", 0.1), "'window' parameter of SlidingWindows"),
        (lambda: SlidingWindows(1.0, "0.5"), "'hop' parameter of SlidingWindows"),
        (lambda: SlidingWindows(True, 0.5), "'window' parameter of SlidingWindows"),
        (lambda: TargetedWindows(window="2"), "'window' parameter of TargetedWindows"),
        (lambda: TargetedWindows(tolerance="1"), "'tolerance' parameter of TargetedWindows"),
        (lambda: TargetedWindows(neg_margin=None), "'neg_margin' parameter of TargetedWindows"),
    ):
        with pytest.raises(InvalidInputError, match=f"{name} must be a number of seconds"):
            make()
    assert SlidingWindows(np.float32(2.0), np.int64(1)).starts(3.0).tolist() == [0.0, 1.0]


def test_original_settings() -> None:
    tw = TargetedWindows.original()
    assert (tw.tolerance, tw.neg_margin, tw.neg_stride, tw.labelling) == (
        12.0,
        120.0,
        4.0,
        "targeted",
    )
    lw = tw.windows(300.0, Markers(positive=[150.0]))
    assert lw.n_positive == 25  # 138..162
    # automatic negatives start more than 120 s from the marker: < 30 or > 270 (up to 292)
    expected = {float(s) for s in range(0, 30, 4)} | {float(s) for s in range(272, 293, 4)}
    assert set(lw.starts[lw.labels == 0]) == expected


def test_marked_spans_label_the_windows_holding_the_sound() -> None:
    # A 0.4 s selection at 10.0-10.4 s; 1 s windows every 0.1 s.
    m = Markers(spans=[(10.0, 10.4)])
    assert m.positive == (10.2,) and m.span_of(10.2) == (10.0, 10.4)
    lw = TargetedWindows(1.0, hop=0.1).windows(30.0, m)
    pos = lw.starts[lw.labels == 1]
    # windows holding at least half of it (0.2 s): starts 9.2 ... 10.2
    np.testing.assert_allclose(pos, np.round(np.arange(9.2, 10.21, 0.1), 6), atol=1e-6)
    # A long selection: only windows mostly inside it, none merely touching it.
    long_ = TargetedWindows(1.0, hop=0.1).windows(30.0, Markers(spans=[(10.0, 14.0)]))
    starts = long_.starts[long_.labels == 1]
    assert starts.min() == pytest.approx(9.5) and starts.max() == pytest.approx(13.5)
    neg = long_.starts[long_.labels == 0]
    assert not ((neg + 1.0 > 10.0 - 8.0) & (neg < 14.0 + 8.0)).any()  # margin from the ends


def test_bad_spans_raise() -> None:
    with pytest.raises(MarkerError, match="span"):
        Markers(spans=[(3.0, 2.0)])


def test_one_marker_given_as_a_number_and_a_text_refused() -> None:
    """``Markers(positive=12.5)`` was "TypeError: 'float' object is not iterable";
    ``Markers(positive="12")`` marked 1 s and 2 s without a word."""
    assert Markers(positive=12.5).positive == (12.5,)
    assert Markers(negative=np.float64(3)).negative == (3.0,)
    assert Markers(soft=7).soft == (7.0,)
    with pytest.raises(MarkerError, match=r"numbers of seconds.*the text '12'"):
        Markers(positive="12")  # type: ignore[arg-type]


def test_one_span_given_as_a_pair_and_malformed_spans_refused() -> None:
    """``Markers(spans=(3, 5))`` (one selection) was "TypeError: 'int' object is not
    iterable", as was ``spans=[(1,)]``; one pair is one span now, the rest a
    MarkerError showing the expected shape."""
    assert Markers(spans=(3, 5)).spans == ((3.0, 5.0),)
    assert Markers(spans=[(3, 5)]).spans == ((3.0, 5.0),)
    for bad in ([3, 5, 7], [(1.0,)], ["ab"]):
        with pytest.raises(MarkerError, match=r"\(start, end\) pairs"):
            Markers(spans=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tw", [TargetedWindows(hop=0.5), TargetedWindows.original(1.0)], ids=["overlap", "targeted"]
)
def test_lost_negatives_are_those_that_label_no_window(tw: TargetedWindows) -> None:
    m = Markers(positive=[10.0], negative=[10.3, 25.0])
    labelled = tw.windows(40.0, m)
    neg = labelled.starts[labelled.labels == 0]
    assert not ((neg <= 10.3) & (neg + tw.window >= 10.3)).any()  # lost indeed
    assert tw.lost_negatives(40.0, m) == (10.3,)
    assert tw.lost_negatives(40.0, Markers(positive=[10.0], negative=[25.0])) == ()
    assert tw.lost_negatives(40.0, Markers(positive=[10.0])) == ()


def test_a_negative_inside_a_marked_span_is_lost_and_one_after_a_point_is_not() -> None:
    tw = TargetedWindows(hop=0.1)
    assert tw.lost_negatives(40.0, Markers(spans=[(9.5, 11.5)], negative=[10.3])) == (10.3,)
    # windows starting 10.1-10.3 hold the negative and not the point at 10 s
    assert tw.lost_negatives(40.0, Markers(positive=[10.0], negative=[10.3])) == ()
    assert tw.lost_negatives(40.0, Markers(positive=[10.0], negative=[10.05])) == (10.05,)

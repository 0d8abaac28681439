"""Selections (markers with a start and an end) size the post-processing; points do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import audio_embed.scanner.crossval as crossval
from audio_embed import LogMelEmbedder
from audio_embed.demo import synth_recording
from audio_embed.detect import Postprocessing
from audio_embed.scanner import DEFAULT_POSTPROCESSING, Recording, Scanner
from audio_embed.scanner.defaults import span_postprocessing
from audio_embed.windows import Markers

SR = 16000


def test_four_second_selections_give_a_four_second_rule() -> None:
    post, summary = span_postprocessing(DEFAULT_POSTPROCESSING, [4.0, 3.8, 4.2], window=1.0)
    assert post.min_duration == pytest.approx(4.0)  # the median
    assert post.hysteresis == 0.5  # longer than two windows
    assert (post.smooth, post.valley) == (DEFAULT_POSTPROCESSING.smooth, 0.5)
    assert summary["source"] == "selections" and summary["selections"] == 3
    assert summary["median_duration"] == pytest.approx(4.0) and summary["long_sound"]
    assert summary["postprocessing"] == post.as_dict()
    assert any("hysteresis" in c for c in summary["changed"])


def test_short_selections_keep_the_hysteresis() -> None:
    post, summary = span_postprocessing(DEFAULT_POSTPROCESSING, [0.9, 1.0, 1.1], window=1.0)
    assert post.min_duration == pytest.approx(1.0)
    assert post.hysteresis == DEFAULT_POSTPROCESSING.hysteresis
    assert not summary["long_sound"]
    # the same sounds with windows of a quarter of a second are long
    short_windows, _ = span_postprocessing(DEFAULT_POSTPROCESSING, [1.0], window=0.25)
    assert short_windows.hysteresis == 0.5


def test_points_keep_the_post_processing() -> None:
    post, summary = span_postprocessing(DEFAULT_POSTPROCESSING, [], window=1.0)
    assert post is DEFAULT_POSTPROCESSING
    assert summary["source"] == "points"


def test_a_setting_that_goes_further_is_kept() -> None:
    base = Postprocessing(smooth=0.5, hysteresis=0.3, min_duration=6.0)
    post, _ = span_postprocessing(base, [4.0, 4.0], window=1.0)
    assert (post.hysteresis, post.min_duration) == (0.3, 6.0)


def _recording(seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    audio, targets, _ = synth_recording(40.0, 3, 4, np.random.default_rng(seed))
    return audio, targets


@pytest.fixture(scope="module")
def recordings() -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
    return [_recording(41), _recording(42)]


def _fit(
    recordings: list[tuple[np.ndarray, list[tuple[float, float]]]],
    spans: bool,
    monkeypatch: pytest.MonkeyPatch | None = None,
    **kwargs: Any,
) -> tuple[Scanner, list[Postprocessing]]:
    """A scanner fitted on every target marked as a 4 s selection from its onset (or
    as a point at its onset); the post-processing each threshold choice was given."""
    seen: list[Postprocessing] = []
    if monkeypatch is not None:
        original = crossval.choose_threshold

        def spy(folds: Any, post: Postprocessing, *args: Any, **kw: Any) -> Any:
            seen.append(post)
            return original(folds, post, *args, **kw)

        monkeypatch.setattr(crossval, "choose_threshold", spy)
    recs = [
        Recording(
            audio,
            Markers(spans=[(a, a + 4.0) for a, _ in targets])
            if spans
            else Markers(positive=[a for a, _ in targets]),
            SR,
        )
        for audio, targets in recordings
    ]
    scanner = Scanner(LogMelEmbedder(), augmentation=None, **kwargs).fit(recs)
    return scanner, seen


def test_a_scanner_trained_on_4s_selections_sizes_its_post_processing(
    recordings: list[tuple[np.ndarray, list[tuple[float, float]]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    scanner, seen = _fit(recordings, spans=True, monkeypatch=monkeypatch)
    post = scanner.scan_postprocessing
    assert post.min_duration == pytest.approx(4.0) and post.hysteresis == 0.5
    assert scanner.postprocessing == DEFAULT_POSTPROCESSING  # the setting is unchanged
    assert seen == [post]  # the threshold was chosen for the detections scans make
    summary = (scanner.training_summary or {})["postprocessing"]
    assert summary["source"] == "selections" and summary["median_duration"] == 4.0
    audio, _ = recordings[0]
    result = scanner.scan(audio, sample_rate=SR)
    assert result.postprocessing == post
    dets = result.detections()
    assert dets
    for k, d in enumerate(dets):  # widened to 4 s unless a neighbour or the file's end stops it
        left = dets[k - 1].end if k else 0.0
        right = dets[k + 1].start if k + 1 < len(dets) else result.duration
        assert d.end - d.start >= 4.0 - 1e-6 or d.start <= left + 1e-6 or d.end >= right - 1e-6
    # saved and loaded: the same post-processing, and the setting it came from
    loaded = Scanner.load(scanner.save(tmp_path / "s.scanner"))
    assert loaded.scan_postprocessing == post
    assert loaded.postprocessing == DEFAULT_POSTPROCESSING
    meta = Scanner.read_metadata(tmp_path / "s.scanner")
    assert meta["postprocessing"] == post.as_dict()  # what scans use, for older readers too


def test_point_markers_keep_the_default_post_processing(
    recordings: list[tuple[np.ndarray, list[tuple[float, float]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanner, seen = _fit(recordings, spans=False, monkeypatch=monkeypatch)
    assert scanner.postprocessing_ is None
    assert scanner.scan_postprocessing == DEFAULT_POSTPROCESSING
    assert seen == [DEFAULT_POSTPROCESSING]
    assert (scanner.training_summary or {})["postprocessing"]["source"] == "points"


def test_the_rule_can_be_turned_off(
    recordings: list[tuple[np.ndarray, list[tuple[float, float]]]],
) -> None:
    given = attrs.evolve(DEFAULT_POSTPROCESSING, smooth=0.3)
    scanner, _ = _fit(recordings, spans=True, postprocessing=given, postprocessing_from_spans=False)
    assert scanner.scan_postprocessing == given
    assert (scanner.training_summary or {})["postprocessing"]["source"] == "given"
    # refitting on points after selections drops the sized post-processing
    refit, _ = _fit(recordings, spans=True)
    assert refit.postprocessing_ is not None
    audio, targets = recordings[0]
    refit.fit([Recording(audio, Markers(positive=[a for a, _ in targets]), SR)])
    assert refit.postprocessing_ is None

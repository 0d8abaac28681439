"""Point markers: the marked sound's duration estimated at fit time sizes the
post-processing for long sounds; short sounds keep the scanner's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio_embed import LogMelEmbedder
from audio_embed.cli import main
from audio_embed.demo import SR, horn, synth_recording, write_wav
from audio_embed.scanner import DEFAULT_POSTPROCESSING, Recording, Scanner
from audio_embed.scanner.defaults import MIN_POINT_MARKERS, point_postprocessing
from audio_embed.scanner.point_duration import embedding_run_durations, point_durations
from audio_embed.windows import Markers


def test_a_sound_that_stays_like_its_onset_is_measured() -> None:
    rng = np.random.default_rng(0)
    hop, window = 0.1, 1.0
    starts = np.arange(0.0, 60.0, hop)
    x = rng.standard_normal((len(starts), 16))
    sound = rng.standard_normal(16) * 3
    # windows mostly inside a 4 s sound from 20 s: start in [19.5, 23.5]
    inside = (starts >= 19.5) & (starts <= 23.5)
    x[inside] += sound
    (d,) = embedding_run_durations(starts, x, window, [20.0], smooth=0.5)
    assert 3.0 <= d <= 5.0
    # a marker on plain background: a short run
    (short,) = embedding_run_durations(starts, x, window, [45.0], smooth=0.5)
    assert short < 2.0
    assert embedding_run_durations(np.empty(0), np.empty((0, 16)), window, [1.0]) == [0.0]


def test_the_background_is_the_one_before_the_marker() -> None:
    """A short sound in a stretch whose background differs from the rest of the
    recording: measured against that stretch, not the recording's median."""
    rng = np.random.default_rng(1)
    hop, window = 0.1, 1.0
    starts = np.arange(0.0, 120.0, hop)
    x = rng.standard_normal((len(starts), 16))
    floor = rng.standard_normal(16) * 4
    x[(starts >= 30.0) & (starts <= 60.0)] += floor  # another background for 30 s
    x[(starts >= 39.5) & (starts <= 40.5)] += rng.standard_normal(16) * 3  # a 1 s sound at 40 s
    (d,) = embedding_run_durations(starts, x, window, [40.0], smooth=0.5)
    assert d < 2.0  # against the recording's median, the whole stretch would count


def _drifting(length: float, onsets: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Window embeddings (1 s windows, 0.1 s hop) of sounds whose timbre turns from one
    direction to an orthogonal one over their first 2 s, then stays there."""
    rng = np.random.default_rng(0)
    starts = np.arange(0.0, 140.0, 0.1)
    x = rng.standard_normal((len(starts), 16))
    a = rng.standard_normal(16)
    a /= np.linalg.norm(a)
    b = rng.standard_normal(16)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    for t in onsets:
        for i in np.flatnonzero((starts >= t - 0.5) & (starts <= t + length - 0.5)):
            turn = np.pi / 2 * min(max((starts[i] + 0.5 - t) / 2.0, 0.0), 1.0)
            x[i] += 5.0 * (np.cos(turn) * a + np.sin(turn) * b)
    return starts, x


def test_a_long_sound_whose_timbre_drifts_is_sized_from_its_first_windows() -> None:
    """Compared with its first window only, a 4 s sound that drifts away from it ends
    early; compared with every window within the first median, it is measured whole.
    Short sounds stay short either way."""
    onsets = [20.0, 50.0, 80.0, 110.0]
    starts, x = _drifting(4.0, onsets)
    first, sized = point_durations([(onsets, starts, x)], 1.0, smooth=0.5)
    assert first == embedding_run_durations(starts, x, 1.0, onsets, smooth=0.5)
    assert 2.0 <= float(np.median(first)) < 3.0
    assert all(3.5 <= d <= 4.5 for d in sized)
    # the reference is what changes it: the first median's windows
    ref = embedding_run_durations(
        starts, x, 1.0, onsets, smooth=0.5, reference=float(np.median(first))
    )
    assert ref == sized
    # a reference no longer than a window is the marker's window alone
    assert embedding_run_durations(starts, x, 1.0, onsets, smooth=0.5, reference=1.0) == first
    starts, x = _drifting(1.0, onsets)
    first, sized = point_durations([(onsets, starts, x)], 1.0, smooth=0.5)
    assert max(first) < 2.0 and max(sized) < 2.0
    assert point_durations([([], starts, x)], 1.0) == ([], [])


def test_long_estimates_size_the_post_processing_short_ones_do_not() -> None:
    many = MIN_POINT_MARKERS // 2
    post, summary = point_postprocessing(
        DEFAULT_POSTPROCESSING, [2.5] * many + [3.5] * many, window=1.0
    )
    assert post.min_duration == pytest.approx(3.0) and post.hysteresis == 0.5
    assert summary["source"] == "points (estimated)" and summary["points"] == 2 * many
    assert f"estimated from {2 * many} point marker(s)" in summary["reason"]
    post, summary = point_postprocessing(DEFAULT_POSTPROCESSING, [1.5] * 2 * many, window=1.0)
    assert post is DEFAULT_POSTPROCESSING
    assert summary["source"] == "points" and summary["estimated_duration"] == 1.5
    # too few markers to trust the median: nothing is sized, and the summary says why
    few = [3.0] * (MIN_POINT_MARKERS - 1)
    post, summary = point_postprocessing(DEFAULT_POSTPROCESSING, few, window=1.0)
    assert post is DEFAULT_POSTPROCESSING and "too few" in summary["reason"]
    post, summary = point_postprocessing(DEFAULT_POSTPROCESSING, [], window=1.0)
    assert post is DEFAULT_POSTPROCESSING and summary["source"] == "points"


def test_the_first_estimate_decides_long_the_second_sizes() -> None:
    many = [2.5] * MIN_POINT_MARKERS
    post, summary = point_postprocessing(
        DEFAULT_POSTPROCESSING, many, 1.0, [4.0] * MIN_POINT_MARKERS
    )
    assert post.min_duration == pytest.approx(4.0) and post.hysteresis == 0.5
    assert summary["median_duration"] == 4.0 and summary["estimated_duration"] == 2.5
    # a short first estimate keeps the scanner's, however long the second
    short = [1.5] * MIN_POINT_MARKERS
    post, summary = point_postprocessing(
        DEFAULT_POSTPROCESSING, short, 1.0, [4.0] * MIN_POINT_MARKERS
    )
    assert post is DEFAULT_POSTPROCESSING and summary["estimated_duration"] == 1.5


def _long_recording(seed: int) -> tuple[np.ndarray, list[float]]:
    """60 s of noise with three 4 s sounds (the demo horn repeated) and short distractors."""
    rng = np.random.default_rng(seed)
    audio, _, _ = synth_recording(60.0, 0, 4, rng)
    onsets = []
    for slot in (4.0, 28.0, 50.0):
        onset = slot + float(rng.uniform(0, 1))
        clip = np.tile(horn(rng), 5)[: int(4.0 * SR)] * 0.25
        a = int(onset * SR)
        audio[a : a + len(clip)] += clip
        onsets.append(onset)
    return audio, onsets


def _fit(recordings: list[tuple[np.ndarray, list[float]]], **kwargs: Any) -> Scanner:
    recs = [Recording(a, Markers(positive=t), SR) for a, t in recordings]
    return Scanner(LogMelEmbedder(), augmentation=None, **kwargs).fit(recs)


@pytest.fixture(scope="module")
def long_sounds() -> list[tuple[np.ndarray, list[float]]]:
    return [_long_recording(seed) for seed in (1, 2, 3, 4)]  # 12 markers


def test_points_at_long_sounds_size_the_post_processing(
    long_sounds: list[tuple[np.ndarray, list[float]]],
) -> None:
    scanner = _fit(long_sounds)
    summary = (scanner.training_summary or {})["postprocessing"]
    assert summary["source"] == "points (estimated)", summary
    post = scanner.scan_postprocessing
    assert 2.0 <= post.min_duration <= 6.0 and post.hysteresis == 0.5
    # sized from the second estimate, at least the first (which decided "long")
    assert post.min_duration == summary["median_duration"] >= summary["estimated_duration"]
    assert scanner.postprocessing == DEFAULT_POSTPROCESSING  # the setting is unchanged
    # opt out: the scanner's post-processing
    off = _fit(long_sounds, postprocessing_from_points=False)
    assert off.scan_postprocessing == DEFAULT_POSTPROCESSING
    assert (off.training_summary or {})["postprocessing"]["source"] == "points"
    # selections are never overridden by an estimate
    spans = [(a, [(t, t + 1.5) for t in ts]) for a, ts in long_sounds]
    sel = Scanner(LogMelEmbedder(), augmentation=None).fit(
        [Recording(a, Markers(spans=s), SR) for a, s in spans]
    )
    assert (sel.training_summary or {})["postprocessing"]["source"] == "selections"
    assert sel.scan_postprocessing.min_duration == pytest.approx(1.5)


def test_points_at_short_sounds_keep_the_post_processing() -> None:
    recordings = []
    for seed in (41, 42, 43, 44):
        audio, targets, _ = synth_recording(40.0, 3, 4, np.random.default_rng(seed))
        recordings.append((audio, [a for a, _ in targets]))
    scanner = _fit(recordings)
    summary = (scanner.training_summary or {})["postprocessing"]
    assert summary["source"] == "points"
    assert 0 < summary["estimated_duration"] < 2.0
    assert scanner.scan_postprocessing == DEFAULT_POSTPROCESSING


def test_train_says_the_durations_were_estimated_from_the_points(
    long_sounds: list[tuple[np.ndarray, list[float]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = ["file,time,kind"]
    for k, (audio, onsets) in enumerate(long_sounds):
        write_wav(tmp_path / f"r{k}.wav", audio, SR)
        rows += [f"r{k}.wav,{t:.3f},positive" for t in onsets]
    (tmp_path / "markers.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "s.scanner"
    capsys.readouterr()
    rc = main(
        ["train", "--markers", str(tmp_path / "markers.csv"), "--model", "LOGMEL",
         "--out", str(out), "--augment", "0"]
    )  # fmt: skip
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "Post-processing sized from the marked sounds' durations, estimated from 12 point" in (
        stdout
    )
    meta = Scanner.read_metadata(out)
    assert meta["training_summary"]["postprocessing"]["source"] == "points (estimated)"
    assert meta["postprocessing_from_points"] is True
    assert Scanner.load(out).scan_postprocessing.hysteresis == 0.5

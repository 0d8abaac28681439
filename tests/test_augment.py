"""MixAugmentation: marked sounds cut, changed and mixed into other places."""

from __future__ import annotations

import numpy as np
import pytest

from audio_embed.augment import MixAugmentation
from audio_embed.errors import InvalidInputError

SR = 16000


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _source(marker: float = 5.0, hz: float = 1000.0) -> np.ndarray:
    """10 s of silence with a 0.5 s tone starting at ``marker``."""
    audio = np.zeros(10 * SR, np.float32)
    audio[round(marker * SR) : round((marker + 0.5) * SR)] = _tone(0.5, hz)
    return audio


def _dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[spectrum.argmax()])


def test_the_sound_lands_on_the_new_marker_away_from_known_markers() -> None:
    background = np.zeros(60 * SR, np.float32)
    known = [20.0, 35.0]
    aug = MixAugmentation(copies=5, gain_db=(0.0, 0.0), min_distance=6.0, seed=3)
    mixed = aug.mix([(_source(), [5.0])], [(background, known)], SR)
    assert len(mixed) == 5
    for m in mixed:
        assert (m.source, m.background) == ((0, 0), 0)
        assert np.abs(np.asarray(known) - m.marker).min() >= 6.0
        assert m.marker == pytest.approx(round(m.marker / 0.1) * 0.1, abs=1e-9)
        assert m.start == pytest.approx(m.marker - 3.0, abs=1 / SR)
        assert len(m.audio) == round(7.0 * SR)
        # silence mixed with the tone: loud exactly from the marker for 0.5 s
        loud = np.flatnonzero(np.abs(m.audio) > 0.05)
        onset = m.start + loud[0] / SR
        assert onset == pytest.approx(m.marker, abs=0.025)  # the 20 ms fade-in
        assert (loud[-1] - loud[0]) / SR == pytest.approx(0.5, abs=0.03)


def test_gain_scales_the_added_sound_and_keeps_the_background() -> None:
    rng = np.random.default_rng(0)
    background = (0.01 * rng.standard_normal(40 * SR)).astype(np.float32)
    source = _source()
    plain = MixAugmentation(gain_db=(0.0, 0.0), seed=1).mix([(source, [5.0])], [(background, [])])
    louder = MixAugmentation(gain_db=(6.0, 6.0), seed=1).mix([(source, [5.0])], [(background, [])])
    (a,), (b,) = plain, louder
    assert (a.marker, a.start) == (b.marker, b.start)  # same seed: same place
    first = round(a.start * SR)
    own = background[first : first + len(a.audio)]
    added_a, added_b = a.audio - own, b.audio - own
    assert np.abs(added_a).max() > 0.4
    np.testing.assert_allclose(added_b, added_a * 10 ** (6 / 20), rtol=1e-4, atol=1e-5)
    assert b.gain_db == 6.0


def test_speed_moves_pitch_and_duration_together() -> None:
    background = np.zeros(30 * SR, np.float32)
    aug = MixAugmentation(speed=(1.25, 1.25), gain_db=(0.0, 0.0), seed=0)
    (m,) = aug.mix([(_source(hz=800.0), [5.0])], [(background, [])], SR)
    loud = np.flatnonzero(np.abs(m.audio) > 0.05)
    assert (loud[-1] - loud[0]) / SR == pytest.approx(0.5 / 1.25, abs=0.03)
    assert _dominant_hz(m.audio[loud[0] : loud[-1]]) == pytest.approx(1000.0, rel=0.02)
    assert m.speed == 1.25


def test_every_marker_into_every_background_and_reproducible() -> None:
    sources = [(_source(4.0), [4.0]), (_source(6.0), [6.0])]
    backgrounds = [(np.zeros(40 * SR, np.float32), [4.0]), (np.zeros(50 * SR, np.float32), [])]
    aug = MixAugmentation(copies=2, speed=(0.9, 1.1), eq_db=3.0, seed=7)
    mixed = aug.mix(sources, backgrounds, SR)
    assert sorted((m.source, m.background) for m in mixed) == sorted(
        ((i, 0), j) for i in range(2) for j in range(2) for _ in range(2)
    )
    again = aug.mix(sources, backgrounds, SR)
    assert [m.marker for m in again] == [m.marker for m in mixed]
    np.testing.assert_array_equal(again[0].audio, mixed[0].audio)
    other = MixAugmentation(copies=2, speed=(0.9, 1.1), eq_db=3.0, seed=8).mix(
        sources, backgrounds, SR
    )
    assert [m.marker for m in other] != [m.marker for m in mixed]


def test_no_place_skips_the_copy(caplog: pytest.LogCaptureFixture) -> None:
    short = np.zeros(8 * SR, np.float32)  # too short for 3 s + 4 s of context and 1 s margins
    assert MixAugmentation().mix([(_source(), [5.0])], [(short, [])], SR) == []
    crowded = np.zeros(30 * SR, np.float32)
    assert MixAugmentation().mix([(_source(), [5.0])], [(crowded, [10.0, 20.0])], SR) == []
    assert "skipped" in caplog.text
    caplog.clear()  # one warning per recording with the count, not one per copy
    three = MixAugmentation(copies=3).mix([(_source(), [2.0, 5.0])], [(short, [])], SR)
    assert three == []
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "No place 8.0 s from every marker in recording 0 (8.0 s long): 6 of 6 copies skipped."
    ]
    # training names the file ("recording 0" was the first training file, unnamed)
    caplog.clear()
    MixAugmentation().mix([(_source(), [5.0])], [(short, [])], SR, names=["take [1].wav"])
    assert "in take [1].wav (8.0 s long): 1 of 1" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"copies": -1}, "copies"),
        ({"gain_db": (3.0, -3.0)}, "gain_db"),
        ({"speed": (0.0, 1.0)}, "speed"),
        ({"speed": (1.1, 0.9)}, "speed"),
        ({"eq_db": -1.0}, "eq_db"),
        ({"after": 0.0}, "after"),
        ({"min_distance": float("nan")}, "min_distance"),
        ({"context": (-1.0, 4.0)}, "context"),
        ({"step": 0.0}, "step"),
        ({"draws": 0}, "draws"),
        ({"draws": 2.0}, "draws"),
        ({"draws": True}, "draws"),
        ({"copies": 1.5}, "copies"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidInputError, match=f"'{name}' parameter of MixAugmentation"):
        MixAugmentation(**kwargs)  # type: ignore[arg-type]


def test_bad_sample_rate_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="sample_rate"):
        MixAugmentation().mix([], [], 0)

"""A silent recording (or a silent audio stream of a video, OBS's unrecorded track)
is said, not scanned to 0 detections or trained on without a word."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
import soundfile as sf
from conftest import SR, fit_on_marks_beside, marks_beside, video_with_tracks

from audio_embed import LogMelEmbedder, TrainingDataError
from audio_embed.bandwidth import SILENCE_DBFS, BandEdge, is_silent, silence_warning
from audio_embed.cache import EmbeddingCache
from audio_embed.cli import main
from audio_embed.index import EmbeddingIndex
from audio_embed.review import fit_from_index
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import Markers

SECONDS = 30.0


pytestmark = pytest.mark.usefixtures("private_cache")


def _recording(seed: int, level: float = 0.05) -> tuple[np.ndarray, list[float]]:
    """Noise at ``level`` (its standard deviation) with a 1 kHz call every 10 s."""
    rng = np.random.default_rng(seed)
    x = (level * rng.standard_normal(round(SECONDS * SR))).astype(np.float32)
    t = np.arange(SR) / SR
    call = (4 * level * np.sin(2 * np.pi * 1000 * t) * np.hanning(SR)).astype(np.float32)
    marks = [float(m) for m in np.arange(5.0, SECONDS - 5, 10.0) + rng.uniform(0, 2)]
    for m in marks:
        x[round(m * SR) : round(m * SR) + SR] += call
    return x, marks


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("silence")
    out: dict[str, Path] = {}
    for name, seed in (("train_a", 1), ("train_b", 2)):
        x, marks = _recording(seed)
        out[name] = root / f"{name}.wav"
        sf.write(out[name], x, SR)
        (root / f"{name}.txt").write_text(",".join(map(str, marks)))
    out["silent"] = root / "silent.wav"
    sf.write(out["silent"], np.zeros(round(SECONDS * SR), np.float32), SR)
    (root / "silent.txt").write_text("12.0")
    # quiet but not silent: noise at -70 dBFS RMS, its peak near -58 dBFS
    out["quiet"] = root / "quiet.wav"
    sf.write(out["quiet"], _recording(5, level=10 ** (-70 / 20))[0], SR)
    # an OBS video whose track 0 was not recorded (zeros) and track 1 holds the sound
    sound, marks = _recording(3)
    out["obs"] = video_with_tracks(
        root / "obs.mkv",
        [np.zeros_like(sound), sound],
        seconds=SECONDS,
        metadata=[{"title": "Mic"}, {"title": "Game"}],
    )
    return out


@pytest.fixture(scope="module")
def trained(files: dict[str, Path]) -> Scanner:
    return fit_on_marks_beside(files, ("train_a", "train_b"))


def test_the_peak_is_of_every_sample_over_every_block() -> None:
    x = np.zeros(SR * 60, np.float32)
    x[12345] = -0.25  # one sample, between the periodograms' frames
    acc = BandEdge(SR)
    for i in range(0, len(x), 7 * SR + 123):
        acc.add(x[i : i + 7 * SR + 123])
    acc.add(np.zeros(0, np.float32))
    assert acc.peak == 0.25
    assert BandEdge(SR).peak == 0.0


def test_silent_is_below_minus_80_dbfs_and_unknown_is_not_silent() -> None:
    assert SILENCE_DBFS == -80.0
    assert is_silent(0.0) and is_silent(10 ** (-85 / 20)) and is_silent(2**-15)  # 16-bit LSB
    assert not is_silent(10 ** (-75 / 20)) and not is_silent(0.5)
    assert not is_silent(None)  # a cache entry made before the peak was kept


def test_the_warning_names_the_stream_and_the_others() -> None:
    one = silence_warning("a.wav", 0.0, None, ["0: (pcm_s16le, 1 ch)"])
    assert one == "a.wav is silent (digital zero, below -80 dBFS): no occurrence can be found in it"
    streams = ["0: 'Mic' (aac, 1 ch)", "1: 'Game' (aac, 1 ch)", "2: (aac, 2 ch)"]
    several = silence_warning("v.mkv", 1e-5, 2, streams) or ""
    assert "v.mkv: audio stream 2 is silent (peak -100 dBFS, below -80 dBFS)" in several
    assert "it has 3 audio streams (0: 'Mic' (aac, 1 ch); 1: 'Game'" in several
    assert "choose one with --audio-stream K" in several
    mixed = silence_warning("v.mkv", 0.0, "mix", streams) or ""
    assert "all 3 of its audio streams are silent" in mixed
    assert silence_warning("v.mkv", 0.1, 0, streams) is None
    assert silence_warning("v.mkv", None, 0, streams) is None


def test_a_silent_recording_is_warned_of_once_and_sound_is_not(
    files: dict[str, Path], trained: Scanner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        silent = trained.scan(files["silent"])
    assert silent.warnings == (
        f"{files['silent']} is silent (digital zero, below -80 dBFS): no occurrence can be "
        "found in it",
    )
    assert caplog.text.count("is silent") == 1
    for name in ("quiet", "train_a"):
        assert trained.scan(files[name]).warnings == ()
    array = trained.scan(np.zeros(SR * 10, np.float32), sample_rate=SR)
    assert array.warnings[0].startswith("<array> is silent")


def test_a_silent_stream_of_a_video_names_the_other_stream(
    files: dict[str, Path], trained: Scanner
) -> None:
    first = attrs.evolve(trained, audio_stream=0).scan(files["obs"])
    assert len(first.warnings) == 1, first.warnings
    text = first.warnings[0]
    assert f"{files['obs']}: audio stream 0 is silent" in text
    assert "it has 2 audio streams (0: 'Mic' (aac, 1 ch); 1: 'Game' (aac, 1 ch))" in text
    assert "--audio-stream K" in text
    assert attrs.evolve(trained, audio_stream=1).scan(files["obs"]).warnings == ()


def test_a_cache_entry_keeps_the_peak_and_one_without_it_gives_no_warning(
    tmp_path: Path, trained: Scanner
) -> None:
    cache = EmbeddingCache(tmp_path)
    entry = trained.sliding_embeddings(np.zeros(SR * 10, np.float32), sample_rate=SR)
    assert entry.peak == 0.0
    cache.put("new", entry)
    assert (got := cache.get("new")) is not None and got.peak == 0.0
    assert trained.score_embeddings(got).warnings[0].startswith("<array> is silent")
    old = attrs.evolve(entry, peak=None)  # as an entry cached before the peak was kept
    cache.put("old", old)
    assert (again := cache.get("old")) is not None and again.peak is None
    assert trained.score_embeddings(again).warnings == ()


def test_training_on_silence_only_says_so(files: dict[str, Path]) -> None:
    scanner = Scanner(LogMelEmbedder(), threshold=0.5, augmentation=None)
    with pytest.raises(TrainingDataError, match="Every training recording is silent") as info:
        scanner.fit([Recording(files["silent"], marks_beside(files["silent"]))])
    assert f"{files['silent']} is silent" in str(info.value)
    assert "only one class" not in str(info.value)


def test_an_index_warns_of_a_silent_file_and_training_from_it_says_so(
    files: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = EmbeddingIndex.create(tmp_path / "a.idx", LogMelEmbedder())
    with caplog.at_level(logging.WARNING):
        report = index.add([files["train_a"], files["silent"]])
    assert len(report.warnings) == 1 and caplog.text.count("is silent") == 1
    assert f"{files['silent'].resolve()} is silent" in report.warnings[0]
    assert "a search finds nothing in it" in report.warnings[0]
    reopened = EmbeddingIndex.open(tmp_path / "a.idx")
    peaks = {Path(f.path).name: f.peak for f in reopened.files}
    assert peaks["silent.wav"] == 0 and (peaks["train_a.wav"] or 0) > 0.05
    scanner = Scanner(LogMelEmbedder(), threshold=0.5)
    with pytest.raises(TrainingDataError, match="Every training recording is silent"):
        fit_from_index(scanner, reopened, {str(files["silent"]): marks_beside(files["silent"])})
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # as an example, indexed or not: said
        reopened.search((str(files["silent"]), 12.0), top=3)
        reopened.search((str(files["quiet"]), 12.0), top=3)
        reopened.search((str(files["train_a"]), 12.0), top=3)
        outside = Path(shutil.copy(files["silent"], tmp_path / "not-indexed.wav"))
        reopened.search((str(outside), 12.0), top=3)
    assert caplog.text.count("an example from it finds nothing of a sound") == 2
    assert f"{outside} is silent" in caplog.text


def test_the_embed_command_warns_of_a_silent_file_and_keeps_edges_and_peaks(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "e.npz"
    rc = main(["embed", str(files["train_a"]), str(files["silent"]), "--model", "LOGMEL",
               "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0 and err.count("is silent") == 1, err
    assert f"{files['silent']} is silent (digital zero" in err
    with np.load(out) as data:
        assert float(data["1/peak"]) == 0 and float(data["0/peak"]) > 0.05
        assert float(data["0/band_edge"]) == 8000 and "1/band_edge" not in data.files


def test_a_silent_stream_among_training_recordings_is_warned_of(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    scanner = Scanner(LogMelEmbedder(), threshold=0.5, augmentation=None, audio_stream=0)
    recs = [Recording(files[k], marks_beside(files[k])) for k in ("train_a", "train_b")]
    with caplog.at_level(logging.WARNING):
        scanner.fit([*recs, Recording(files["obs"], Markers(positive=[12.0]))])
    assert caplog.text.count("is silent") == 1
    assert f"{files['obs']}: audio stream 0 is silent" in caplog.text
    assert "teach the scanner nothing" in caplog.text and "--audio-stream K" in caplog.text


def test_the_scan_command_prints_the_warning_once(
    files: dict[str, Path],
    trained: Scanner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = trained.save(tmp_path / "s.scanner")
    capsys.readouterr()
    rc = main(["scan", str(path), str(files["silent"]), str(files["quiet"]),
               "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.count("is silent") == 1, err
    assert "silent.wav is silent (digital zero" in err

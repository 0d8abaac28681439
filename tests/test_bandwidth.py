"""The band-edge check: a scanned recording whose codec cut the highs is warned of."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import fit_on_marks_beside, marks_beside

import audio_embed.scanner.streaming as scanner_streaming
from audio_embed import LogMelEmbedder
from audio_embed.augment import MixAugmentation
from audio_embed.bandwidth import BandEdge, band_edge
from audio_embed.batch import scan_to_folder
from audio_embed.cache import CachedEmbeddings, EmbeddingCache
from audio_embed.errors import InvalidInputError
from audio_embed.index import EmbeddingIndex
from audio_embed.review import fit_from_index
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import Markers

SR = 16000


def _lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    """A codec's brick wall: nothing above ``cutoff`` Hz."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / SR) > cutoff] = 0
    return np.fft.irfft(spectrum, len(x)).astype(np.float32)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.fft.rfftfreq(n, 1 / SR)[1:])
    x = np.fft.irfft(spectrum, n)
    return (0.05 * x / x.std()).astype(np.float32)


def _recording(seed: int, seconds: float = 60.0) -> tuple[np.ndarray, list[float]]:
    """Pink noise with a two-tone call (1 kHz and 6.5 kHz, 1 s) every 10 s."""
    rng = np.random.default_rng(seed)
    x = _pink(round(seconds * SR), rng)
    t = np.arange(SR) / SR
    tones = 0.2 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 6500 * t)
    call = tones * np.hanning(SR)
    marks = [float(m) for m in np.arange(5.0, seconds - 5, 10.0) + rng.uniform(0, 2)]
    for m in marks:
        x[round(m * SR) : round(m * SR) + SR] += call.astype(np.float32)
    return x, marks


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("band")
    out: dict[str, Path] = {}
    for name, seed in (("train_a", 1), ("train_b", 2), ("scan", 3)):
        x, marks = _recording(seed)
        out[name] = root / f"{name}.wav"
        sf.write(out[name], x, SR)
        (root / f"{name}.txt").write_text(",".join(map(str, marks)))
    x, _ = _recording(3)
    out["scan_lowpassed"] = root / "scan_lowpassed.wav"
    sf.write(out["scan_lowpassed"], _lowpass(x, 5000), SR)
    return out


@pytest.fixture(scope="module")
def trained(files: dict[str, Path]) -> Scanner:
    return fit_on_marks_beside(files, ("train_a", "train_b"))


def test_the_edge_of_full_band_low_passed_and_silent_audio() -> None:
    x = _pink(SR * 20, np.random.default_rng(0))
    assert band_edge(x, SR) == 8000.0
    assert 4900 <= (band_edge(_lowpass(x, 5000), SR) or 0) <= 5100
    assert 5900 <= (band_edge(_lowpass(x, 6000), SR) or 0) <= 6100
    assert band_edge(np.zeros(SR * 5, np.float32), SR) is None
    assert band_edge(np.zeros(100, np.float32), SR) is None  # shorter than one frame


def test_the_edge_streamed_in_blocks_is_the_whole_recording_s() -> None:
    x = _lowpass(_pink(SR * 60, np.random.default_rng(1)), 6000)
    whole = band_edge(x, SR) or 0.0
    acc = BandEdge(SR)
    for i in range(0, len(x), 7 * SR + 123):  # blocks not on the frame grid
        acc.add(x[i : i + 7 * SR + 123])
    assert abs((acc.edge() or 0.0) - whole) <= SR / 512  # one bin


def test_the_scanner_streamed_in_blocks_estimates_the_same_edge(
    files: dict[str, Path], trained: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = trained.sliding_embeddings(files["scan_lowpassed"]).band_edge
    monkeypatch.setattr(scanner_streaming, "BLOCK_SECONDS", 7.3)
    streamed = trained.sliding_embeddings(files["scan_lowpassed"]).band_edge
    assert whole is not None and streamed is not None
    assert 4900 <= whole <= 5100 and abs(streamed - whole) <= SR / 512


def test_training_records_each_recording_s_edge(trained: Scanner) -> None:
    files = (trained.training_summary or {})["files"]
    assert [f["band_edge_hz"] for f in files] == [8000.0, 8000.0]
    assert trained.training_band_edge == 8000.0


def test_a_low_passed_scan_is_warned_of_and_a_full_band_one_is_not(
    files: dict[str, Path], trained: Scanner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        narrow = trained.scan(files["scan_lowpassed"])
    assert len(narrow.warnings) == 1
    text = narrow.warnings[0]
    assert re.search(
        r"scan_lowpassed.wav has no content above 5\.[01] kHz \(a lossy codec\?\)", text
    )
    assert "training recordings reach 8.0 kHz" in text
    assert "--model-option f_max=5000" in text  # LOGMEL has an f_max
    assert caplog.text.count("no content above") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        full = trained.scan(files["scan"])
    assert full.warnings == () and "no content above" not in caplog.text


def test_a_scanner_trained_from_an_index_keeps_the_check(
    files: dict[str, Path], trained: Scanner, tmp_path: Path
) -> None:
    index = EmbeddingIndex.create(tmp_path / "a.idx", LogMelEmbedder())
    index.add([files["train_a"], files["train_b"]])
    reopened = EmbeddingIndex.open(tmp_path / "a.idx")  # the edges are stored, not held
    marks = {str(files[k]): marks_beside(files[k]) for k in ("train_a", "train_b")}
    scanner = fit_from_index(Scanner(LogMelEmbedder(), threshold=0.5), reopened, marks)
    assert scanner.training_band_edge == trained.training_band_edge
    assert len(scanner.scan(files["scan_lowpassed"]).warnings) == 1  # before: none
    # an index written before the edges were kept: read as unknown, no check
    (table,) = (tmp_path / "a.idx").glob("meta*.sqlite")
    with sqlite3.connect(table) as con:
        con.execute("ALTER TABLE files DROP COLUMN band_edge")
        con.execute("ALTER TABLE files DROP COLUMN peak")  # the table of 6598db4
    old = EmbeddingIndex.open(tmp_path / "a.idx")
    assert [(f.band_edge, f.peak) for f in old.files] == [(None, None), (None, None)]
    assert fit_from_index(Scanner(LogMelEmbedder(), threshold=0.5), old, marks).scan(
        files["scan_lowpassed"]
    ).warnings == ()


def test_a_batch_scan_logs_the_warning_once_per_recording(
    files: dict[str, Path], trained: Scanner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        scan_to_folder(trained, [files["scan_lowpassed"], files["scan"]], tmp_path / "out")
    assert caplog.text.count("no content above") == 1
    assert "scan_lowpassed.wav has no content above" in caplog.text


def test_a_saved_scanner_keeps_the_check(
    files: dict[str, Path], trained: Scanner, tmp_path: Path
) -> None:
    loaded = Scanner.load(trained.save(tmp_path / "s.scanner"))
    assert loaded.training_band_edge == 8000.0
    assert len(loaded.scan(files["scan_lowpassed"]).warnings) == 1


def test_an_old_scanner_file_without_edges_loads_and_scans_without_the_check(
    files: dict[str, Path], trained: Scanner, tmp_path: Path
) -> None:
    old = Scanner.load(trained.save(tmp_path / "s.scanner"))
    summary = old.training_summary or {}
    for f in summary["files"]:
        del f["band_edge_hz"]  # as a scanner saved before the estimate existed
    path = old.save(tmp_path / "old.scanner")
    assert "band_edge_hz" not in str(Scanner.read_metadata(path))
    again = Scanner.load(path)
    assert again.training_band_edge is None
    result = again.scan(files["scan_lowpassed"])
    assert result.warnings == ()
    assert np.allclose(result.probabilities, trained.scan(files["scan_lowpassed"]).probabilities)


def test_the_cache_keeps_the_edge_and_reads_old_entries_without_it(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    entry = CachedEmbeddings(np.zeros(2), np.zeros((2, 3), np.float32), 9.0, band_edge=6000.0)
    cache.put("new", entry)
    assert (got := cache.get("new")) is not None and got.band_edge == 6000.0
    np.savez(tmp_path / "old.npz", starts=np.zeros(2), embeddings=np.zeros((2, 3)), duration=9.0)
    assert (old := cache.get("old")) is not None and old.band_edge is None


def test_mix_augmentation_lowpass_cuts_the_highs_of_some_copies() -> None:
    rng = np.random.default_rng(0)
    source = (_pink(SR * 10, rng) * 4, [5.0])
    silent = (np.zeros(SR * 60, np.float32), [])  # the mix is the cut sound alone
    aug = MixAugmentation(copies=20, lowpass_hz=(4000.0, 5000.0), min_distance=0.0)
    edges = [band_edge(m.audio, SR) or 0.0 for m in aug.mix([source], [silent], SR)]
    cut = [e for e in edges if e < 7000]
    assert len(edges) == 20 and 4 <= len(cut) <= 16  # about half
    assert all(3900 <= e <= 5100 for e in cut)
    plain = MixAugmentation(copies=20, min_distance=0.0).mix([source], [silent], SR)
    assert all(band_edge(m.audio, SR) == 8000.0 for m in plain)


@pytest.mark.parametrize("bad", [(0.0, 5000.0), (6000.0, 5000.0), (float("nan"), 1.0)])
def test_mix_augmentation_refuses_a_bad_lowpass_range(bad: tuple[float, float]) -> None:
    with pytest.raises(InvalidInputError, match="'lowpass_hz' parameter"):
        MixAugmentation(lowpass_hz=bad)


def test_a_loud_hum_over_a_quiet_full_band_background_is_full_band() -> None:
    """The review's case: measured against the spectrum's peak, a -23 dBFS hum over a
    -60 dBFS background read as 'no content above 0.9 kHz (a lossy codec?)'; a codec's
    cut is a cliff against the band just below it, which a hum is not."""
    rng = np.random.default_rng(4)
    quiet = _pink(SR * 20, rng) / 0.05 * 10 ** (-60 / 20)
    hum = 10 ** (-23 / 20) * np.sin(2 * np.pi * 50 * np.arange(SR * 20) / SR)
    x = (quiet + hum).astype(np.float32)
    assert band_edge(x, SR) == 8000.0
    assert 4900 <= (band_edge(_lowpass(x, 5000), SR) or 0) <= 5100


def test_no_warning_where_the_models_own_bands_stop(files: dict[str, Path]) -> None:
    """A scanner whose bands end below the scanned recording's edge (f_max=4500, the
    README's advice for codec-cut recordings) sees the same either way: no warning, and
    its hint never asks for a higher f_max."""
    recs = [Recording(files[k], marks_beside(files[k])) for k in ("train_a", "train_b")]
    narrow = Scanner(LogMelEmbedder(f_max=4500), threshold=0.5, augmentation=None).fit(recs)
    assert narrow.scan(files["scan_lowpassed"]).warnings == ()
    wide = Scanner(LogMelEmbedder(f_max=7000), threshold=0.5, augmentation=None).fit(recs)
    (warning,) = wide.scan(files["scan_lowpassed"]).warnings
    assert "reach 7.0 kHz" in warning and "f_max=5000" in warning


def test_training_on_full_band_and_codec_cut_recordings_is_warned_of(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The narrow recording lowers the reference the scans are compared with, so no scan
    would say a word: training says it instead, naming the narrow recording."""
    recs = [
        Recording(files["train_a"], marks_beside(files["train_a"])),
        # the same calls, low-passed
        Recording(files["scan_lowpassed"], marks_beside(files["scan"])),
    ]
    with caplog.at_level(logging.WARNING, logger="audio_embed"):
        Scanner(LogMelEmbedder(), threshold=0.5, augmentation=None).fit(recs)
    (line,) = [
        r.getMessage() for r in caplog.records if "training recordings reach" in r.getMessage()
    ]
    assert "1 of the 2" in line and "scan_lowpassed.wav" in line and "train_a" not in line


def test_lowpass_is_saved_only_when_set() -> None:
    """A scanner trained without the option must load in the release before it, which
    refuses the unknown key (the review's case)."""
    from audio_embed.scanner.augmented import augmentation_settings

    assert "lowpass_hz" not in augmentation_settings(MixAugmentation())
    assert augmentation_settings(MixAugmentation(lowpass_hz=(5000, 8000)))["lowpass_hz"] == [
        5000,
        8000,
    ]


def test_a_silent_training_recording_leaves_the_band_check_on(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """A silent recording has no band (it is warned of at fit on its own): before, its
    missing edge turned the check off for the whole scanner."""
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 60, np.float32), SR)
    recs = [Recording(files[k], marks_beside(files[k])) for k in ("train_a", "train_b")]
    scanner = Scanner(LogMelEmbedder(), threshold=0.5, augmentation=None).fit(
        [*recs, Recording(silent, Markers(positive=[12.0]))]
    )
    assert [f.get("silent", False) for f in (scanner.training_summary or {})["files"]] == [
        False,
        False,
        True,
    ]
    assert scanner.training_band_edge == 8000.0
    assert len(scanner.scan(files["scan_lowpassed"]).warnings) == 1

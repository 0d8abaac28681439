"""LOGMEL and the recording's level: the floor under the log (``LEVEL_FLOOR`` makes the
features level-invariant; the default keeps what was made before: caches, indexes,
saved scanners)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from audio_embed import LogMelEmbedder, Scanner, create_embedder
from audio_embed.demo import horn
from audio_embed.embedders.logmel import DEFAULT_FLOOR, LEVEL_FLOOR
from audio_embed.errors import InvalidInputError, ScannerFileError
from audio_embed.index import EmbeddingIndex, recording_zscore
from audio_embed.scanner import Recording
from audio_embed.windows import Markers, SlidingWindows

SR = 16000


def _recording(seconds: int = 24, seed: int = 0) -> np.ndarray:
    """A noise floor (0.02 rms) with a horn every 6 s and a beep between them."""
    rng = np.random.default_rng(seed)
    audio = 0.02 * rng.standard_normal(seconds * SR)
    t = np.arange(SR // 2) / SR
    for k in range(1, seconds - 2, 6):
        h = horn(rng)
        audio[k * SR : k * SR + len(h)] += 0.2 * h
        audio[(k + 3) * SR : (k + 3) * SR + len(t)] += 0.2 * np.sin(2 * np.pi * 2000 * t)
    return audio.astype(np.float32)


def _normalised(emb: LogMelEmbedder, audio: np.ndarray, encoding: str) -> np.ndarray:
    starts = np.arange(0.0, len(audio) / SR - 1.0 + 1e-9, 0.1)
    return recording_zscore(emb.embed_windows(audio, starts, 1.0, encoding=encoding))  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["shared", "per_window"])
def test_level_floor_features_do_not_depend_on_the_level_after_normalisation(
    encoding: str,
) -> None:
    """log(g·P) = log g + log P: with a floor far below the audio's mel power, a gain
    only shifts the mean and max features by a constant, which the per-recording
    z-score removes. The default floor (1e-4) is above a 40 dB quieter copy's
    background."""
    audio = _recording()
    quiet = audio * np.float32(0.01)  # -40 dB
    new = LogMelEmbedder(floor=LEVEL_FLOOR)
    assert new.floor == LEVEL_FLOOR < DEFAULT_FLOOR
    diff = np.abs(_normalised(new, audio, encoding) - _normalised(new, quiet, encoding))
    assert diff.max() < 0.05
    old = LogMelEmbedder()
    diff = np.abs(_normalised(old, audio, encoding) - _normalised(old, quiet, encoding))
    assert diff.max() > 1.0


def test_a_quieter_recording_scores_as_the_original() -> None:
    """With LEVEL_FLOOR, trained at one level, scanned 30 dB quieter: the same window
    scores."""
    audio = _recording(seed=1)
    scanner = Scanner(LogMelEmbedder(floor=LEVEL_FLOOR), threshold=0.5, augmentation=None)
    marked = Markers(positive=[1.4, 7.4, 13.4], negative=[4.2, 10.2])
    scanner.fit([Recording(audio, marked, sample_rate=SR)])
    loud = scanner.scan(audio, sample_rate=SR).probabilities
    quiet = scanner.scan(audio * np.float32(10 ** (-30 / 20)), sample_rate=SR).probabilities
    np.testing.assert_allclose(quiet, loud, atol=0.02)


def test_floor_setting_keys_and_checks() -> None:
    """The default floor leaves the settings (and so every cache key, index and scanner
    made before the setting existed) as they were; another floor is in them."""
    old = LogMelEmbedder()
    assert old.floor == DEFAULT_FLOOR
    assert set(old.settings()) == {"n_mels", "n_fft", "hop_length", "f_min", "f_max"}
    new = create_embedder("LOGMEL", floor=LEVEL_FLOOR)
    assert isinstance(new, LogMelEmbedder)
    assert new.settings()["floor"] == LEVEL_FLOOR
    assert len({old.cache_id(), new.cache_id(), LogMelEmbedder(floor=1e-6).cache_id()}) == 3
    assert LogMelEmbedder(floor="1e-6").floor == 1e-6  # type: ignore[arg-type]
    for bad in (0.0, -1e-4, float("nan"), float("inf"), "none"):
        with pytest.raises(InvalidInputError, match="floor must be positive and finite"):
            LogMelEmbedder(floor=bad)  # type: ignore[arg-type]


def _fit(embedder: LogMelEmbedder) -> tuple[Scanner, np.ndarray]:
    audio = _recording(seed=2)
    scanner = Scanner(
        embedder, scan_windows=SlidingWindows(1.0, 0.25), threshold=0.5, augmentation=None
    )
    marked = Markers(positive=[1.4, 7.4, 13.4], negative=[4.2, 10.2])
    scanner.fit([Recording(audio, marked, sample_rate=SR)])
    return scanner, audio


def _rewrite(path: Path, edit: dict[str, object], drop_config: bool = False) -> Path:
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("scanner.json"))
        payload = zf.read("classifier.skops")
    if drop_config:
        del meta["embedder"]["config"]
    meta.update(edit)
    out = path.with_name("rewritten.scanner")
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    return out


def test_a_scanner_saved_before_the_floor_setting_keeps_its_features(
    tmp_path: Path,
) -> None:
    """A file whose embedder config has no floor (every LOGMEL scanner saved before
    the setting) rebuilds LOGMEL with the default floor and scores as it did; so does a
    format-1 file (no config: rebuilt by name); a scanner of another floor keeps it."""
    scanner, audio = _fit(LogMelEmbedder())
    path = scanner.save(tmp_path / "old.scanner")
    saved = Scanner.read_metadata(path)["embedder"]["config"]["settings"]
    assert "floor" not in saved  # as written before the setting existed
    before = scanner.scan(audio, sample_rate=SR).probabilities
    for file in (path, _rewrite(path, {"format_version": 1}, drop_config=True)):
        loaded = Scanner.load(file)
        assert isinstance(loaded.embedder, LogMelEmbedder)
        assert loaded.embedder.floor == DEFAULT_FLOOR
        np.testing.assert_array_equal(loaded.scan(audio, sample_rate=SR).probabilities, before)

    new, _ = _fit(LogMelEmbedder(floor=LEVEL_FLOOR))
    loaded = Scanner.load(new.save(tmp_path / "new.scanner"))
    assert isinstance(loaded.embedder, LogMelEmbedder) and loaded.embedder.floor == LEVEL_FLOOR
    differs = r"settings\.floor: saved 0\.0001, this embedder 1e-10"
    with pytest.raises(ScannerFileError, match=differs):
        Scanner.load(path, embedder=LogMelEmbedder(floor=LEVEL_FLOOR))


def test_an_index_built_with_another_floor_opens_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An index built with LEVEL_FLOOR opens on the command line with it, not the
    default (refused before as "built with other weights or settings")."""
    from audio_embed.cli import main
    from audio_embed.demo import write_wav

    write_wav(tmp_path / "rec.wav", _recording(seed=3), SR)
    built = tmp_path / "a.idx"
    index = EmbeddingIndex.create(
        built, LogMelEmbedder(floor=LEVEL_FLOOR), windows=SlidingWindows(1.0, 0.5)
    )
    index.add([tmp_path / "rec.wav"])
    assert '"floor": 1e-10' in json.dumps(EmbeddingIndex.open(built).manifest["embedder"]["config"])
    rc = main(["search", str(built), "--example", f"{tmp_path / 'rec.wav'}:1.4", "-q",
               "--threads", "1", "--no-cache"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "other weights or settings" not in out.err

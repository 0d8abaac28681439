"""Scanner end to end with LOGMEL on synthesised recordings; persistence; cache; store."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import zipfile
from collections import defaultdict
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from attrs import frozen
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

import audio_embed.scanner.core as scanner_core
import audio_embed.scanner.streaming as scanner_streaming
from audio_embed import (
    Cancelled,
    InvalidInputError,
    LogMelEmbedder,
    Postprocessing,
    ScannerFileError,
    TrainingDataError,
    load_audio,
)
from audio_embed.cache import EmbeddingCache
from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.formats import read_markers
from audio_embed.progress import CancelToken, ProgressEvent
from audio_embed.scanner import Detection, Recording, Scanner, fuse_windows
from audio_embed.store import ScannerStore
from audio_embed.windows import LabelledWindows, Markers, SlidingWindows, TargetedWindows


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return make_demo_set(tmp_path_factory.mktemp("demo"), n_train=3, n_test=2, seconds=90, seed=1)


@pytest.fixture(scope="module")
def trained(demo: DemoSet) -> Scanner:
    scanner = Scanner(LogMelEmbedder())
    return scanner.fit([Recording(f, m) for f, m in read_markers(demo.markers_csv).items()])


def test_finds_held_out_targets(demo: DemoSet, trained: Scanner) -> None:
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ev in read_labels(demo.labels_csv):
        if ev.split == "test" and ev.label == "horn":
            events[str(demo.root / ev.file)].append((ev.onset, ev.offset))
    results = {str(f): trained.scan(f) for f in demo.test_files}
    score = evaluate(results, events)
    assert score.n_events == 10
    assert score.recall >= 0.9
    assert score.false_positives_per_minute <= 1.0
    assert score.window_auc > 0.9


def test_describe_is_the_training_summary_as_text(demo: DemoSet, trained: Scanner) -> None:
    """What ``audio-embed train`` prints, for notebooks (``print(scanner.describe())``)."""
    text = trained.describe(demo.root)
    summary = trained.training_summary or {}
    assert text.startswith("Trained a LOGMEL scanner on 3 recording(s)")
    assert f"{summary['windows_positive']} positive (target)" in text
    assert f"Detection threshold: {trained.scan_threshold:g}, chosen by cross-validation" in text
    assert "train_00.wav" in text and str(demo.root) not in text  # relative to the root
    other = copy.copy(trained)  # a threshold of more digits (before: 0.333333)
    other.threshold_ = 1 / 3
    assert "Detection threshold: 0.3333, chosen by cross-validation" in other.describe()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Scanner(LogMelEmbedder()).describe()


def test_describe_names_the_models_settings_and_weights_that_are_not_its_defaults(
    demo: DemoSet, trained: Scanner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A scanner of a model built with other settings (--model-option) or weights says
    so (before: it described itself as a default one); a default model adds no line."""
    import copy

    from audio_embed import registry
    from audio_embed.embedders.logmel import LEVEL_FLOOR

    assert "Model settings" not in trained.describe() and "Model weights" not in trained.describe()
    other = copy.copy(trained)
    other.embedder = LogMelEmbedder(floor=LEVEL_FLOOR, n_mels=32)
    lines = other.describe().splitlines()
    assert lines[1] == (
        "Model settings (--model-option): n_mels=32 (default 64), floor=1e-10 (default 0.0001)."
    )

    class Weighted(LogMelEmbedder):
        name = "WEIGHTED"

        def __init__(self, checkpoint: str | None = None, *, n_mels: int = 64) -> None:
            super().__init__(n_mels=n_mels)
            self.checkpoint = checkpoint

    spec = registry.EmbedderSpec(
        name="WEIGHTED", dim=256, factory=Weighted, default_source=lambda: "bundled.pt"
    )
    monkeypatch.setitem(registry._REGISTRY, "WEIGHTED", spec)
    other.embedder = Weighted("bundled.pt")  # a model that records its default weights
    assert "Model" not in other.describe()
    other.embedder = Weighted(str(tmp_path / "mine.pt"), n_mels=32)
    lines = other.describe().splitlines()
    assert lines[1:3] == [
        "Model settings (--model-option): n_mels=32 (default 64).",
        f"Model weights: {tmp_path / 'mine.pt'} (not WEIGHTED's default ones).",
    ]


def test_scan_result_shape(demo: DemoSet, trained: Scanner) -> None:
    result = trained.scan(demo.test_files[0])
    assert result.duration == pytest.approx(90.0)
    np.testing.assert_allclose(result.starts, trained.scan_windows.starts(90.0))
    assert np.all((result.probabilities >= 0) & (result.probabilities <= 1))
    assert result.threshold == trained.scan_threshold
    for d in result.detections():
        assert d.start <= d.peak <= d.end and d.score >= trained.scan_threshold


def test_scan_many_refuses_one_path_instead_of_reading_its_letters(
    demo: DemoSet, trained: Scanner
) -> None:
    # before: scan_many("rec.wav") yielded "r", "e", "c", ".", ... each "no such file"
    one = str(demo.test_files[0])
    with pytest.raises(InvalidInputError, match=r"Scanner.scan_many takes a list of paths"):
        next(trained.scan_many(one))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="sliding_embeddings_many takes a list"):
        next(trained.sliding_embeddings_many(Path(one)))  # type: ignore[arg-type]


def test_scan_result_repr_summarises_its_arrays() -> None:
    # before: every start and probability of a file under 100 s (numpy summarises
    # arrays above 1,000 values only), so a batch report printed hundreds of lines
    starts = np.arange(0.0, 90.0, 0.1)
    probabilities = np.linspace(0.0, 0.75, starts.size)
    text = repr(scanner_core.ScanResult("a.wav", starts, probabilities, 1.0, 91.0))
    assert "starts=<900 values, 0 to 89.9>" in text
    assert "probabilities=<900 values, 0 to 0.75>" in text and len(text) < 400


def test_array_input_at_another_rate_matches_file(demo: DemoSet, trained: Scanner) -> None:
    from audio_embed import resample

    audio = load_audio(demo.test_files[0])
    direct = trained.scan(audio, sample_rate=16000)
    np.testing.assert_allclose(direct.probabilities, trained.scan(demo.test_files[0]).probabilities)
    other = trained.scan(resample(audio, 16000, 44100), sample_rate=44100)
    assert len(other.starts) == len(direct.starts)
    assert np.corrcoef(other.probabilities, direct.probabilities)[0, 1] > 0.9
    with pytest.raises(ValueError, match="sample_rate"):
        trained.scan(audio)


def test_scoring_a_long_recording_holds_no_float64_copy_of_its_windows(
    trained: Scanner,
) -> None:
    """The context features were computed on a float64 copy of every window's
    embedding and the classifier scored a float64 copy of every feature row: an hour
    at 0.1 s hops peaked at 260 MB for LOGMEL's 256 numbers (x 12 for a 3072-wide
    _ML model). The features are float32 throughout now and the rows are scored in
    chunks, with the same values as the float64 way (scipy sums in double)."""
    import tracemalloc

    from scipy.ndimage import uniform_filter1d

    from audio_embed.cache import CachedEmbeddings
    from audio_embed.windows import nearest_index

    rng = np.random.default_rng(0)
    n = 20_000  # 33 minutes of 0.1 s hops
    starts = np.round(np.arange(n) * 0.1, 6)
    emb = (rng.standard_normal((n, trained.embedder.dim)) * 3 + 1).astype(np.float32)
    entry = CachedEmbeddings(starts=starts, embeddings=emb, duration=n * 0.1 + 1)
    tracemalloc.start()
    try:
        features = trained._scan_features(entry)
        _, features_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        proba = trained.classifier.score_windows(features)
        _, score_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # grid + its local mean + the features (twice the embeddings): 4x, not 7x
    assert features_peak < 4.5 * emb.nbytes
    # the features themselves plus a float64 chunk, not a float64 copy of them all
    assert score_peak < 2 * features.nbytes
    # the same numbers as before: float64 local means, every row scored at once
    grid = ((emb - emb.mean(axis=0)) / np.maximum(emb.std(axis=0), 1e-6)).astype(np.float32)
    size = max(1, round(trained.context / 0.1))
    size += 1 - size % 2
    local = uniform_filter1d(grid.astype(np.float64), size=size, axis=0, mode="nearest")
    idx = nearest_index(starts, starts)
    expected = np.concatenate([grid, grid - local[idx].astype(np.float32)], axis=1)
    np.testing.assert_array_equal(features, expected)
    np.testing.assert_array_equal(proba, trained.classifier.predict_proba(features)[:, 1])


def test_save_load_round_trip(tmp_path: Path, demo: DemoSet, trained: Scanner) -> None:
    path = trained.save(tmp_path / "horn.scanner")
    meta = Scanner.read_metadata(path)
    assert meta["embedder"]["name"] == "LOGMEL" and meta["feature_dim"] == 256
    assert meta["scan_windows"] == {"window": 1.0, "hop": 0.1, "encoding": "shared"}
    assert meta["library_version"] and meta["training_summary"]["windows_positive"] > 0
    loaded = Scanner.load(path)  # the embedder comes from the registry by name
    a = trained.scan(demo.test_files[1]).probabilities
    np.testing.assert_array_equal(loaded.scan(demo.test_files[1]).probabilities, a)
    assert not list(tmp_path.glob(".tmp-*"))


def test_saving_onto_a_folder_names_a_file_to_give(tmp_path: Path, trained: Scanner) -> None:
    with pytest.raises(InvalidInputError, match=r"is a folder; name the file.*my\.scanner"):
        trained.save(tmp_path)
    assert trained.save(tmp_path / "my.scanner").is_file()  # the trained scanner is kept


def test_load_refuses_another_embedder(tmp_path: Path, trained: Scanner) -> None:
    path = trained.save(tmp_path / "horn.scanner")
    other = LogMelEmbedder(n_mels=32)
    with pytest.raises(ScannerFileError, match="256 features") as caught:
        Scanner.load(path, embedder=other)
    # one model with another setting says which (before: "LOGMEL (256 features) …
    # cannot be used with LOGMEL (128 features)", the same name twice)
    assert "whose settings differ: n_mels: saved 64, this embedder 32." in str(caught.value)
    assert "fingerprint" not in str(caught.value)


def test_load_refuses_other_weights_unless_allowed(
    tmp_path: Path, trained: Scanner, caplog: pytest.LogCaptureFixture
) -> None:
    """Same name and size, other weights (another checkpoint): refused, saying what
    differs, unless allow_mismatch=True (then a warning)."""
    path = trained.save(tmp_path / "horn.scanner")
    Scanner.load(path, embedder=LogMelEmbedder())
    assert "other weights" not in caplog.text
    other = LogMelEmbedder()
    with torch.no_grad():
        other.melspec.mel_scale.fb.mul_(2.0)
    with pytest.raises(ScannerFileError, match=r"weights\.fingerprint: saved"):
        Scanner.load(path, embedder=other)
    Scanner.load(path, embedder=other, allow_mismatch=True)
    assert "other weights of LOGMEL" in caplog.text
    # files of format 1 held no weight fingerprint: nothing to check, no warning
    caplog.clear()
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("scanner.json"))
        payload = zf.read("classifier.skops")
    del meta["embedder"]["config"]
    meta["format_version"], meta["embedder"]["cache_id"] = 1, "LOGMEL:256"
    old = tmp_path / "old.scanner"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    Scanner.load(old, embedder=other)
    assert "other weights" not in caplog.text


def test_load_refuses_truncated_and_foreign_files(tmp_path: Path, trained: Scanner) -> None:
    path = trained.save(tmp_path / "horn.scanner")
    data = path.read_bytes()
    (tmp_path / "cut.scanner").write_bytes(data[: len(data) // 2])
    with pytest.raises(ScannerFileError, match="truncated or corrupt"):
        Scanner.load(tmp_path / "cut.scanner")
    (tmp_path / "text.scanner").write_text("hello")
    with pytest.raises(ScannerFileError):
        Scanner.load(tmp_path / "text.scanner")
    with pytest.raises(ScannerFileError, match="not found"):
        Scanner.load(tmp_path / "missing.scanner")
    # a folder or a recording where the scanner goes: said so, not "not found" or "corrupt"
    (tmp_path / "recordings").mkdir()
    with pytest.raises(ScannerFileError, match="is a folder, not a scanner file"):
        Scanner.load(tmp_path / "recordings")
    with pytest.raises(ScannerFileError, match=r"is a folder of scanners.*ScannerStore"):
        Scanner.load(tmp_path)  # it holds horn.scanner
    (tmp_path / "rec.wav").write_bytes(b"RIFF")
    with pytest.raises(ScannerFileError, match="is an audio or video file, not a scanner"):
        Scanner.load(tmp_path / "rec.wav")


def test_load_says_a_text_file_is_not_a_scanner(tmp_path: Path) -> None:
    """markers.csv where the scanner goes (scan markers.csv rec.wav): "not a readable
    scanner file (truncated or corrupt: File is not a zip file)" before."""
    (tmp_path / "markers.csv").write_text("file,time,kind\na.wav,3,positive\n")
    said = r"markers.csv is a text file \(it starts 'file,time,kind': markers, labels or results"
    with pytest.raises(ScannerFileError, match=said + r"\?\), not a scanner"):
        Scanner.load(tmp_path / "markers.csv")
    (tmp_path / "bin.scanner").write_bytes(bytes(range(256)))  # binary: the old message
    with pytest.raises(ScannerFileError, match="truncated or corrupt"):
        Scanner.load(tmp_path / "bin.scanner")


def test_load_refuses_settings_it_does_not_know_with_a_scanner_file_error(
    tmp_path: Path, trained: Scanner
) -> None:
    """A scanner from a newer release (a setting this one lacks) or with damaged
    settings: a ScannerFileError saying so (before: a TypeError or KeyError traceback)."""
    path = trained.save(tmp_path / "horn.scanner")
    with zipfile.ZipFile(path) as zf:
        meta, payload = json.loads(zf.read("scanner.json")), zf.read("classifier.skops")

    def variant(change: dict[str, object], where: str = "") -> Path:
        edited = json.loads(json.dumps(meta))
        (edited[where] if where else edited).update(change)
        out = tmp_path / "edited.scanner"
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("scanner.json", json.dumps(edited))
            zf.writestr("classifier.skops", payload)
        return out

    for change, where in (
        ({"new_setting": 1.0}, "postprocessing"),
        ({"new_setting": 1.0}, "train_windows"),
        ({"hop": "fast"}, "scan_windows"),
    ):
        with pytest.raises(ScannerFileError, match=r"cannot use .*upgrade"):
            Scanner.load(variant(change, where))
    # a threshold that is not a number in [0, 1] (NaN: json.dumps writes NaN): loaded,
    # then every scan failed with "The 'threshold' must be in [0, 1]", naming no file
    for bad in (float("nan"), 1.5):
        with pytest.raises(ScannerFileError, match=r"edited\.scanner .*its threshold .*damaged"):
            Scanner.load(variant({"threshold": bad}))
    del meta["threshold"]
    with pytest.raises(ScannerFileError, match="lacks the 'threshold' field"):
        Scanner.read_metadata(variant({}))
    with pytest.raises(ScannerFileError, match="format_version 'x'"):
        Scanner.load(variant({"format_version": "x"}))


def _rewrite(path: Path, out: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path) as zf:
        meta = zf.read("scanner.json")
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("scanner.json", meta)
        zf.writestr("classifier.skops", payload)


def test_crafted_scanner_file_is_refused_and_nothing_runs(tmp_path: Path, trained: Scanner) -> None:
    import pickle

    import skops.io

    path = trained.save(tmp_path / "horn.scanner")
    flag = tmp_path / "pwned"
    # 1. a skops payload that would call os.system when loaded with trust
    evil = skops.io.dumps({"clf": trained.classifier, "hook": __import__("os").system})
    _rewrite(path, tmp_path / "evil.scanner", evil)
    with pytest.raises(ScannerFileError, match="refusing to load") as info:
        Scanner.load(tmp_path / "evil.scanner")
    assert "system" in str(info.value)

    # 2. a classic pickle exploit in place of the skops part
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (__import__("os").system, (f"touch {flag}",))

    _rewrite(path, tmp_path / "pickle.scanner", pickle.dumps(Exploit()))
    with pytest.raises(ScannerFileError):
        Scanner.load(tmp_path / "pickle.scanner")
    assert not flag.exists()


def test_cache_hit_does_not_decode(
    tmp_path: Path, demo: DemoSet, trained: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanner = Scanner.load(
        trained.save(tmp_path / "s.scanner"), cache=EmbeddingCache(tmp_path / "c")
    )
    first = scanner.scan(demo.test_files[0])
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1

    def no_decoding(*_a: object, **_k: object) -> None:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(scanner_streaming, "stream_audio", no_decoding)
    monkeypatch.setattr(scanner_core, "load_audio", no_decoding)
    np.testing.assert_array_equal(
        scanner.scan(demo.test_files[0]).probabilities, first.probabilities
    )


def test_corrupt_cache_entry_is_recomputed(
    tmp_path: Path, demo: DemoSet, trained: Scanner, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    scanner = Scanner.load(trained.save(tmp_path / "s.scanner"), cache=cache)
    first = scanner.scan(demo.test_files[0])
    (entry,) = (tmp_path / "c").glob("*.npz")
    entry.write_bytes(b"garbage")
    again = scanner.scan(demo.test_files[0])
    np.testing.assert_array_equal(again.probabilities, first.probabilities)
    assert "unreadable" in caplog.text


def test_a_file_changed_after_a_batch_keyed_it_is_not_cached_under_its_old_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch keys every file when it starts: a file replaced before its turn is decoded
    as it is now, and that is not cached under the old key (before: it was, so the
    original, restored with its time (cp -p, rsync -t), got the replacement's vectors)."""
    from conftest import tone, write_media

    a = write_media(tmp_path / "a.wav", tone(300, 4.0), 16000)
    b = write_media(tmp_path / "b.wav", tone(440, 4.0), 16000)
    original = b.stat()
    windows = SlidingWindows(1.0, 1.0, "per_window")
    scanner = Scanner(LogMelEmbedder(), scan_windows=windows, cache=EmbeddingCache(tmp_path / "c"))
    real_stream = scanner_streaming.stream_audio

    def replace_b_first(path: object, *args: object, **kwargs: object) -> object:
        if Path(str(path)) == b:  # replaced while the batch worked on a.wav
            write_media(b, tone(2000, 4.0), 16000)
            os.utime(b, ns=(original.st_atime_ns, original.st_mtime_ns + 10**9))
        return real_stream(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scanner_streaming, "stream_audio", replace_b_first)
    dict(scanner.sliding_embeddings_many([a, b]))
    monkeypatch.setattr(scanner_streaming, "stream_audio", real_stream)
    write_media(b, tone(440, 4.0), 16000)  # the original back, with its time
    os.utime(b, ns=(original.st_atime_ns, original.st_mtime_ns))
    truth = Scanner(LogMelEmbedder(), scan_windows=windows).sliding_embeddings(b)
    np.testing.assert_allclose(scanner.sliding_embeddings(b).embeddings, truth.embeddings)


def test_a_batch_of_cached_files_reads_each_entry_at_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rescan whose files are all cached (a new scanner over an archive scanned
    before) reads one cache entry at a time and stops at Ctrl-C between files (before:
    every entry was read when the batch began and held to its end, and a cancel was
    not seen until the whole batch was done); an entry found unreadable at its turn is
    decoded in its place."""
    from conftest import tone, write_media

    files = [write_media(tmp_path / f"{k}.wav", tone(300 + 200 * k, 3.0), 16000) for k in range(3)]
    cache = EmbeddingCache(tmp_path / "c")
    windows = SlidingWindows(1.0, 0.5, "per_window")
    scanner = Scanner(LogMelEmbedder(), scan_windows=windows, cache=cache)

    def vectors() -> dict[str, np.ndarray]:
        runs = scanner.sliding_embeddings_many(files)
        return {p: e.embeddings for p, e in runs if not isinstance(e, Exception)}

    first = vectors()
    assert len(list((tmp_path / "c").glob("*.npz"))) == 3

    reads: list[str | None] = []
    real_get = cache.get

    def counted(key: str | None) -> object:
        reads.append(key)
        return real_get(key)

    monkeypatch.setattr(cache, "get", counted)
    token = CancelToken()
    runs = scanner.sliding_embeddings_many(files, cancel=token)
    next(runs)
    assert len(reads) == 1
    token.cancel()
    with pytest.raises(Cancelled):
        next(runs)
    assert len(reads) == 1

    key = scanner.cache_key(files[1])
    (tmp_path / "c" / f"{key}.npz").write_bytes(b"garbage")
    again = vectors()
    assert again.keys() == first.keys() and len(first) == 3
    for p in first:
        np.testing.assert_array_equal(again[p], first[p])


def test_cancel_leaves_no_cache_entry(tmp_path: Path, demo: DemoSet, trained: Scanner) -> None:
    scanner = Scanner.load(
        trained.save(tmp_path / "s.scanner"), cache=EmbeddingCache(tmp_path / "c")
    )
    token = CancelToken()
    seen: list[ProgressEvent] = []

    def progress(ev: ProgressEvent) -> None:
        seen.append(ev)
        token.cancel()

    with pytest.raises(Cancelled):
        scanner.scan(demo.test_files[0], progress=progress, cancel=token)
    assert seen and not list((tmp_path / "c").glob("*"))


def test_fit_reports_progress_and_summary(demo: DemoSet) -> None:
    events: list[ProgressEvent] = []
    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    scanner = Scanner(LogMelEmbedder()).fit(recs[:1], progress=events.append)
    assert any(e.stage == "train-files" and e.done == e.total == 1 for e in events)
    summary = scanner.training_summary
    assert (
        summary is not None
        and summary["windows_positive"] > 0
        and summary["files"][0]["negative"] > 0
    )


def test_one_class_training_is_a_clear_error(demo: DemoSet) -> None:
    with pytest.raises(TrainingDataError, match="only one class"):
        # original rules: every window of a 90 s file is within 120 s of the marker
        Scanner(
            LogMelEmbedder(),
            scan_windows=SlidingWindows(8.0, 1.0),
            train_windows=TargetedWindows.original(),
        ).fit([Recording(demo.train_files[0], Markers(positive=[45.0]))])
    with pytest.raises(TrainingDataError, match="at least one recording"):
        Scanner(LogMelEmbedder()).fit([])


def test_scan_before_fit() -> None:
    with pytest.raises(NotFittedError):
        Scanner(LogMelEmbedder()).scan(np.zeros(16000, np.float32), sample_rate=16000)


def test_store_keeps_versions(tmp_path: Path, trained: Scanner) -> None:
    store = ScannerStore(tmp_path / "store")
    first = store.save(trained, "horn")
    assert first.name == "horn_LOGMEL.scanner"
    meta_v1 = json.loads(zipfile.ZipFile(first).read("scanner.json"))
    chosen = trained.scan_threshold
    trained.threshold_ = 0.5
    try:
        store.save(trained, "horn")
    finally:
        trained.threshold_ = chosen
    (version,) = store.versions("horn", "LOGMEL")
    assert store.load("horn", "LOGMEL").scan_threshold == 0.5
    store.restore("horn", "LOGMEL", version)
    assert store.load("horn", "LOGMEL").scan_threshold == meta_v1["threshold"] == chosen
    assert len(store.versions("horn", "LOGMEL")) == 2
    (entry,) = store.list()
    assert (entry.profile, entry.embedder) == ("horn", "LOGMEL")
    with pytest.raises(ScannerFileError, match="No scanner"):
        store.load("bird", "LOGMEL")


def test_fuse_windows_merges_touching_and_overlapping() -> None:
    starts = np.array([0.0, 1.0, 2.0, 10.0, 18.0, 30.0])
    probs = np.array([0.5, 0.9, 0.2, 0.4, 0.6, 0.1])
    dets = fuse_windows(starts, probs, 8.0, 0.3)
    # 0-8 and 1-9 overlap; 10-18 and 18-26 touch; 9-10 is a gap
    assert dets == [Detection(0.0, 9.0, 0.9, 5.0), Detection(10.0, 26.0, 0.6, 22.0)]
    assert fuse_windows(starts, probs, 4.0, 0.3, duration=20.0) == [
        Detection(0.0, 5.0, 0.9, 3.0),
        Detection(10.0, 14.0, 0.4, 12.0),
        Detection(18.0, 20.0, 0.6, 19.0),
    ]


@given(
    probs=st.lists(st.floats(0, 1), min_size=1, max_size=60),
    window=st.floats(0.5, 10),
    hop=st.floats(0.25, 10),
    threshold=st.floats(0, 1),
)
def test_fused_detections_never_overlap_and_cover_hits(
    probs: list[float], window: float, hop: float, threshold: float
) -> None:
    starts = np.arange(len(probs)) * hop
    p = np.asarray(probs)
    dets = fuse_windows(starts, p, window, threshold)
    for a, b in itertools.pairwise(dets):
        assert a.end < b.start
    for s, prob in zip(starts, p, strict=True):
        if prob >= threshold:
            assert any(d.start <= s and s + window <= d.end + 1e-9 for d in dets)
    for d in dets:
        assert d.score >= threshold


def test_missing_training_files_are_reported_before_any_work(
    demo: DemoSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audio_embed import AudioFileNotFoundError

    def no_decoding(*_a: object, **_k: object) -> None:
        raise AssertionError("decoded although a training file is missing")

    monkeypatch.setattr(scanner_streaming, "stream_audio", no_decoding)
    recs = [
        Recording(demo.train_files[0], Markers(positive=[10.0])),
        Recording(demo.root / "gone.wav", Markers(positive=[5.0])),
    ]
    with pytest.raises(AudioFileNotFoundError, match="1 of the 2 training recordings"):
        Scanner(LogMelEmbedder()).fit(recs)


def test_every_unreadable_training_file_is_named_before_any_work(
    tmp_path: Path, demo: DemoSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0-byte file and a text file among the training recordings: fit stopped at
    the first it met (after embedding the readable ones before it), so each rerun
    named one more. All are named at once now, before anything is decoded; one alone
    keeps its own error."""
    from audio_embed import CorruptAudioError, EmptyAudioError

    def no_decoding(*_a: object, **_k: object) -> None:
        raise AssertionError("decoded although a training file cannot be read")

    monkeypatch.setattr(scanner_streaming, "stream_audio", no_decoding)
    empty, text = tmp_path / "empty.wav", tmp_path / "notes.wav"
    empty.write_bytes(b"")
    text.write_text("not audio\n" * 50)
    recs = [
        Recording(demo.train_files[0], Markers(positive=[10.0])),
        Recording(empty, Markers(positive=[5.0])),
        Recording(text, Markers(positive=[5.0])),
    ]
    with pytest.raises(EmptyAudioError, match=r"1 more of the 3 .*notes\.wav \(not a readable"):
        Scanner(LogMelEmbedder()).fit(recs)
    with pytest.raises(CorruptAudioError, match=r"notes\.wav: not a readable audio") as info:
        Scanner(LogMelEmbedder()).fit([recs[0], recs[2]])
    assert "more of the" not in str(info.value)


def test_scanning_a_clip_shorter_than_ten_seconds_warns(
    trained: Scanner, caplog: pytest.LogCaptureFixture
) -> None:
    """A 3 s clip normalised by its own windows hides a sound that fills much of it,
    and scan said nothing; it warns now, naming --normalization none."""
    clip = 0.01 * np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32)
    with caplog.at_level("WARNING", logger="audio_embed"):
        trained.scan(clip, sample_rate=16000)
    assert "<array> is 3.0 s long, shorter than 10 s" in caplog.text
    assert "normalization='none'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="audio_embed"):
        trained.scan(np.tile(clip, 4), sample_rate=16000)
    assert "shorter than" not in caplog.text


def test_training_on_a_clip_shorter_than_two_windows_warns(
    demo: DemoSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clip of the sound among the training recordings is normalised by its own
    windows (a clip of one window: to zeros), so it teaches little of the sound; fit
    said nothing."""
    import soundfile as sf

    markers = read_markers(demo.markers_csv)
    first = str(demo.train_files[0])
    audio, rate = sf.read(first, dtype="float32")
    at = markers[first].positive[0]
    clip = tmp_path / "clip.wav"
    sf.write(clip, audio[int((at - 0.25) * rate) : int((at + 0.25) * rate)], rate)
    recs = [Recording(first, markers[first]), Recording(clip, Markers(positive=[0.25]))]
    for normalization, warned in (("recording", True), ("none", False)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="audio_embed"):
            Scanner(
                LogMelEmbedder(), normalization=normalization, augmentation=None, threshold=0.5
            ).fit(recs)
        said = f"1 of the 2 training recording(s) are shorter than two windows (e.g. {clip}, 0.5 s)"
        assert (said in caplog.text) == warned, caplog.text


def test_scanner_refuses_parts_it_cannot_use_saying_what_to_pass() -> None:
    """A plain estimator failed later in fit with "'LogisticRegression' object has no
    attribute 'estimator'"; SlidingWindows with its own starts() crashed in scan with a
    numpy broadcasting error (the scanner streams the regular grid only)."""
    from attrs import frozen
    from sklearn.linear_model import LogisticRegression

    from audio_embed import CalibratedClassifier, InvalidInputError

    emb = LogMelEmbedder(n_mels=16)
    with pytest.raises(InvalidInputError, match=r"CalibratedClassifier\(estimator=Logistic"):
        Scanner(emb, classifier=LogisticRegression())  # type: ignore[arg-type]
    Scanner(emb, classifier=CalibratedClassifier(estimator=LogisticRegression()))

    @frozen
    class EveryOther(SlidingWindows):
        def starts(self, duration: float) -> np.ndarray:
            return super().starts(duration)[::2]

    @frozen
    class Plain(SlidingWindows):  # a subclass that keeps the grid is fine
        pass

    with pytest.raises(InvalidInputError, match=r"Got EveryOther instead, with its own starts"):
        Scanner(emb, scan_windows=EveryOther(1.0, 0.1))
    Scanner(emb, scan_windows=Plain(1.0, 0.1))
    with pytest.raises(InvalidInputError, match=r"'train_windows' .* Got SlidingWindows"):
        Scanner(emb, train_windows=SlidingWindows())  # type: ignore[arg-type]


class NearestMean(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier of the user's own (not scikit-learn's): the softmax of minus the
    squared distances to each class mean."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> NearestMean:
        self.classes_ = np.unique(y)
        self.means_ = np.stack([np.asarray(X)[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        d = -((np.asarray(X)[:, None, :] - self.means_[None]) ** 2).sum(-1) / X.shape[1]
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def test_a_scanner_with_an_estimator_of_your_own_loads_when_its_type_is_trusted(
    tmp_path: Path, demo: DemoSet, caplog: pytest.LogCaptureFixture
) -> None:
    """Save warned of nothing and load refused the file with no way through: the README
    accepts "any scikit-learn estimator with predict_proba", a class of your own too."""
    from audio_embed import CalibratedClassifier

    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    own = CalibratedClassifier(estimator=NearestMean(), calibration=None)
    scanner = Scanner(LogMelEmbedder(), classifier=own, augmentation=None, threshold=0.5)
    scanner.fit(recs)
    name = f"{NearestMean.__module__}.NearestMean"
    with caplog.at_level("WARNING", logger="audio_embed"):
        path = scanner.save(tmp_path / "own.scanner")
    assert f"trusted=[{name!r}]" in caplog.text and f"--trust {name}" in caplog.text
    with pytest.raises(ScannerFileError, match=rf"\({name}\); refusing .*trusted=\['{name}'\]"):
        Scanner.load(path)
    loaded = Scanner.load(path, trusted=[name])
    assert isinstance(loaded.classifier.estimator_, NearestMean)
    np.testing.assert_allclose(
        loaded.scan(demo.test_files[0]).probabilities,
        scanner.scan(demo.test_files[0]).probabilities,
    )


@pytest.mark.parametrize("calibration", ["isotonic", "sigmoid", None])
@pytest.mark.parametrize("kind", ["hgb", "extratrees", "logreg", "prototype"])
def test_a_scanner_of_our_own_classifier_loads_in_one_pass_of_skops(
    kind: str, calibration: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scanner.load listed the file's types with skops (a full parse of the classifier)
    before loading it (a second one): 40 % of a load, paid again by every Ray worker at
    its start. Our own classifiers' types are audited by the load itself."""
    import skops.io

    from audio_embed import CalibratedClassifier
    from audio_embed.classifier import make_base_estimator
    from audio_embed.scanner.persistence import OWN_CLASSIFIER_TYPES, TRUSTED_MODULE_PREFIXES

    assert all(t.startswith(TRUSTED_MODULE_PREFIXES) for t in OWN_CLASSIFIER_TYPES)
    scanner = Scanner(LogMelEmbedder(n_mels=16), augmentation=None, threshold=0.5)
    n_features = scanner.embedder.dim * (2 if scanner.context > 0 else 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, n_features)).astype(np.float32)
    y = np.r_[np.ones(40), np.zeros(160)].astype(int)
    x[y == 1] += 0.5
    base = make_base_estimator(kind)  # type: ignore[arg-type]
    scanner.classifier = CalibratedClassifier(estimator=base, calibration=calibration).fit(x, y)  # type: ignore[arg-type]
    path = scanner.save(tmp_path / "own.scanner")

    def listed(**kwargs: object) -> list[str]:
        raise AssertionError("the file's types were listed in a pass of their own")

    monkeypatch.setattr(skops.io, "get_untrusted_types", listed)
    loaded = Scanner.load(path)
    np.testing.assert_array_equal(
        loaded.classifier.predict_proba(x), scanner.classifier.predict_proba(x)
    )


def test_a_scanner_subclass_with_its_own_window_features_trains_and_loads_with_them(
    tmp_path: Path, demo: DemoSet, caplog: pytest.LogCaptureFixture
) -> None:
    """window_features() is a hook: fit used its own copy of the context features, so a
    subclass's extra features reached scans only ("X has 512 features, but
    CalibratedClassifier is expecting 256"), and Scanner.load of its file scored with
    the base class's features."""
    from attrs import define

    @define
    class Squared(Scanner):
        def window_features(self, normalised: np.ndarray, starts: np.ndarray) -> np.ndarray:
            f = super().window_features(normalised, starts)
            return np.concatenate([f, np.abs(f)], axis=1)

    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    scanner = Squared(LogMelEmbedder(), augmentation=None, threshold=0.5, context=0.0).fit(recs)
    assert scanner.classifier.n_features_in_ == 2 * scanner.embedder.dim
    probabilities = scanner.scan(demo.test_files[0]).probabilities
    path = scanner.save(tmp_path / "squared.scanner")
    with pytest.raises(ScannerFileError, match=r"window features of .*Squared .*Squared\.load"):
        Scanner.load(path)
    loaded = Squared.load(path)
    assert isinstance(loaded, Squared)
    np.testing.assert_array_equal(loaded.scan(demo.test_files[0]).probabilities, probabilities)
    with caplog.at_level("WARNING", logger="audio_embed"):
        Scanner.load(path, allow_mismatch=True)
    assert "loaded anyway" in caplog.text
    off_grid = TargetedWindows(hop=0.25)
    with pytest.raises(InvalidInputError, match=r"needs the training windows on the scan grid"):
        Squared(LogMelEmbedder(), train_windows=off_grid, augmentation=None).fit(recs)


@frozen(kw_only=True)
class StrongestOnly(Postprocessing):
    """Post-processing of the user's own: the ``keep`` best detections of the built-in
    steps (a field of its own, saved with the scanner)."""

    keep: int = 1

    def detections(
        self,
        starts: np.ndarray,
        probabilities: np.ndarray,
        window: float,
        threshold: float,
        duration: float | None = None,
    ) -> list[Detection]:
        found = super().detections(starts, probabilities, window, threshold, duration)
        best = sorted(found, key=lambda d: -d.score)[: self.keep]
        return sorted(best, key=lambda d: d.start)


def test_a_postprocessing_subclass_detects_and_comes_back_from_a_saved_scanner(
    tmp_path: Path, demo: DemoSet, trained: Scanner
) -> None:
    """A Postprocessing subclass is a hook: detect() and every scan use its detections(),
    and a saved scanner keeps it by its import path (before, a subclass changed nothing:
    detect() read the fields only, and the file loaded as Postprocessing)."""
    import attrs

    base = trained.scan(demo.test_files[0])
    assert len(base.detections(0.3)) > 1
    own = attrs.evolve(trained, postprocessing=StrongestOnly(**trained.postprocessing.as_dict()))
    own.postprocessing_ = None
    result = own.scan(demo.test_files[0])
    assert result.detections(0.3) == [max(base.detections(0.3), key=lambda d: d.score)]
    path = own.save(tmp_path / "own.scanner")
    loaded = Scanner.load(path)
    assert type(loaded.scan_postprocessing) is StrongestOnly
    assert loaded.postprocessing == own.postprocessing and loaded.postprocessing.keep == 1
    assert loaded.scan(demo.test_files[0]).detections(0.3) == result.detections(0.3)
    # refused, naming what to do, when the class is not loaded here
    with zipfile.ZipFile(path) as zf:
        meta, payload = json.loads(zf.read("scanner.json")), zf.read("classifier.skops")
    for saved, says in (
        ("not_loaded_post.Mine", r"--plugin not_loaded_post"),
        ("__main__.Mine", r"module of its own"),
        (f"{__name__}.Local.<locals>.Mine", r"module of its own"),
        ("audio_embed.windows.TargetedWindows", r"--plugin audio_embed\.windows"),
    ):
        meta["postprocessing_class"] = meta["postprocessing_setting_class"] = saved
        with zipfile.ZipFile(edited := tmp_path / "edited.scanner", "w") as zf:
            zf.writestr("scanner.json", json.dumps(meta))
            zf.writestr("classifier.skops", payload)
        with pytest.raises(ScannerFileError, match=rf"with {re.escape(saved)}, a .*{says}"):
            Scanner.load(edited)
    # files from before the option (no class saved) load as Postprocessing
    del meta["postprocessing_class"], meta["postprocessing_setting_class"]
    del meta["postprocessing"]["keep"], meta["postprocessing_setting"]["keep"]
    with zipfile.ZipFile(edited, "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    assert type(Scanner.load(edited).scan_postprocessing) is Postprocessing


@frozen
class PositivesAndEveryThirdWindow(TargetedWindows):
    """Training windows of the user's own: the positives and every third other window."""

    def windows(self, duration: float, markers: Markers) -> LabelledWindows:
        lw = super().windows(duration, markers)
        keep = lw.labels == 1
        keep[::3] = True
        return LabelledWindows(starts=lw.starts[keep], labels=lw.labels[keep])


def test_a_targeted_windows_subclass_comes_back_from_a_saved_scanner(
    tmp_path: Path, demo: DemoSet, caplog: pytest.LogCaptureFixture
) -> None:
    """It loaded as TargetedWindows, silently: a refit then labelled windows otherwise."""
    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    own = PositivesAndEveryThirdWindow()
    scanner = Scanner(LogMelEmbedder(), train_windows=own, augmentation=None, threshold=0.5)
    path = scanner.fit(recs).save(tmp_path / "own.scanner")
    loaded = Scanner.load(path)
    assert type(loaded.train_windows) is PositivesAndEveryThirdWindow
    assert loaded.train_windows == scanner.train_windows

    @frozen
    class Local(TargetedWindows):  # not reachable by name: loads as TargetedWindows, said
        pass

    local = Scanner(LogMelEmbedder(), train_windows=Local(), augmentation=None, threshold=0.5)
    path = local.fit(recs).save(tmp_path / "local.scanner")
    with caplog.at_level("WARNING", logger="audio_embed"):
        assert type(Scanner.load(path).train_windows) is TargetedWindows
    assert "trained with training windows of class" in caplog.text and ".Local" in caplog.text


@pytest.mark.parametrize(
    ("hop", "n_samples"),
    [(1 / 3, 21333), (0.3333, 31998), (0.0333, 17600), (0.0333, 32533), (0.1, 16001)],
)
def test_a_hop_of_no_whole_number_of_samples_streams_the_grid(hop: float, n_samples: int) -> None:
    """The streamed windows are SlidingWindows.starts' grid for any hop (before: hop
    1/3 s over 21,333 samples was 'internal error: streamed window grid differs')."""
    windows = SlidingWindows(1.0, hop)
    x = np.random.default_rng(0).normal(0, 0.1, n_samples).astype(np.float32)
    for encoding in ("shared", "per_window"):
        scanner = Scanner(LogMelEmbedder(), scan_windows=attrs.evolve(windows, encoding=encoding))
        got = scanner.sliding_embeddings(x, sample_rate=16000)
        np.testing.assert_array_equal(got.starts, windows.starts(n_samples / 16000))

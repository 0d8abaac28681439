"""EmbeddingIndex: build, reopen, search by example, incremental add, refusal of bad files."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from audio_embed import Cancelled, CancelToken, IndexFileError, InvalidInputError
from audio_embed._ann import AnnIndex
from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.embedders import LogMelEmbedder
from audio_embed.hits import hit_extent
from audio_embed.index import EmbeddingIndex, Example, Hit, merge_windows, recording_zscore
from audio_embed.scanner import Scanner
from audio_embed.windows import SlidingWindows, TargetedWindows

WINDOWS = SlidingWindows(2.0, 0.5)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    root = tmp_path_factory.mktemp("index-demo")
    return make_demo_set(
        root, n_train=2, n_test=1, seconds=40.0, targets_per_file=3, distractors_per_file=4
    )


def wavs(demo: DemoSet) -> list[Path]:
    return sorted(demo.root.glob("*/*.wav"))


@pytest.fixture(scope="module")
def built(demo: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    index = EmbeddingIndex.create(path, LogMelEmbedder(), windows=WINDOWS)
    report = index.add(wavs(demo))
    assert len(report.added) == 3 and not report.failed
    return path


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "copy.idx"))


def first_target(demo: DemoSet) -> tuple[str, float]:
    import csv

    row = next(r for r in csv.DictReader(demo.labels_csv.open()) if r["label"] == "horn")
    return str((demo.root / row["file"]).resolve()), (
        float(row["onset"]) + float(row["offset"])
    ) / 2


def on_a_horn(demo: DemoSet, hit: Hit) -> bool:
    import csv

    return any(
        str((demo.root / r["file"]).resolve()) == hit.file
        and hit.start < float(r["offset"])
        and hit.end > float(r["onset"])
        for r in csv.DictReader(demo.labels_csv.open())
        if r["label"] == "horn"
    )


def test_vectors_are_the_scanners_normalised_embeddings(demo: DemoSet, built: Path) -> None:
    index = EmbeddingIndex.open(built)
    scanner = Scanner(
        LogMelEmbedder(), scan_windows=WINDOWS, train_windows=TargetedWindows(2.0, hop=0.5)
    )
    f = index.files[0]
    entry = scanner.sliding_embeddings(f.path)
    want = recording_zscore(entry.embeddings)
    got = index.vectors(slice(f.first_row, f.first_row + f.n_rows))
    np.testing.assert_allclose(index.starts(f), entry.starts)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, atol=2e-3 * scale)  # float16 storage


def test_add_refuses_one_path_instead_of_reading_its_letters(demo: DemoSet, copy: Path) -> None:
    # before: add("a.wav") took "a", ".", "w", ... and failed on "." with an IsADirectoryError
    index = EmbeddingIndex.open(copy)
    with pytest.raises(InvalidInputError, match=r"EmbeddingIndex.add takes a list of paths"):
        index.add(str(wavs(demo)[0]))  # type: ignore[arg-type]
    assert EmbeddingIndex.open(copy).files == index.files


def test_round_trip_reopen_gives_identical_results(demo: DemoSet, built: Path) -> None:
    index = EmbeddingIndex.create(built.parent / "fresh.idx", LogMelEmbedder(), windows=WINDOWS)
    index.add(wavs(demo))
    reopened = EmbeddingIndex.open(built.parent / "fresh.idx")
    assert reopened.files == index.files
    np.testing.assert_array_equal(reopened.unit_vectors(), index.unit_vectors())
    ex = [Example(*first_target(demo))]
    for exact in (False, True):
        assert reopened.search(ex, top=5, exact=exact) == index.search(ex, top=5, exact=exact)


def test_example_from_the_index_comes_first(demo: DemoSet, built: Path) -> None:
    index = EmbeddingIndex.open(built)
    for f in index.files:
        starts = index.starts(f)
        for i in (0, len(starts) // 2, len(starts) - 1):
            centre = starts[i] + WINDOWS.window / 2
            hits = index.search([Example(f.path, centre)], top=3)
            assert hits[0].file == f.path and hits[0].row == f.first_row + i
            assert hits[0].score == pytest.approx(1.0, abs=1e-2)
            assert hits[0].start <= centre <= hits[0].end


def test_example_outside_the_index_is_embedded_with_its_config(
    demo: DemoSet, built: Path, tmp_path: Path
) -> None:
    index = EmbeddingIndex.open(built)
    file, t = first_target(demo)
    outside = Path(shutil.copy(file, tmp_path / "elsewhere.wav"))
    assert index.file(outside) is None
    inside_q = index.example_vector(Example(file, t))
    outside_q = index.example_vector(Example(str(outside), t))
    np.testing.assert_allclose(outside_q, inside_q, atol=2e-3)
    assert index.search([Example(str(outside), t)], top=1)[0].file == file


def test_an_example_clip_shorter_than_the_window_is_warned_of(
    demo: DemoSet, built: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clip cut tight around the sound (an editor's export of the sound alone),
    shorter than the index's window, is searched with a window padded with silence:
    it was searched without a word (on the wolf bench such clips found about two
    thirds as many calls as clips of a window or more)."""
    import logging

    import soundfile as sf

    file, t = first_target(demo)
    audio, sr = sf.read(file, dtype="float32")
    index = EmbeddingIndex.open(built)
    for seconds in (1.2, 2.4):  # the index's window: 2 s
        clip = tmp_path / f"c{seconds:g}.wav"
        sf.write(clip, audio[round((t - seconds / 2) * sr) : round((t + seconds / 2) * sr)], sr)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert index.search([Example(str(clip), seconds / 2)], top=3)
        short = "shorter than the index's 2 s window" in caplog.text
        assert short == (seconds < 2), caplog.text


def test_an_example_from_a_clip_is_normalised_by_the_index_s_statistics(
    demo: DemoSet, copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clip of the sound alone, normalised by its own mean (mostly the sound), left
    little to search with: one of a single window nothing (every hit 0.0000, in file
    order), one of a few seconds a quarter to half the hits on the wolf bench. It is
    normalised by the indexed files' statistics instead, indexed or not; an index
    written before them refuses the one and warns of the other."""
    import logging

    import soundfile as sf

    file, t = first_target(demo)
    audio, sr = sf.read(file, dtype="float32")
    clips = {}
    for name, half in (("one", 0.7), ("six", 3.0)):  # 1.4 s: one window of 2 s
        clips[name] = tmp_path / f"{name}.wav"
        sf.write(clips[name], audio[round((t - half) * sr) : round((t + half) * sr)], sr)
    index = EmbeddingIndex.open(copy)
    with caplog.at_level(logging.WARNING):
        for name, half in (("one", 0.7), ("six", 3.0)):
            hits = index.search([Example(str(clips[name]), half)], top=3)
            assert all(on_a_horn(demo, h) for h in hits), (name, hits)
        assert len(index.add([clips["one"]]).added) == 1  # indexed: the same
        hits = index.search([Example(str(clips["one"]), 0.7)], top=3)
        assert all(on_a_horn(demo, h) or h.file == str(clips["one"].resolve()) for h in hits), hits
        # the indexed clip's vector comes from its stored row and statistics, also once
        # the file is gone, and is the one a copy outside the index gets
        outside = Path(shutil.copy(clips["one"], tmp_path / "outside.wav"))
        want = index.example_vector(Example(str(outside), 0.7))
        clips["one"].rename(tmp_path / "moved.wav")
        np.testing.assert_allclose(index.example_vector(Example(str(clips["one"]), 0.7)), want,
                                   atol=2e-3)  # fmt: skip
    assert "by its own mean" not in caplog.text
    # an index from before the statistics: no stats file, no "stats_generation"
    (stats,) = copy.glob("stats-*.npy")
    stats.unlink()
    manifest = json.loads((copy / "index.json").read_text())
    del manifest["stats_generation"]
    (copy / "index.json").write_text(json.dumps(manifest))
    old = EmbeddingIndex.open(copy)
    assert old.reference_stats() is None
    with pytest.raises(InvalidInputError, match=r"one\.wav: .* holds 1 window\(s\) of 2 s"):
        old.search([Example(str(clips["one"]), 0.7)], top=3)
    with caplog.at_level(logging.WARNING):
        assert len(old.search([Example(str(clips["six"]), 3.0)], top=3)) == 3
    assert f"{clips['six']} is 6.0 s long" in caplog.text and "built before" in caplog.text
    # a file added since: too few files with statistics to stand for the index
    ten = tmp_path / "ten.wav"
    sf.write(ten, audio[: 10 * sr], sr)
    report = old.add([ten])
    assert report.added == [str(ten.resolve())], report
    assert EmbeddingIndex.open(copy).reference_stats() is None
    with pytest.raises(InvalidInputError, match=r"statistics .* for 1 of its 5 files"):
        EmbeddingIndex.open(copy).search([Example(str(outside), 0.7)], top=3)


def test_hits_are_merged_and_match_exact_search(demo: DemoSet, built: Path) -> None:
    index = EmbeddingIndex.open(built)
    hits = index.search([Example(*first_target(demo))], top=10, exact=True)
    for a in hits:
        assert a.start <= a.peak <= a.end
        for b in hits:
            if a is not b and a.file == b.file:  # one occurrence, one hit
                assert a.end <= b.start + 1e-9 or b.end <= a.start + 1e-9
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    approx = index.search([Example(*first_target(demo))], top=10)
    # the same hit; its score computed by FAISS, not numpy: float32 rounding differs
    assert attrs.evolve(approx[0], score=hits[0].score) == hits[0]
    assert approx[0].score == pytest.approx(hits[0].score, rel=1e-5)


def test_negatives_subtract_their_similarity(demo: DemoSet, built: Path) -> None:
    index = EmbeddingIndex.open(built)
    pos = Example(*first_target(demo))
    neg = Example(index.files[0].path, 20.0)
    q = index.query_vector([pos], [neg])
    p, n = index.example_vector(pos), index.example_vector(neg)
    np.testing.assert_allclose(q, p - n, atol=1e-6)
    hit = index.search([pos], negatives=[neg], top=1, exact=True)[0]
    v = index.unit_vectors(np.array([hit.row]))[0]
    assert hit.score == pytest.approx(float(v @ p - v @ n), abs=1e-4)


def test_merge_windows_one_hit_per_best_window() -> None:
    hits = merge_windows(
        ["a", "a", "a", "b"],
        np.array([0.0, 1.0, 10.0, 1.0]),
        np.array([0.5, 0.9, 0.7, 0.8]),
        np.arange(4),
        2.0,
        [20.0] * 4,
    )  # no extent: the best window alone; a window overlapping a hit's best one is dropped
    assert [(h.file, h.start, h.end, h.peak, h.score) for h in hits] == [
        ("a", 1.0, 3.0, 2.0, 0.9),
        ("b", 1.0, 3.0, 2.0, 0.8),
        ("a", 10.0, 12.0, 11.0, 0.7),
    ]
    # an extent reaching over an earlier hit is cut where that hit is
    wide = {0: (0.0, 5.0), 1: (2.5, 9.0), 2: (7.0, 8.0)}
    hits = merge_windows(
        ["a"] * 3, np.array([1.0, 5.0, 7.0]), np.array([0.9, 0.8, 0.7]), np.arange(3), 2.0,
        [20.0] * 3, extent=wide.__getitem__,
    )  # fmt: skip
    assert [(h.start, h.end) for h in hits] == [(0.0, 5.0), (5.0, 9.0)]  # 7.0: inside a hit
    # limit: the first hits of all, and only theirs get an extent (review: every
    # candidate's extent was read, about 30 times the time of a top-1000 search)
    asked: list[int] = []

    def counted(i: int) -> tuple[float, float]:
        asked.append(i)
        return (float(i) * 3.0, float(i) * 3.0 + 2.0)

    args = (["a"] * 5, np.arange(5) * 3.0, np.arange(5.0), np.arange(5), 2.0, [20.0] * 5)
    every = merge_windows(*args, extent=counted)
    asked.clear()
    assert merge_windows(*args, extent=counted, limit=2) == every[:2] and asked == [4, 3]
    # tied scores (identical windows: silence, a file indexed twice): the same first hit
    tied = (["b", "a"], np.array([5.0, 5.0]), np.array([0.9, 0.9]), np.array([10, 2]), 2.0)
    assert merge_windows(*tied, [20.0] * 2, limit=1) == merge_windows(*tied, [20.0] * 2)[:1]


def test_hit_extent_reaches_while_above_half_the_best() -> None:
    starts = np.arange(6) * 0.5
    scores = np.array([0.1, 0.6, 0.9, 1.0, 0.4, 0.8])
    # windows 1..3 (centres 1.5, 2.0, 2.5), half a hop (0.25 s) beyond the outer centres
    assert hit_extent(starts, scores, 3, 2.0, 20.0) == pytest.approx((1.25, 2.75))
    assert hit_extent(starts, scores, 3, 2.0, 20.0, level=0.95) == pytest.approx((2.25, 2.75))
    assert hit_extent(starts, -scores, 0, 2.0, 20.0) == pytest.approx((0.75, 1.25))
    assert hit_extent(np.zeros(1), np.ones(1), 0, 2.0, 1.5) == (0.0, 1.5)  # a short file
    # a best score <= 0 (a zero query): the best window alone, even beside equal scores
    # (review: neighbours at or above it were taken, tiling a file with 2 s hits)
    flat = np.full(5, -0.3)
    assert hit_extent(starts[:5], flat, 2, 2.0, 20.0) == pytest.approx((1.75, 2.25))
    assert hit_extent(starts[:5], 0 * flat, 2, 2.0, 20.0) == pytest.approx((1.75, 2.25))


def test_hit_extents_do_not_depend_on_top(demo: DemoSet, built: Path) -> None:
    # before: a hit widened over the neighbouring windows among the candidates, and a
    # larger top asks for more candidates: the same hits came out longer
    index = EmbeddingIndex.open(built)
    ex = [Example(*first_target(demo))]
    for exact in (False, True):
        few, many = index.search(ex, top=5, exact=exact), index.search(ex, top=50, exact=exact)
        assert len(few) == 5 and len(many) > 5
        assert [(h.file, h.row, h.start, h.end) for h in few] == [
            (h.file, h.row, h.start, h.end) for h in many[:5]
        ]
        q = index.query_vector(ex)
        assert [(h.start, h.end) for h in few] == [index.hit_extent(h.row, q) for h in few]


def test_incremental_add_skips_unchanged_and_replaces_changed(
    demo: DemoSet, copy: Path, tmp_path: Path
) -> None:
    index = EmbeddingIndex.open(copy)
    before = index.unit_vectors()
    again = index.add(wavs(demo))
    assert len(again.unchanged) == 3 and not again.added and again.windows_added == 0
    # A copy with a new mtime but the same bytes is recognised by its hash.
    moved = Path(shutil.copy(wavs(demo)[0], tmp_path / "x.wav"))
    index.add([moved])
    os.utime(moved, ns=(10**18, 10**18))
    assert EmbeddingIndex.open(copy).add([moved]).unchanged == [str(moved.resolve())]
    # Changed content: its windows are replaced; a new file is appended.
    from audio_embed.demo import write_wav

    write_wav(moved, np.zeros(16000 * 5, np.float32) + 0.01, 16000)
    extra = Path(shutil.copy(wavs(demo)[1], tmp_path / "y.wav"))
    index = EmbeddingIndex.open(copy)
    report = index.add([moved, extra])
    assert report.updated == [str(moved.resolve())]
    assert report.added == [str(extra.resolve())]
    reopened = EmbeddingIndex.open(copy)
    assert reopened.file(moved).n_rows == len(WINDOWS.starts(5.0))  # type: ignore[union-attr]
    np.testing.assert_array_equal(reopened.unit_vectors(slice(0, len(before))), before)
    ex = [Example(str(extra), 10.0)]
    approx, exact = reopened.search(ex, top=3), reopened.search(ex, top=3, exact=True)
    assert [h.row for h in approx] == [h.row for h in exact]  # the appended graph finds them
    assert [h.score for h in approx] == pytest.approx([h.score for h in exact], abs=1e-3)
    assert sorted(p.name for p in copy.iterdir() if p.name not in ("index.json", ".lock")) == [
        f"{stem}-{reopened.manifest['generation']}{suffix}"
        for stem, suffix in (("ann", ".faiss"), ("meta", ".sqlite"), ("norms", ".npy"),
                             ("stats", ".npy"), ("vectors", ".npy"))
    ]  # fmt: skip


def test_a_moved_file_keeps_its_windows_and_a_deleted_one_can_be_removed(
    demo: DemoSet, tmp_path: Path
) -> None:
    a = Path(shutil.copy(wavs(demo)[0], tmp_path / "a.wav")).resolve()
    b = Path(shutil.copy(wavs(demo)[1], tmp_path / "b.wav")).resolve()
    index = EmbeddingIndex.create(tmp_path / "m.idx", LogMelEmbedder(), windows=WINDOWS)
    index.add([a, b])
    before = index.unit_vectors()
    moved = a.rename(tmp_path / "take 1, renamed.wav")
    b.unlink()
    index = EmbeddingIndex.open(tmp_path / "m.idx")
    assert sorted(index.missing()) == sorted([str(a), str(b)])
    report = index.add([moved])  # found again under its new name: not embedded twice
    assert report.moved == [(str(a), str(moved))]
    assert not report.added and report.windows_added == 0
    index = EmbeddingIndex.open(tmp_path / "m.idx")
    assert [f.path for f in index.files] == [str(moved), str(b)]
    np.testing.assert_array_equal(index.unit_vectors(), before)
    assert index.missing() == [str(b)]
    n_b = index.files[1].n_rows
    assert index.remove(index.missing()) == n_b
    reopened = EmbeddingIndex.open(tmp_path / "m.idx")
    assert [f.path for f in reopened.files] == [str(moved)] and not reopened.missing()
    np.testing.assert_array_equal(reopened.unit_vectors(), before[: len(before) - n_b])
    hits = reopened.search([Example(str(moved), 10.0)], top=3)
    assert hits and {h.file for h in hits} == {str(moved)}


def test_two_writers_at_once_keep_both_files(demo: DemoSet, copy: Path, tmp_path: Path) -> None:
    # two `index` runs opened the archive before either committed
    first, second = EmbeddingIndex.open(copy), EmbeddingIndex.open(copy)
    x = Path(shutil.copy(wavs(demo)[0], tmp_path / "x.wav")).resolve()
    y = Path(shutil.copy(wavs(demo)[1], tmp_path / "y.wav")).resolve()
    first.add([x])
    second.add([y])  # commits on top of the first's generation, not over it
    reopened = EmbeddingIndex.open(copy)
    assert {str(x), str(y)} <= {f.path for f in reopened.files} and len(reopened.files) == 5
    assert len(reopened) == sum(f.n_rows for f in reopened.files)
    hits = reopened.search([Example(str(x), 10.0)], top=2, exact=True)  # x: a copy of one
    assert str(x) in {h.file for h in hits}


def test_a_reader_follows_a_writer_that_committed_meanwhile(
    demo: DemoSet, copy: Path, tmp_path: Path
) -> None:
    # a search opened the archive; an `index` run then committed a new generation,
    # deleting the files of the one the search had opened (readers take no lock)
    reader = EmbeddingIndex.open(copy)
    x = Path(shutil.copy(wavs(demo)[0], tmp_path / "x.wav")).resolve()
    EmbeddingIndex.open(copy).add([x])
    hits = reader.search([Example(str(x), 10.0)], top=2)
    assert str(x) in {h.file for h in hits}
    assert len(reader.files) == 4 and len(reader) == sum(f.n_rows for f in reader.files)


def test_opening_while_a_writer_commits_reads_the_newest_generation(
    demo: DemoSet, copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = Path(shutil.copy(wavs(demo)[1], tmp_path / "x.wav")).resolve()
    load = EmbeddingIndex._load_data
    commits = []

    def commit_first(self: EmbeddingIndex) -> None:
        if not commits:  # the manifest is read; a writer commits before the arrays are
            commits.append(1)
            monkeypatch.setattr(EmbeddingIndex, "_load_data", load)
            EmbeddingIndex.open(copy).add([x])
        load(self)

    monkeypatch.setattr(EmbeddingIndex, "_load_data", commit_first)
    index = EmbeddingIndex.open(copy)
    assert commits and str(x) in {f.path for f in index.files} and len(index.files) == 4


def test_a_runner_embedding_something_else_is_refused(demo: DemoSet, tmp_path: Path) -> None:
    """A Ray runner built with other windows or another audio stream than the index's
    would add vectors that are not comparable to the rest, silently."""
    from audio_embed.distributed import RayScanner

    index = EmbeddingIndex.create(tmp_path / "r.idx", LogMelEmbedder(), windows=WINDOWS)
    other = RayScanner.for_embedding("LOGMEL", window=1.0, hop=0.1, audio_stream=1, ordered=True)
    with pytest.raises(InvalidInputError, match=r"windows .* audio stream 1 \(the index: 0\)"):
        index.add([wavs(demo)[0]], many=other.sliding_embeddings_many)
    assert not EmbeddingIndex.open(tmp_path / "r.idx").files


def test_failed_file_is_reported_and_others_added(demo: DemoSet, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    index = EmbeddingIndex.create(tmp_path / "b.idx", LogMelEmbedder(), windows=WINDOWS)
    report = index.add([bad, wavs(demo)[0], tmp_path / "missing.wav"])
    assert sorted(f for f, _ in report.failed) == [
        str(bad.resolve()),
        str(tmp_path / "missing.wav"),
    ]
    assert len(report.added) == 1 and len(EmbeddingIndex.open(tmp_path / "b.idx").files) == 1


def test_cancel_leaves_the_index_unchanged(demo: DemoSet, copy: Path, tmp_path: Path) -> None:
    extra = Path(shutil.copy(wavs(demo)[1], tmp_path / "y.wav"))
    token = CancelToken()
    token.cancel()
    before = (copy / "index.json").read_text()
    with pytest.raises(Cancelled):
        EmbeddingIndex.open(copy).add([extra], cancel=token)
    assert (copy / "index.json").read_text() == before
    assert len(EmbeddingIndex.open(copy).files) == 3


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_ann_recall_at_10_on_a_synthetic_set(kind: str) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, 96)).astype(np.float32)
    x = centres[rng.integers(0, 200, 20000)] + 0.6 * rng.standard_normal((20000, 96))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ann = AnnIndex.build(96, x.astype(np.float16), {"flat_below": 10**9 if kind == "flat" else 0})
    assert ann.kind == kind
    q = x[rng.integers(0, len(x), 100)] + 0.01 * rng.standard_normal((100, 96))
    recall = []
    for v in q.astype(np.float32):
        truth = set(np.argsort(-(x @ v))[:10].tolist())
        keys, scores = ann.search(v, 10)
        assert np.all(np.diff(scores) <= 1e-6)
        recall.append(len(truth & set(keys.tolist())) / 10)
    assert np.mean(recall) >= 0.95


def test_ann_grows_then_is_rebuilt(demo: DemoSet, tmp_path: Path) -> None:
    """Appends go into the trained index until it has grown past its training size."""
    index = EmbeddingIndex.create(
        tmp_path / "g.idx", LogMelEmbedder(), windows=WINDOWS,
        ann_params={"flat_below": 50, "retrain_growth": 2},
    )  # fmt: skip
    files = wavs(demo)
    index.add(files[:1])
    first = dict(index.manifest["ann"])
    assert first["kind"] == "ivf" and first["trained_on"] == len(index)
    index.add(files[1:2])  # 2x: still appended
    assert index.manifest["ann"]["trained_on"] == first["trained_on"]
    index.add(files[2:])  # 3x: rebuilt and retrained
    assert index.manifest["ann"]["trained_on"] == len(index)
    for f in EmbeddingIndex.open(tmp_path / "g.idx").files:
        row = f.first_row + 3
        centre = float(EmbeddingIndex.open(tmp_path / "g.idx").starts(f)[3]) + 1.0
        hits = EmbeddingIndex.open(tmp_path / "g.idx").search([Example(f.path, centre)], top=1)
        assert hits[0].row == row


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: shutil.rmtree(p), "not found"),
        (lambda p: (shutil.rmtree(p), p.write_bytes(b"PK\x03\x04 a zip?")), "not an audio_embed"),
        (lambda p: (p / "index.json").unlink(), "not an audio_embed index"),
        (lambda p: (p / "index.json").write_text("{not json"), "unreadable"),
        (lambda p: (p / "index.json").write_text('{"format": "other"}'), "another format"),
        (lambda p: _edit(p, format_version=99), "newer audio_embed"),
        (lambda p: _edit(p, count=5), "disagree"),
        (lambda p: _gen(p, "vectors", ".npy").write_bytes(b"\x93NUMPY garbage"), "damaged"),
        (lambda p: _gen(p, "meta", ".sqlite").write_bytes(b"SQLite format 3\x00" + b"x" * 200),
         "damaged"),
        (lambda p: _gen(p, "norms", ".npy").unlink(), "missing"),
    ],
)  # fmt: skip
def test_corrupt_or_foreign_index_is_refused(copy: Path, damage: object, message: str) -> None:
    damage(copy)  # type: ignore[operator]
    with pytest.raises(IndexFileError, match=message):
        EmbeddingIndex.open(copy)


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None])
def test_damaged_ann_graph_is_refused_at_search(copy: Path, content: bytes | None) -> None:
    path = _gen(copy, "ann", ".faiss")
    if content is None:  # truncated
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    _edit(copy, ann={**json.loads((copy / "index.json").read_text())["ann"], "size": len(content)})
    index = EmbeddingIndex.open(copy)
    with pytest.raises(IndexFileError):
        index.search([Example(index.files[0].path, 5.0)], top=1)


def test_other_embedder_is_refused(built: Path) -> None:
    # naming the settings that differ (before: "LOGMEL (256 dims) … LOGMEL (128 dims)",
    # and a fingerprint alone)
    with pytest.raises(IndexFileError, match=r"LOGMEL.*n_mels: saved 64, this embedder 32\."):
        EmbeddingIndex.open(built, embedder=LogMelEmbedder(n_mels=32))
    with pytest.raises(
        IndexFileError, match=r"other weights or settings.*f_max: saved 8000.0, this embedder 4000"
    ):
        EmbeddingIndex.open(built, embedder=LogMelEmbedder(f_max=4000.0))


def test_bad_arguments(built: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="already exists"):
        EmbeddingIndex.create(built, LogMelEmbedder())
    index = EmbeddingIndex.open(built)
    with pytest.raises(InvalidInputError, match="outside the recording"):
        index.search([Example(index.files[0].path, 1e6)])
    with pytest.raises(InvalidInputError, match="at least one example"):
        index.search([])
    for text in ("rec.wav", "rec.wav:", ":3", "rec.wav:-1", "rec.wav:abc"):
        with pytest.raises(InvalidInputError, match="FILE:SECONDS"):
            Example.parse(text)
    with pytest.raises(InvalidInputError, match=r"decimal point: 12\.5, not 12,5"):
        Example.parse("rec.wav:3,6")  # before: only "An example is FILE:SECONDS"
    assert Example.parse("C:/a:b.wav:12.5") == Example("C:/a:b.wav", 12.5)
    # a player's clock time, when the file before it exists ("film.mp4:1" did not)
    film = tmp_path / "film.mp4"
    film.write_bytes(b"")
    assert Example.parse(f"{film}:1:23.5") == Example(str(film), 83.5)
    assert Example.parse(f"{film}:0:01:23.5") == Example(str(film), 83.5)
    assert Example.parse(f"{film}:83.5") == Example(str(film), 83.5)
    assert Example.parse("gone.mp4:1:23.5") == Example("gone.mp4:1", 23.5)  # as before
    # an editor's timecode with frames: said so (before: "film.mp4:01:00:03: no such file")
    for text in (f"{film}:01:00:03:12", "gone.mp4:00:00:03:04"):
        with pytest.raises(InvalidInputError, match=r"timecode with frames.*frame rate"):
            Example.parse(text)
    take = tmp_path / "take:01"  # a name with a colon, then a clock time H:MM:SS (review)
    take.write_bytes(b"")
    assert Example.parse(f"{take}:0:00:05") == Example(str(take), 5.0)


def test_an_example_takes_its_time_as_text_or_a_clock_time_and_its_file_as_a_path() -> None:
    """Example("a.wav", "1:23.5"), as the command line's a.wav:1:23.5 (before: TypeError
    "must be real number, not str" once the search began)."""
    assert Example("a.wav", "1:23.5") == Example("a.wav", 83.5)  # type: ignore[arg-type]
    assert Example("a.wav", "12.5") == Example("a.wav", 12.5)  # type: ignore[arg-type]
    assert Example(Path("a.wav"), 3) == Example("a.wav", 3.0)  # type: ignore[arg-type]
    for bad in ("soon", -1.0, None, math.nan):
        with pytest.raises(InvalidInputError, match=r"An example's time is seconds"):
            Example("a.wav", bad)  # type: ignore[arg-type]


def _gen(p: Path, stem: str, suffix: str) -> Path:
    gen = json.loads((p / "index.json").read_text())["generation"]
    return p / f"{stem}-{gen}{suffix}"


def _edit(p: Path, **changes: object) -> None:
    manifest = json.loads((p / "index.json").read_text())
    manifest.update(changes)
    (p / "index.json").write_text(json.dumps(manifest))


def test_a_new_index_takes_the_models_scan_windows(tmp_path: Path) -> None:
    """Without ``windows`` an index has the windows a Scanner of that model scans with
    (the model's ``scan_defaults()``, else 1 s every 0.1 s), so a scanner trained from
    it places detections as one trained from the files (it was 8 s every 1 s on the
    command line and 1 s every 0.1 s in the API, whatever the model)."""
    from audio_embed.embedders.base import ScanDefaults

    class OwnWindows(LogMelEmbedder):
        def scan_defaults(self) -> ScanDefaults:
            return ScanDefaults(window=0.5, hop=0.25)

    for embedder in (LogMelEmbedder(), OwnWindows()):
        index = EmbeddingIndex.create(tmp_path / f"{type(embedder).__name__}.idx", embedder)
        assert index.windows == Scanner(embedder).scan_windows
    assert index.windows == SlidingWindows(0.5, 0.25, "shared")


def test_search_takes_pairs_texts_and_one_example_alone(demo: DemoSet, built: Path) -> None:
    """search([(file, time)]) failed with AttributeError ('tuple' object has no attribute
    'source'), and one Example not in a list with TypeError; a 'file:time' text is what
    search --example takes."""
    index = EmbeddingIndex.open(built)
    file, t = first_target(demo)
    want = index.query_vector([Example(file, t)])
    for given in ([(file, t)], [f"{file}:{t}"], Example(file, t), (file, t), f"{file}:{t}"):
        np.testing.assert_array_equal(index.query_vector(given), want)  # type: ignore[arg-type]
    assert index.search([(file, t)], top=2) == index.search([Example(file, t)], top=2)
    # a tuple of two 'file:time' texts is two examples, not a file and a time
    two = [Example(file, t), Example(file, t + 1.0)]
    texts = (f"{file}:{t}", f"{file}:{t + 1.0}")
    np.testing.assert_array_equal(index.query_vector(texts), index.query_vector(two))
    assert index.query_vector((file, str(t))).tolist() == want.tolist()
    with pytest.raises(InvalidInputError, match="a \\(file, time\\) pair"):
        index.search([12.5], top=2)  # type: ignore[list-item]

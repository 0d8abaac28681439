"""The review loop: hits → markers to fill → training from the index → suggestions."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_embed import InvalidInputError, TrainingDataError
from audio_embed.augment import MixAugmentation
from audio_embed.classifier import CalibratedClassifier, make_base_estimator
from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.embedders import LogMelEmbedder
from audio_embed.formats import read_markers, read_review_markers
from audio_embed.index import EmbeddingIndex, Example, Hit
from audio_embed.review import (
    check_review_target,
    fit_from_index,
    format_hits,
    score_index,
    suggest_windows,
    write_review_markers,
)
from audio_embed.scanner import Recording, Scanner, ScanResult
from audio_embed.windows import Markers, SlidingWindows, TargetedWindows

WINDOWS = SlidingWindows(2.0, 0.5)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return make_demo_set(
        tmp_path_factory.mktemp("review-demo"),
        n_train=2,
        n_test=1,
        seconds=40.0,
        targets_per_file=3,
        distractors_per_file=4,
    )


@pytest.fixture(scope="module")
def index(demo: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> EmbeddingIndex:
    idx = EmbeddingIndex.create(
        tmp_path_factory.mktemp("idx") / "a.idx", LogMelEmbedder(), windows=WINDOWS,
        dtype="float32",
    )  # fmt: skip
    idx.add(sorted(demo.root.glob("*/*.wav")))
    return idx


def scanner(classifier: str = "logreg") -> Scanner:
    return Scanner(
        LogMelEmbedder(),
        classifier=CalibratedClassifier(make_base_estimator(classifier), calibration=None),  # type: ignore[arg-type]
        scan_windows=WINDOWS,
        train_windows=TargetedWindows(2.0, hop=0.5, neg_margin=2.0),
    )


def horn_events(demo: DemoSet) -> dict[str, list[tuple[float, float]]]:
    events: dict[str, list[tuple[float, float]]] = {}
    for r in csv.DictReader(demo.labels_csv.open()):
        if r["label"] == "horn":
            key = str((demo.root / r["file"]).resolve())
            events.setdefault(key, []).append((float(r["onset"]), float(r["offset"])))
    return events


def test_markers_written_by_search_read_back_after_review(
    demo: DemoSet, index: EmbeddingIndex, tmp_path: Path
) -> None:
    events = horn_events(demo)
    file, (on, off) = next(iter(events.items()))[0], next(iter(events.values()))[0]
    hits = index.search([Example(file, (on + off) / 2)], top=8)
    path = write_review_markers(tmp_path / "review.csv", hits)
    rows = list(csv.DictReader(path.open()))
    assert [r["kind"] for r in rows] == [""] * len(hits)
    assert [float(r["time"]) for r in rows] == pytest.approx([h.peak for h in hits], abs=1e-3)
    markers, skipped = read_review_markers(path)
    assert markers == {} and skipped == len(hits)
    # The reviewer fills in three rows; the others stay empty and are skipped.
    for r, kind in zip(rows, ["positive", "negative", "soft"], strict=False):
        r["kind"] = kind
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    markers, skipped = read_review_markers(path)
    assert skipped == len(hits) - 3
    got = {(f, k, t) for f, m in markers.items() for k in ("positive", "negative", "soft")
           for t in getattr(m, k)}  # fmt: skip
    want = {
        (h.file, k, round(h.peak, 3))
        for h, k in zip(hits, ["positive", "negative", "soft"], strict=False)
    }
    assert got == want
    assert read_markers(path) == markers


def test_fit_from_index_equals_fitting_from_the_files(demo: DemoSet, index: EmbeddingIndex) -> None:
    from audio_embed.formats import read_markers as read

    markers = read(demo.markers_csv)
    from_files = scanner()
    from_files.augmentation = None  # "auto" mixes in takes from the files, not from an index
    from_files.fit([Recording(f, m) for f, m in sorted(markers.items())])
    resolved = {str(Path(f).resolve()): m for f, m in markers.items()}
    from_index = fit_from_index(scanner(), index, resolved)
    assert from_index.training_summary is not None and from_files.training_summary is not None
    assert (
        from_index.training_summary["windows_positive"]
        == from_files.training_summary["windows_positive"]
    )
    test = str(demo.test_files[0])
    a, b = from_files.scan(test), from_index.scan(test)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-3)
    # the threshold is cross-validated from the index's vectors as from the files
    ta, tb = from_files.training_summary["threshold"], from_index.training_summary["threshold"]
    assert tb["method"] == ta["method"] == "leave-one-recording-out"
    assert from_index.threshold_ == pytest.approx(from_files.threshold_, abs=0.02)
    assert from_index.scan_postprocessing == from_files.scan_postprocessing
    assert from_index.training_summary["from_index"] == str(index.path)


def test_fit_from_index_chooses_its_threshold(
    demo: DemoSet, index: EmbeddingIndex, caplog: pytest.LogCaptureFixture
) -> None:
    """threshold="auto" is cross-validated over the marked files' index vectors (it
    was the fixed 0.5 before, or a previous fit's threshold_); a given threshold is
    kept, without a warning."""
    from audio_embed.formats import read_markers as read

    markers = {str(Path(f).resolve()): m for f, m in read(demo.markers_csv).items()}
    s = scanner()
    s.threshold_ = 0.07  # as a previous fit may have left it
    fit_from_index(s, index, markers)
    th = (s.training_summary or {})["threshold"]
    assert th["method"] == "leave-one-recording-out" and th["folds"] == len(markers)
    assert s.scan_threshold == th["value"] and 0.0 < th["value"] < 1.0
    assert s.scan_threshold not in (0.07, 0.5)
    caplog.clear()
    given = scanner()
    given.threshold = 0.4
    with caplog.at_level("WARNING", logger="audio_embed"):
        fit_from_index(given, index, markers)
    th = (given.training_summary or {})["threshold"]
    assert given.scan_threshold == 0.4 and th["method"] == "given" and "warning" not in th
    assert not [r for r in caplog.records if "threshold" in r.getMessage()]


def test_fit_from_index_refuses_what_does_not_fit(
    demo: DemoSet, index: EmbeddingIndex, tmp_path: Path
) -> None:
    with pytest.raises(TrainingDataError, match="not in the index"):
        fit_from_index(scanner(), index, {str(tmp_path / "other.wav"): Markers(positive=(3.0,))})
    other = Scanner(LogMelEmbedder(), scan_windows=SlidingWindows(2.0, 1.0),
                    train_windows=TargetedWindows(2.0))  # fmt: skip
    with pytest.raises(InvalidInputError, match="windows"):
        fit_from_index(other, index, {})
    off_grid = scanner()
    off_grid.train_windows = TargetedWindows(2.0, hop=0.3)
    f = index.files[0].path
    with pytest.raises(TrainingDataError, match="grid"):
        fit_from_index(off_grid, index, {f: Markers(positive=(5.0,))})
    augmented = scanner()
    augmented.augmentation = MixAugmentation()
    with pytest.raises(InvalidInputError, match="augmentation"):
        fit_from_index(augmented, index, {f: Markers(positive=(5.0,))})
    # markers everywhere leave no negative window: the same advice as fit gives
    everywhere = {f: Markers(positive=tuple(np.arange(1.0, 40.0, 2.0)))}
    with pytest.raises(TrainingDataError, match=r"only one class.*2 s or more.*--neg-margin"):
        fit_from_index(scanner(), index, everywhere)


def _reviewed(demo: DemoSet) -> tuple[str, Markers, str, Markers]:
    """One recording with every horn marked (complete) and one with a reviewer's answers
    only: its first horn positive and one moment 20 s from every horn negative."""
    markers = {str(Path(f).resolve()): m for f, m in read_markers(demo.markers_csv).items()}
    a, b = sorted(markers)
    horns = horn_events(demo)[b]
    quiet = next(t for t in np.arange(3.0, 38.0, 0.5) if all(abs(t - on) > 4 for on, _ in horns))
    return a, markers[a], b, Markers(positive=markers[b].positive[:1], negative=(float(quiet),))


def test_a_recording_that_is_not_complete_gives_only_its_marked_windows(
    demo: DemoSet, index: EmbeddingIndex
) -> None:
    """Recording(complete=False): no automatic negatives (its unmarked horns stay out of
    the training set), and the threshold's folds never hold it out (its unmarked part
    cannot tell a false positive from an unmarked horn); the same from an index."""
    a, marks_a, b, marks_b = _reviewed(demo)
    duration = index.file(b).duration  # type: ignore[union-attr]
    only_marked = TargetedWindows(2.0, hop=0.5, neg_margin=0.0).windows(duration, marks_b)
    as_complete = scanner().train_windows.windows(duration, marks_b)
    assert 0 < int((only_marked.labels == 0).sum()) < int((as_complete.labels == 0).sum())
    fitted = []
    for complete in (True, False):
        s = scanner()
        s.augmentation = None
        s.fit([Recording(a, marks_a), Recording(b, marks_b, complete=complete)])
        fitted.append(s)
    summary = fitted[1].training_summary or {}
    row = summary["files"][1]
    assert row["complete"] is False and "complete" not in summary["files"][0]
    assert (row["positive"], row["negative"]) == (
        int(only_marked.labels.sum()),
        int((only_marked.labels == 0).sum()),
    )
    # two complete recordings: left out in turn; one: folds over its markers only
    assert (fitted[0].training_summary or {})["threshold"]["method"] == "leave-one-recording-out"
    assert summary["threshold"]["method"] == "folds over markers"
    assert summary["windows_negative"] < (fitted[0].training_summary or {})["windows_negative"]
    from_index = fit_from_index(scanner(), index, {a: marks_a, b: marks_b}, partial={b})
    # the same rows, the band edge included: the index keeps each file's
    assert (from_index.training_summary or {})["files"] == summary["files"]
    assert all("band_edge_hz" in f for f in summary["files"])
    assert (from_index.training_summary or {})["threshold"]["method"] == "folds over markers"
    assert from_index.threshold_ == pytest.approx(fitted[1].threshold_, abs=0.02)
    # a reviewed recording is no training recording to adapt to, like a complete one
    with pytest.raises(InvalidInputError, match="training recording"):
        fitted[1].adapt([b])
    test = str(demo.test_files[0])
    np.testing.assert_allclose(
        from_index.scan(test).probabilities, fitted[1].scan(test).probabilities, atol=1e-3
    )


def test_reviewed_answers_alone_are_refused(demo: DemoSet, index: EmbeddingIndex) -> None:
    a, marks_a, b, marks_b = _reviewed(demo)
    with pytest.raises(TrainingDataError, match="complete"):
        scanner().fit(
            [Recording(a, marks_a, complete=False), Recording(b, marks_b, complete=False)]
        )
    with pytest.raises(TrainingDataError, match="complete"):
        fit_from_index(scanner(), index, {a: marks_a, b: marks_b}, partial={a, b})
    with pytest.raises(InvalidInputError, match="no markers"):
        fit_from_index(scanner(), index, {a: marks_a}, partial={b})
    # one file both complete and not: contradictory labels, refused before any work
    same = str(Path(a).parent / ".." / Path(a).parent.name / Path(a).name)
    with pytest.raises(InvalidInputError, match="both as a complete recording"):
        scanner().fit([Recording(a, marks_a), Recording(same, marks_b, complete=False)])


def test_fit_from_index_skips_auto_augmentation_and_says_so(
    demo: DemoSet, index: EmbeddingIndex
) -> None:
    markers = {str(Path(f).resolve()): m for f, m in read_markers(demo.markers_csv).items()}
    first = sorted(markers)[0]
    three = {first: Markers(positive=markers[first].positive[:3])}  # "auto" would mix these in
    sc = scanner()
    assert sc.augmentation == "auto"
    info = (fit_from_index(sc, index, three).training_summary or {})["augmentation"]
    assert info["setting"] == "auto" and info["ran"] is False and "index" in info["reason"]
    sc.augmentation = None
    info = (fit_from_index(sc, index, three).training_summary or {})["augmentation"]
    assert info["setting"] == "off" and info["ran"] is False


def test_score_index_matches_scanning_the_files(demo: DemoSet, index: EmbeddingIndex) -> None:
    markers = {str(Path(f).resolve()): m for f, m in read_markers(demo.markers_csv).items()}
    sc = fit_from_index(scanner(), index, markers)
    for result in score_index(sc, index):
        direct = sc.scan(result.source)
        np.testing.assert_allclose(result.starts, direct.starts)
        np.testing.assert_allclose(result.probabilities, direct.probabilities, atol=1e-3)


def test_suggestions_are_near_the_threshold_spread_and_apart() -> None:
    rng = np.random.default_rng(0)
    results = [
        ScanResult(f"f{i}", np.arange(100) * 0.5, rng.random(100), window=2.0, duration=51.5,
                   threshold=0.3)
        for i in range(3)
    ]  # fmt: skip
    picks = suggest_windows(results, 9)
    assert len(picks) == 9
    assert {p.file for p in picks} == {"f0", "f1", "f2"}
    assert all(sum(p.file == f for p in picks) == 3 for f in ("f0", "f1", "f2"))
    for a in picks:
        for b in picks:
            if a is not b and a.file == b.file:
                assert abs(a.start - b.start) >= 2.0 - 1e-9
    # each pick is the most uncertain window not overlapping the ones picked before it
    gaps = [abs(p.score - 0.3) for p in picks]
    everything = np.concatenate([np.abs(r.probabilities - 0.3) for r in results])
    assert max(gaps) <= np.sort(everything)[60]
    first = suggest_windows(results, 1)[0]
    assert abs(first.score - 0.3) == pytest.approx(float(everything.min()), abs=1e-12)


def test_format_hits() -> None:
    hits = [Hit("a.wav", 1.0, 3.0, 2.0, 0.9, 4), Hit("b, c.wav", 0.0, 2.0, 1.0, 0.5, 7)]
    rows = list(csv.DictReader(format_hits(hits, "csv").splitlines()))
    assert [r["file"] for r in rows] == ["a.wav", "b, c.wav"]
    assert float(rows[0]["score"]) == pytest.approx(0.9)
    import json

    assert json.loads(format_hits(hits, "json"))[1]["peak"] == 1.0
    with pytest.raises(InvalidInputError):
        format_hits(hits, "audacity")


def test_review_markers_never_overwrite_reviewed_work(tmp_path: Path) -> None:
    """Running `search … --markers-out review.csv` again after filling the kind
    column replaced the filled file with an empty one, silently."""
    hits = [Hit("a.wav", 1.0, 3.0, 2.0, 0.9, 0), Hit("a.wav", 5.0, 7.0, 6.0, 0.8, 1)]
    path = tmp_path / "review.csv"
    write_review_markers(path, hits)
    write_review_markers(path, hits[:1])  # an earlier, unreviewed file may be replaced
    filled = path.read_text().replace(",,", ",positive,", 1)
    path.write_text(filled)
    with pytest.raises(InvalidInputError, match="already holds 1 reviewed marker"):
        write_review_markers(path, hits)
    assert path.read_text() == filled
    plain = tmp_path / "markers.csv"  # no kind column: every row is a marker
    plain.write_text("file,time\na.wav,2.0\n")
    with pytest.raises(InvalidInputError, match="already holds 1 reviewed marker"):
        check_review_target(plain)
    other = tmp_path / "notes.txt"
    other.write_bytes(b"\xff\xfe not a csv")
    with pytest.raises(InvalidInputError, match="not a markers CSV"):
        check_review_target(other)
    (tmp_path / "empty.csv").write_text("")
    check_review_target(tmp_path / "empty.csv")
    # an earlier review file naming a file that is not UTF-8 (written with its bytes)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"file,time,kind\ncaf\xe9.wav,1.0,\nna\xc3\xafve.wav,2.0,\n")
    check_review_target(latin)  # before: "not a markers CSV"
    latin.write_bytes(b"file,time,kind\ncaf\xe9.wav,1.0,positive\n")
    with pytest.raises(InvalidInputError, match="already holds 1 reviewed marker"):
        check_review_target(latin)  # before: "not a markers CSV", which it is
    check_review_target(tmp_path / "new.csv")
    # a markers CSV with comment lines above its header, as train reads it (before:
    # refused as "not a markers CSV", which it is)
    plain.write_text("# from the spreadsheet\n\nfile,time,kind\na.wav,2.0,positive\n")
    with pytest.raises(InvalidInputError, match="already holds 1 reviewed marker"):
        check_review_target(plain)
    # a comment below the header is no reviewed marker (before: "already holds 1")
    plain.write_text("file,time\n# nothing marked yet\n")
    check_review_target(plain)


def _near_a_marker(hit: Hit, marked: dict[str, Markers], window: float) -> bool:
    m = marked.get(str(Path(hit.file).resolve()))
    return m is not None and any(
        hit.start < t + window and hit.start + window > t - window for t in m.all
    )


def test_suggestions_leave_out_the_moments_the_scanner_was_trained_on(
    demo: DemoSet, index: EmbeddingIndex, tmp_path: Path
) -> None:
    # before: the scanner kept no markers, so the next round asked again about windows
    # at the moments already marked (or reviewed) in the training recordings
    markers = {str(Path(f).resolve()): m for f, m in read_markers(demo.markers_csv).items()}
    first = sorted(markers)[0]
    markers[first] = Markers(positive=markers[first].positive, negative=[20.0])
    sc = fit_from_index(scanner(), index, markers)
    assert sc.training_markers == markers
    loaded = Scanner.load(sc.save(tmp_path / "s.scanner"))
    assert loaded.training_markers == markers  # kept in the saved scanner
    from audio_embed.distributed import RayScanner  # scan --ray --suggest: from its file

    assert RayScanner.from_scanner(tmp_path / "s.scanner").training_markers == markers
    results = score_index(loaded, index)
    before = suggest_windows(results, 30)
    assert any(_near_a_marker(h, markers, 2.0) for h in before)  # the defect, measured
    picks = suggest_windows(results, 30, exclude=loaded.training_markers)
    assert len(picks) == 30 and not any(_near_a_marker(h, markers, 2.0) for h in picks)
    # any spelling of a recording's path; a selection is left out over its whole span
    relative = {os.path.relpath(k): m for k, m in markers.items()}
    assert suggest_windows(results, 30, exclude=relative) == picks
    span = {first: Markers(spans=[(5.0, 15.0)])}
    for h in suggest_windows(results, 30, exclude=span):
        assert h.file != first or h.start >= 17.0 - 1e-9 or h.start + 2.0 <= 3.0 + 1e-9
    # a scanner saved before the markers were kept: loaded, and suggesting as before
    old = Scanner.load(tmp_path / "s.scanner")
    assert old.training_summary is not None
    for f in old.training_summary["files"]:
        del f["markers"]
    assert old.training_markers is None
    assert suggest_windows(score_index(old, index), 30, exclude=old.training_markers) == before


def test_training_markers_of_one_file_given_twice_are_both_kept() -> None:
    """Two spellings of one recording in ``Scanner.fit`` (review: the last one's
    markers replaced the first's)."""
    from audio_embed.scanner.core import summary_markers

    files = [
        {"path": "/a.wav", "markers": {"positive": [1.0]}},
        {"path": "/a.wav", "markers": {"negative": [5.0], "spans": [[7.0, 8.0]]}},
    ]
    assert summary_markers({"files": files}) == {
        "/a.wav": Markers(positive=[1.0], negative=[5.0], spans=[(7.0, 8.0)])
    }


def test_scanner_fit_from_files_keeps_its_markers(demo: DemoSet) -> None:
    markers = read_markers(demo.markers_csv)  # the names as given, relative or not
    recs = [Recording(f, m) for f, m in sorted(markers.items())]
    recs.append(Recording(np.zeros(16000 * 5, np.float32), Markers(negative=[1.0]), 16000))
    sc = scanner().fit(recs)
    assert sc.training_markers == {str(Path(f).resolve()): m for f, m in markers.items()}
    results = [sc.scan(f) for f in sorted(markers)]
    picks = suggest_windows(results, 30, exclude=sc.training_markers)
    assert picks and not any(_near_a_marker(h, sc.training_markers, 2.0) for h in picks)

"""Scan results scored against a labels CSV: the labelled set, the report, the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from audio_embed.errors import InvalidInputError, MarkerError
from audio_embed.evaluate import evaluate
from audio_embed.evaluation import evaluate_results, read_labelled_set, relative_name
from audio_embed.scanner import ScanResult

LABELS = """split,file,onset,offset,label
train,tr.wav,1,2,horn
test,t/a.wav,2,4,horn
test,t/a.wav,6,7,dog
test,t/b.wav,20,21,dog
test,/abs/c.wav,8,9,horn
"""


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    (tmp_path / "labels.csv").write_text(LABELS)
    return tmp_path / "labels.csv"


def test_read_labelled_set_filters_split_and_keys_by_path(labels: Path) -> None:
    root = labels.parent
    ls = read_labelled_set(labels, "horn", split="test")
    assert ls.root == root and ls.target == "horn" and ls.split == "test"
    assert ls.files == (Path("/abs/c.wav"), root / "t/a.wav", root / "t/b.wav")
    assert ls.events == {str(root / "t/a.wav"): ((2.0, 4.0),), "/abs/c.wav": ((8.0, 9.0),)}
    assert [e.label for e in ls.every[str(root / "t/a.wav")]] == ["horn", "dog"]
    assert len(read_labelled_set(labels, "horn").files) == 4  # every split


def test_one_recording_named_two_ways_in_the_labels_is_one_file(tmp_path: Path) -> None:
    """a.wav and sub/../a.wav (or its absolute path): one file with both events (before:
    two files, scanned twice, each scored against half the events)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "labels.csv").write_text(
        f"file,onset,offset,label\na.wav,1,2,horn\nsub/../a.wav,5,6,horn\n"
        f"{tmp_path / 'a.wav'},8,9,horn\n"
    )
    ls = read_labelled_set(tmp_path / "labels.csv", "horn")
    assert ls.files == (tmp_path / "a.wav",)
    assert ls.events == {str(tmp_path / "a.wav"): ((1.0, 2.0), (5.0, 6.0), (8.0, 9.0))}


def test_labels_naming_files_from_the_current_folder_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """labels/labels.csv naming recordings/a.wav, meant from the folder above (before:
    "skipped labels/recordings/a.wav: no such file", then "nothing to evaluate")."""
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "a.wav").write_bytes(b"")
    labels = tmp_path / "labels" / "l.csv"
    labels.parent.mkdir()
    labels.write_text("file,onset,offset,label\nrecordings/a.wav,1,2,horn\n")
    monkeypatch.chdir(tmp_path)
    read_labelled_set("labels/l.csv", "horn")
    assert "names 1 file(s) that are not there, e.g. labels/recordings/a.wav." in caplog.text
    assert "write them relative to it (../recordings/a.wav)" in caplog.text
    caplog.clear()
    labels.write_text("file,onset,offset,label\n../recordings/a.wav,1,2,horn\n")
    read_labelled_set("labels/l.csv", "horn")
    assert "not there" not in caplog.text


def test_read_labelled_set_names_what_there_is(labels: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"'dev'.*'test', 'train'"):
        read_labelled_set(labels, "horn", split="dev")
    with pytest.raises(InvalidInputError, match=r"'owl'.*split 'train'.*labels: horn"):
        read_labelled_set(labels, "owl", split="train")
    # a case slip or a typo: the label meant (before: only the list of every label)
    with pytest.raises(InvalidInputError, match=r"'Horn'.*Did you mean 'horn'\?"):
        read_labelled_set(labels, "Horn", split="test")
    with pytest.raises(InvalidInputError, match=r"'hron'.*Did you mean 'horn'\?"):
        read_labelled_set(labels, "hron")


def test_a_split_asked_of_labels_without_splits_says_so(tmp_path: Path) -> None:
    """``--split test`` with a labels CSV without a split column: "its splits: ''"."""
    (tmp_path / "labels.csv").write_text("file,onset,offset,label\na.wav,1,2,horn\n")
    with pytest.raises(InvalidInputError, match=r"has no split column.*leave out split"):
        read_labelled_set(tmp_path / "labels.csv", "horn", split="test")


def _result(path: str, probs: list[float]) -> ScanResult:
    return ScanResult(path, np.arange(float(len(probs))), np.array(probs), window=2.0,
                      duration=len(probs) + 1.0, threshold=0.5)  # fmt: skip


def test_evaluate_results_overall_and_per_file(labels: Path) -> None:
    ls = read_labelled_set(labels, "horn", split="test")
    a, b = str(labels.parent / "t/a.wav"), str(labels.parent / "t/b.wav")
    results = {
        a: _result(a, [0.1, 0.2, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1]),  # finds 2-4
        b: _result(b, [0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1, 0.1]),  # one false positive
    }
    report = evaluate_results(results, ls, threshold=0.5)
    assert report.overall == evaluate(results, ls.events, 0.5)
    assert [name for name, _ in report.per_file] == ["t/a.wav", "t/b.wav"]
    assert [(e.n_found, e.n_false_positives) for _, e in report.per_file] == [(1, 0), (0, 1)]
    data = report.as_dict(split="test", failed=[])
    assert list(data)[:3] == ["target", "threshold", "files"] and list(data)[-1] == "per_file"
    assert data["files"] == 2 and data["split"] == "test" and data["n_events"] == 1
    assert data["per_file"][1] == {"file": "t/b.wav", "n_events": 0, "n_found": 0,
                                   "n_detections": 1, "n_false_positives": 1}  # fmt: skip
    json.dumps(data, allow_nan=False)  # NaN metrics are None


def test_results_keyed_by_another_name_of_a_labelled_file_are_its_results(
    labels: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Labels read by a relative path name t/a.wav; results keyed by the absolute
    path (as result files and scan_to_folder name recordings) or ./t/a.wav are its
    results (before: "no result" / "no labels", the horn missed and the detections
    counted as false positives: F1 0)."""
    monkeypatch.chdir(labels.parent)
    ls = read_labelled_set("labels.csv", "horn", split="test")
    assert str(ls.files[1]) == "t/a.wav"
    probs = [0.1, 0.2, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1]
    same = evaluate_results({"t/a.wav": _result("t/a.wav", probs)}, ls, threshold=0.5)
    for key in (str(labels.parent / "t/a.wav"), "./t/a.wav"):
        report = evaluate_results({key: _result(key, probs)}, ls, threshold=0.5)
        assert report.overall == same.overall and report.overall.n_found == 1
        assert [name for name, _ in report.per_file] == ["t/a.wav"]
    assert "have no result (/abs/c.wav, t/b.wav)" in caplog.text  # those are missing
    assert "t/a.wav" not in caplog.text and "have no labels" not in caplog.text


def test_a_labelled_file_without_the_target_raises_no_naming_warning(
    labels: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """t/b.wav is labelled (a dog, no horn): its result is not "a result with no labels"
    (before: a warning said so and told to name results and labels alike)."""
    ls = read_labelled_set(labels, "horn", split="test")
    a, b, c = str(labels.parent / "t/a.wav"), str(labels.parent / "t/b.wav"), "/abs/c.wav"
    results = {k: _result(k, [0.1, 0.2, 0.9, 0.8, 0.1, 0.1]) for k in (a, b, c)}
    report = evaluate_results(results, ls, threshold=0.5)
    assert "no labels" not in caplog.text and "no result" not in caplog.text
    assert report.overall.n_false_positives == 2  # b's and c's (c's horn is at 8-9 s)
    del results[c]  # c.wav could not be scanned: that one is named
    evaluate_results(results, ls, threshold=0.5)
    assert "1 labelled file(s) have no result (/abs/c.wav)" in caplog.text
    assert "result(s) have no labels" not in caplog.text
    # ... unless the caller says it could not scan it (evaluate names it as skipped;
    # before, it also warned to "name results and labels alike")
    caplog.clear()
    left = evaluate_results(results, ls, threshold=0.5, unscanned=[c])
    assert "no result" not in caplog.text and "alike" not in caplog.text
    assert left.overall == evaluate_results(results, ls, threshold=0.5).overall


def test_events_no_detection_can_match_as_meant_are_named_once_and_scored_as_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An event past the recording's end, one without length and one listed twice: a
    warning each, naming it, once per evaluation (before: silently lower recall)."""
    (tmp_path / "labels.csv").write_text(
        "file,onset,offset,label\n"
        "a.wav,2,4,horn\na.wav,2,4,horn\n"  # the same event twice
        "a.wav,5.5,5.5,horn\n"  # no length
        "a.wav,30,31,horn\n"  # a.wav is 9 s long
        "a.wav,6,8,horn\na.wav,7,9,horn\n"  # overlapping: fine
    )
    ls = read_labelled_set(tmp_path / "labels.csv", "horn")
    a = str(tmp_path / "a.wav")
    results = {a: _result(a, [0.1, 0.2, 0.9, 0.8, 0.1, 0.9, 0.9, 0.1])}
    report = evaluate_results(results, ls, threshold=0.5)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3
    assert "1 labelled event(s) start at or after the end" in warnings[0]
    assert "a.wav 30-31 s (the recording is 9 s long)" in warnings[0]
    assert "1 labelled event(s) have no length" in warnings[1] and "5.5-5.5 s" in warnings[1]
    assert "1 labelled event(s) repeat an earlier row" in warnings[2] and "2-4 s" in warnings[2]
    assert report.overall.n_events == 6  # scored as given


def test_nan_metrics_become_none(labels: Path) -> None:
    ls = read_labelled_set(labels, "horn", split="test")
    b = str(labels.parent / "t/b.wav")  # no horn: one class only, no ROC AUC
    report = evaluate_results({b: _result(b, [0.1] * 6)}, ls, threshold=0.5)
    assert math.isnan(report.overall.window_auc)
    assert report.as_dict()["window_auc"] is None


def test_relative_name() -> None:
    assert relative_name("/data/x/a.wav", "/data") == "x/a.wav"
    assert relative_name("/else/a.wav", "/data") == "/else/a.wav"
    assert relative_name("a.wav", None) == "a.wav"


def test_plot_results_one_png_per_file(labels: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from audio_embed.plot import plot_results

    ls = read_labelled_set(labels, "horn", split="test")
    a, b = str(labels.parent / "t/a.wav"), str(labels.parent / "t/b.wav")
    results = {a: _result(a, [0.1, 0.9, 0.2]), b: _result(b, [0.3, 0.3, 0.3])}
    pngs = plot_results(results, ls, tmp_path / "plots", threshold=0.5)
    assert pngs == [tmp_path / "plots/t/a.png", tmp_path / "plots/t/b.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_plot_result_needs_only_a_path_and_a_result(tmp_path: Path) -> None:
    """In a notebook, ``plot_result("a.png", scanner.scan("a.wav"))`` was a TypeError
    (detections, events, target, threshold and title all required); they default
    to the result's own now."""
    pytest.importorskip("matplotlib")
    from audio_embed.plot import plot_result

    png = plot_result(tmp_path / "a.png", _result("a.wav", [0.1, 0.9, 0.2]))
    assert png == tmp_path / "a.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_onsets_and_offsets_as_clock_times(tmp_path: Path) -> None:
    """Labels written from a player's clock (1:23.5) were a "bad label row"."""
    from audio_embed.evaluate import read_labels

    (tmp_path / "l.csv").write_text("file,onset,offset,label\nv.mp4,1:23.5,1:24.25,gag\n")
    (event,) = read_labels(tmp_path / "l.csv")
    assert (event.onset, event.offset) == (83.5, 84.25)


def test_a_labels_csv_written_on_windows_finds_its_files(tmp_path: Path) -> None:
    """``test\\a.wav`` in a labels CSV made on Windows named no file here."""
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "a.wav").write_bytes(b"")
    (tmp_path / "l.csv").write_text("split,file,onset,offset,label\ntest,test\\a.wav,1,2,horn\n")
    ls = read_labelled_set(tmp_path / "l.csv", "horn")
    assert ls.files == (tmp_path / "test" / "a.wav",)


def test_a_labelled_file_without_the_target_is_not_called_unlabelled(
    labels: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """t/b.wav is labelled (a dog), with no horn: evaluate warned "1 result(s) have no
    labels (t/b.wav) … Name results and labels alike", as for a misnamed file. Only a
    result of a file the labels do not list is warned about now."""
    ls = read_labelled_set(labels, "horn", split="test")
    a, b = str(labels.parent / "t/a.wav"), str(labels.parent / "t/b.wav")
    c = "/abs/c.wav"
    results = {a: _result(a, [0.1, 0.9, 0.2]), b: _result(b, [0.3] * 3)}
    results[c] = _result(c, [0.1] * 8 + [0.9] * 2)  # 11 s: its event (8-9 s) lies inside
    with caplog.at_level("WARNING", logger="audio_embed"):
        report = evaluate_results(results, ls, threshold=0.5)
    assert not caplog.records, caplog.text
    assert report.overall.n_events == 2
    stray = str(labels.parent / "t/stray.wav")
    with caplog.at_level("WARNING", logger="audio_embed"):
        evaluate_results({**results, stray: _result(stray, [0.1])}, ls, threshold=0.5)
    assert "evaluate: 1 result(s) have no labels (" in caplog.text and "stray.wav" in caplog.text
    assert "0 labelled" not in caplog.text  # only what is wrong is listed


def test_a_labels_file_of_the_wrong_kind_is_one_clear_error(tmp_path: Path) -> None:
    """A markers CSV given as labels said "line 2: bad label row {...} ('onset')"; a
    binary file raised a bare UnicodeDecodeError (a traceback from the CLI)."""
    from audio_embed.errors import MarkerError

    markers = tmp_path / "markers.csv"
    markers.write_text("file,time,kind\na.wav,5.1,positive\n")
    with pytest.raises(MarkerError, match=r"missing onset, offset, label\. Found: file, time"):
        read_labelled_set(markers, "horn")
    headless = tmp_path / "headless.csv"  # exported without its header line
    headless.write_text("test,t/a.wav,3.5,4.25,horn\n")
    with pytest.raises(MarkerError, match=r"add the line split,file,onset,offset,label above"):
        read_labelled_set(headless, "horn")
    binary = tmp_path / "labels.csv"
    binary.write_bytes(b"\x00\xfe\x00garbage")  # no BOM (\xff\xfe: UTF-16)
    with pytest.raises(MarkerError, match="Cannot read labels file"):
        read_labelled_set(binary, "horn")


def test_a_labels_row_without_a_file_name_is_one_clear_error(tmp_path: Path) -> None:
    """As for markers (before: the labels' own folder was 'scanned' and failed)."""
    (tmp_path / "labels.csv").write_text("file,onset,offset,label\na.wav,1,2,horn\n ,3,4,horn\n")
    with pytest.raises(MarkerError, match=r"labels\.csv, line 3: the file column is empty"):
        read_labelled_set(tmp_path / "labels.csv", "horn")


def test_a_negative_onset_is_one_clear_error(tmp_path: Path) -> None:
    """As a negative marker time (before: read, then counted as missed)."""
    (tmp_path / "labels.csv").write_text("file,onset,offset,label\na.wav,-2,-1,horn\n")
    with pytest.raises(MarkerError, match=r"line 2: bad label row .*onset must be >= 0"):
        read_labelled_set(tmp_path / "labels.csv", "horn")


def test_a_labels_header_with_spaces_reads(tmp_path: Path) -> None:
    """``file, onset, offset, label`` passed the header check and then failed on every
    row (the rows' keys kept their spaces)."""
    from audio_embed.evaluate import read_labels

    spaced = tmp_path / "labels.csv"
    spaced.write_text("split, file, onset, offset, label\ntest,a.wav,1.0,2.5,horn\n")
    (event,) = read_labels(spaced)
    assert (event.file, event.onset, event.offset, event.label, event.split) == (
        "a.wav",
        1.0,
        2.5,
        "horn",
        "test",
    )


def test_a_semicolon_labels_csv_with_decimal_commas_reads(tmp_path: Path) -> None:
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_text("split;file;onset;offset;label\ntest;a, b.wav;1,5;2,25;horn\n")
    (event,) = read_labels(path)
    assert (event.file, event.onset, event.offset) == ("a, b.wav", 1.5, 2.25)


def test_rows_of_empty_cells_in_labels_are_skipped(tmp_path: Path) -> None:
    """``,,,,`` rows, as Excel exports rows that once held something (before: "line 3:
    the file column is empty"); errors still name their own line."""
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_text("file,onset,offset,label\r\na.wav,1,2,horn\r\n,,,\r\nb.wav,3,4,horn\r\n,,,\r\n")
    assert [e.file for e in read_labels(path)] == ["a.wav", "b.wav"]
    path.write_text("file,onset,offset,label\n,,,\na.wav,x,2,horn\n")
    with pytest.raises(MarkerError, match="line 3: bad label row"):
        read_labels(path)


def test_comment_lines_above_a_labels_header_are_left_out(tmp_path: Path) -> None:
    """As for markers: ``#`` and blank lines above the header (before: "a labels CSV
    needs the columns …; missing file, onset, offset, label"); below it, rows."""
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_text(
        "# annotator: kb\n\nfile,onset,offset,label\n#1.wav,1,2,horn\n\nb.wav,x,4,horn\n"
    )
    with pytest.raises(MarkerError, match="line 6: bad label row"):
        read_labels(path)
    path.write_text("# annotator: kb\n\nfile,onset,offset,label\n#1.wav,1,2,horn\n")
    assert [(e.file, e.onset) for e in read_labels(path)] == [("#1.wav", 1.0)]
    path.write_text("#,file,onset,offset,label\n1,#1.wav,1,2,horn\n")  # a '#' column
    assert [(e.file, e.onset) for e in read_labels(path)] == [("#1.wav", 1.0)]
    path.write_text("# file,onset,offset,label\n#1.wav,1,2,horn\n")  # a commented header
    with pytest.raises(MarkerError, match="looks like the header written as a comment"):
        read_labels(path)
    # below the header, a '#' line without times is a note, left out (before: "line 3:
    # bad label row"); a '#1.wav' row with its times is a row
    path.write_text("file,onset,offset,label\n#1.wav,1,2,horn\n# checked, all\n\n")
    assert [(e.file, e.onset) for e in read_labels(path)] == [("#1.wav", 1.0)]


def test_a_labels_csv_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """csv's DictReader kept the last ``onset`` column's values, silently."""
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_text("file,onset,onset,offset,label\na.wav,1,9,2,horn\n")
    with pytest.raises(MarkerError, match="names the column 'onset' 2 times"):
        read_labels(path)


def test_labels_with_cr_line_ends_are_read(tmp_path: Path) -> None:
    """CR alone ends the lines of Excel for Mac's "CSV (Macintosh)" (before:
    ``Cannot read labels file …: new-line character seen in unquoted field``); error
    lines are counted as before."""
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_bytes(b"file,onset,offset,label\ra.wav,1,2,horn\rb.wav,3,4,horn\r")
    assert [(e.file, e.onset) for e in read_labels(path)] == [("a.wav", 1.0), ("b.wav", 3.0)]
    path.write_bytes(b"file,onset,offset,label\ra.wav,1,2,horn\rb.wav,x,4,horn\r")
    with pytest.raises(MarkerError, match="line 3: bad label row"):
        read_labels(path)


def test_an_unquoted_name_with_a_comma_in_labels_is_one_clear_error(tmp_path: Path) -> None:
    from audio_embed.errors import MarkerError
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_text("split,file,onset,offset,label\ntest,my rec, take 1.wav,1.0,2.0,horn\n")
    with pytest.raises(MarkerError, match=r"6 fields where the header has 5\. A name holding ','"):
        read_labels(path)


def test_a_labels_header_in_capitals_reads_as_a_markers_header_does(tmp_path: Path) -> None:
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_text("Split,File,Onset,Offset,Label\ntest,a.wav,1.0,2.0,horn\n")
    (event,) = read_labels(path)
    assert (event.split, event.file, event.onset, event.label) == ("test", "a.wav", 1.0, "horn")


def test_a_labels_csv_in_windows_1252_reads(tmp_path: Path) -> None:
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.csv"
    path.write_bytes("file,onset,offset,label\nété.wav,1.0,2.0,cloche\n".encode("cp1252"))
    (event,) = read_labels(path)
    assert (event.file, event.label) == ("été.wav", "cloche")


def test_a_tab_separated_utf16_labels_file_with_decimal_commas_reads(tmp_path: Path) -> None:
    """Excel's "Unicode Text" export: UTF-16 with a BOM, tab-separated, and in many
    locales decimal commas (was 'not a text file', then 'not a time')."""
    from audio_embed.evaluate import read_labels

    path = tmp_path / "labels.txt"
    text = "split\tfile\tonset\toffset\tlabel\ntest\tété.wav\t1,5\t2,25\tcloche\n"
    path.write_bytes(text.encode("utf-16"))
    (event,) = read_labels(path)
    assert (event.file, event.onset, event.offset, event.label) == ("été.wav", 1.5, 2.25, "cloche")


def test_labels_that_are_a_recording_or_an_audacity_track_say_so(tmp_path: Path) -> None:
    """`evaluate --labels rec.mp4` read the whole video to say "not a text file (NUL
    bytes)"; `--labels rec.txt` (Audacity labels) listed the first label's numbers as
    the columns found, without a word on what the file is."""
    from audio_embed.evaluate import read_labels

    video = tmp_path / "rec.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(MarkerError, match=r"rec\.mp4: it is a recording .*not a labels file"):
        read_labels(video)
    track = tmp_path / "rec.txt"
    track.write_text("3.852\t4.302\tgag\n10.5\t11\tgag\n")
    with pytest.raises(MarkerError, match=r"looks like an Audacity label track"):
        read_labels(track)
    track.write_text("file,time,kind\nrec.mp4,3,positive\n")  # a markers CSV: no such hint
    with pytest.raises(MarkerError, match=r"missing onset") as e:
        read_labels(track)
    assert "Audacity" not in str(e.value)


def test_trained_on_names_the_labelled_files_a_scanner_was_trained_on(tmp_path: Path) -> None:
    """Each spelling of a training recording (relative, through a link) is known."""
    from audio_embed.evaluation import trained_on
    from audio_embed.formats import file_key

    (tmp_path / "t").mkdir()
    for name in ("a.wav", "b.wav"):
        (tmp_path / "t" / name).write_bytes(b"")
    (tmp_path / "link.wav").symlink_to(tmp_path / "t" / "b.wav")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,onset,offset,label\nt/a.wav,1,2,horn\nlink.wav,1,2,horn\n")
    labelled = read_labelled_set(labels, "horn")
    summary = {"files": [{"source": "x", "path": file_key(tmp_path / "t" / "b.wav")}]}
    assert trained_on(labelled, summary) == (tmp_path / "link.wav",)
    assert trained_on(labelled, None) == () == trained_on(labelled, {"files": [{"source": "y"}]})


def test_a_labels_csv_s_cells_are_read_without_their_spaces(tmp_path: Path) -> None:
    """``wolf `` (a spreadsheet's trailing space) was another label than ``wolf``: its
    event was left out of the target's, silently (recall over fewer events, the
    detection of it a false positive); split and file cells the same."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.wav").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "split,file,onset,offset,label\ntest,t/a.wav,1,2,wolf\n"
        "test , t/a.wav,3,4,wolf \ntest,t/a.wav ,5,6, wolf\n"
    )
    labelled = read_labelled_set(labels, "wolf", split="test")
    assert labelled.files == (tmp_path / "t" / "a.wav",)
    assert labelled.events == {str(tmp_path / "t" / "a.wav"): ((1, 2), (3, 4), (5, 6))}

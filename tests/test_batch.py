"""Scanning many files into a folder: inputs, output names, the per-file loop and
the report (with a fake scanner: the scanning itself is tested elsewhere)."""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from audio_embed.batch import (
    COMBINED_CSV,
    SCAN_JOURNAL,
    SCAN_LOCK,
    SCAN_STAMP,
    BatchCancelled,
    BatchSettings,
    FileOutcome,
    Input,
    _read_stamp,
    collect_inputs,
    output_paths,
    run_many,
    scan_to_folder,
)
from audio_embed.errors import (
    AudioEmbedError,
    Cancelled,
    CorruptAudioError,
    InvalidInputError,
)
from audio_embed.formats import read_detections, read_marker_files
from audio_embed.progress import CancelToken, ProgressEvent
from audio_embed.scanner import ScanResult


def _result(source: str) -> ScanResult:
    """Windows of 2 s every 1 s over 12 s; a different high stretch per file name."""
    probs = np.full(11, 0.1)
    first = len(Path(source).name) % 5  # distinct per file, same on every run
    probs[first : first + 2] = [0.6, 0.9]
    return ScanResult(source, np.arange(11.0), probs, window=2.0, duration=12.0, threshold=0.5)


class FakeScanner:
    """``scan_many`` like Scanner's: a CorruptAudioError result for ``corrupt`` files,
    an unexpected exception (which stops the generator) for ``crash`` files."""

    scan_threshold = 0.5

    def __init__(self, corrupt: Iterable[str] = (), crash: Iterable[str] = ()) -> None:
        self.corrupt, self.crash = set(corrupt), set(crash)
        self.calls: list[list[str]] = []

    def scan_many(
        self,
        sources: Iterable[str | Path],
        *,
        progress: object = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, ScanResult | AudioEmbedError]]:
        paths = [str(s) for s in sources]
        self.calls.append([Path(p).name for p in paths])
        for p in paths:
            if cancel is not None:
                cancel.check()
            name = Path(p).name
            if name in self.crash:
                raise RuntimeError(f"boom in {name}")
            if name in self.corrupt:
                yield p, CorruptAudioError(p, "not a readable audio or video file")
            else:
                yield p, _result(p)


def _touch(*paths: Path) -> list[Path]:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return list(paths)


# ---------------------------------------------------------------- inputs and names


def test_collect_inputs_walks_folders_skips_hidden_and_dedups(tmp_path: Path) -> None:
    a, b, _hidden, _notes, _in_hidden = _touch(
        tmp_path / "in" / "a.wav",
        tmp_path / "in" / "sub" / "b.MP4",
        tmp_path / "in" / ".c.wav",
        tmp_path / "in" / "notes.txt",
        tmp_path / "in" / ".git" / "d.wav",
    )
    (tmp_path / "empty").mkdir()
    found, missing = collect_inputs(
        [str(tmp_path / "in"), str(a), str(tmp_path / "nope.wav"), str(tmp_path / "empty")]
    )
    assert found == [Input(a, Path("a.wav")), Input(b, Path("sub/b.MP4"))]
    assert missing == [
        (str(tmp_path / "nope.wav"), "no such file or directory"),
        (str(tmp_path / "empty"), "no audio or video files in this folder"),
    ]


def test_a_folder_of_camcorder_and_phone_files_is_scanned(tmp_path: Path) -> None:
    names = ["00001.MTS", "00002.m2ts", "call.3gp", "take.mka", "tape.mxf"]
    files = _touch(*(tmp_path / "cam" / n for n in names))  # were skipped without a word
    found, missing = collect_inputs([str(tmp_path / "cam")])
    assert [i.path for i in found] == list(files) and not missing


def test_a_folder_of_production_sound_and_field_recorder_files_is_scanned(
    tmp_path: Path,
) -> None:
    """Broadcast Wave (.bwf, what production sound recorders write), RF64 and Wave64
    (WAV past 4 GB), .au, .aifc, .m4b: FFmpeg reads them all, but a folder scan
    skipped them without a word ("no audio or video files in this folder")."""
    names = ["sc1_t01.BWF", "night.rf64", "long.w64", "old.au", "mac.aifc", "book.m4b"]
    files = _touch(*(tmp_path / "sound" / n for n in names))
    found, missing = collect_inputs([str(tmp_path / "sound")])
    assert sorted(i.path for i in found) == sorted(files) and not missing


def test_output_paths_are_unique_and_stay_inside(tmp_path: Path) -> None:
    inputs = [
        Input(Path("/x/a.wav"), Path("a.wav")),
        Input(Path("/x/a.mp4"), Path("a.mp4")),
        Input(Path("/x/b.wav"), Path("sub/b.wav")),
        Input(Path("/y/detections.wav"), Path("detections.wav")),
        Input(Path("/z/evil.wav"), Path("../../evil.wav")),
    ]
    out = output_paths(inputs, tmp_path, ".csv", reserved=(COMBINED_CSV,))
    assert {k: v.relative_to(tmp_path).as_posix() for k, v in out.items()} == {
        Path("/x/a.wav"): "a.wav.csv",
        Path("/x/a.mp4"): "a.mp4.csv",
        Path("/x/b.wav"): "sub/b.csv",
        Path("/y/detections.wav"): "detections.wav.csv",
        Path("/z/evil.wav"): "evil.csv",
    }


def test_output_paths_never_give_two_inputs_names_that_differ_only_in_case(
    tmp_path: Path,
) -> None:
    """On a case-insensitive file system (macOS, Windows) Clip.csv and clip.csv are one
    file: the second result silently replaced the first, and Detections.wav's result was
    replaced by the combined detections.csv. Names are unique regardless of case."""
    inputs = [
        Input(Path("/d1/Clip.wav"), Path("Clip.wav")),
        Input(Path("/d2/clip.wav"), Path("clip.wav")),
        Input(Path("/d3/x.wav"), Path("A/x.wav")),
        Input(Path("/d4/x.wav"), Path("a/x.wav")),
        Input(Path("/d5/Detections.wav"), Path("Detections.wav")),
    ]
    out = output_paths(inputs, tmp_path, ".csv", reserved=(COMBINED_CSV,))
    names = [v.relative_to(tmp_path).as_posix() for v in out.values()]
    assert names == [
        "Clip.wav.csv",
        "clip.wav-2.csv",
        "A/x.wav.csv",
        "a/x.wav-2.csv",
        "Detections.wav.csv",
    ]


def test_an_earlier_result_of_another_case_is_known_on_a_case_insensitive_file_system(
    tmp_path: Path,
) -> None:
    """day1/Clip.wav's Clip.txt is day2/clip.wav's clip.txt on macOS or Windows (a hard
    link stands for that here): the record knew it only as Clip.txt, so Audacity labels
    (which name no recording) of day1 were replaced by day2's. And a record naming one
    file under two cases listed it in detections.csv as both recordings' result."""
    import json

    _recordings(tmp_path / "day1" / "Clip.wav", tmp_path / "day2" / "clip.wav")
    out = tmp_path / "out"
    labels = BatchSettings(fmt="audacity")
    scan_to_folder(FakeScanner(), [tmp_path / "day1"], out, labels)
    os.link(out / "Clip.txt", out / "clip.txt")  # one file, two names
    day1 = (out / "Clip.txt").read_text()
    for skip in (False, True):
        scanner = FakeScanner()
        with pytest.raises(InvalidInputError, match=r"another recording, .*day1.Clip\.wav"):
            scan_to_folder(
                scanner, [tmp_path / "day2"], out, attrs.evolve(labels, skip_existing=skip)
            )
        assert scanner.calls == [] and (out / "clip.txt").read_text() == day1
    # a record that names one file under two cases (day2's written last) keeps the last
    (tmp_path / "day1" / "Clip.wav").unlink()
    (out / "Clip.txt").unlink()
    (out / "clip.txt").unlink()
    scan_to_folder(FakeScanner(), [tmp_path / "day2"], out, BatchSettings())
    record = json.loads((out / SCAN_STAMP).read_text())
    record["results"]["Clip.csv"] = dict(
        record["results"]["clip.csv"],
        file=str(tmp_path / "day1" / "Clip.wav"),
        recording=str(tmp_path / "day1" / "Clip.wav"),
        written=1.0,
    )
    record["thresholds"]["Clip.csv"] = 0.5
    (out / SCAN_STAMP).write_text(json.dumps(record))
    os.link(out / "clip.csv", out / "Clip.csv")
    (other,) = _recordings(tmp_path / "day3" / "other.wav")
    scan_to_folder(FakeScanner(), [other], out, BatchSettings())
    files = [r["file"] for r in _combined_rows(out)]
    assert str(tmp_path / "day1" / "Clip.wav") not in files
    assert str(tmp_path / "day2" / "clip.wav") in files
    kept = json.loads((out / SCAN_STAMP).read_text())["results"]
    assert {k for k in kept if k.endswith(".csv")} == {"clip.csv", "other.csv"}


# ---------------------------------------------------------------- run_many


def test_run_many_goes_on_after_a_failing_and_a_crashing_file(tmp_path: Path) -> None:
    files = _touch(*(tmp_path / f"{n}.wav" for n in "abcd"))
    scanner = FakeScanner(corrupt={"b.wav"}, crash={"c.wav"})
    events: list[ProgressEvent] = []
    got = list(
        run_many(scanner.scan_many, [Input(f, Path(f.name)) for f in files], progress=events.append)
    )
    assert [inp.path.name for inp, _ in got] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert isinstance(got[0][1], ScanResult) and isinstance(got[3][1], ScanResult)
    assert isinstance(got[1][1], CorruptAudioError)
    assert isinstance(got[2][1], RuntimeError) and "boom in c.wav" in str(got[2][1])
    assert scanner.calls == [["a.wav", "b.wav", "c.wav", "d.wav"], ["d.wav"]]  # restarted after c
    file_events = [(e.source, e.done, e.total) for e in events if e.stage == "files"]
    assert file_events == [("", 0, 4)] + [(str(f), i, 4) for i, f in enumerate(files, start=1)]


def test_run_many_matches_results_by_path_in_any_order(tmp_path: Path) -> None:
    files = _touch(*(tmp_path / f"{n}.wav" for n in "abc"))

    def backwards(sources: list[Path], **_: object) -> Iterator[tuple[str, ScanResult]]:
        for s in reversed(sources[1:]):  # never reports the first input
            yield str(s), _result(str(s))

    got = list(run_many(backwards, [Input(f, Path(f.name)) for f in files]))
    assert [inp.path.name for inp, _ in got] == ["c.wav", "b.wav", "a.wav"]
    assert [r.source for _, r in got[:2] if isinstance(r, ScanResult)] == [
        str(files[2]),
        str(files[1]),
    ]
    assert isinstance(got[2][1], AudioEmbedError) and "no result" in str(got[2][1])


def test_run_many_refuses_a_result_for_a_file_it_did_not_ask_for(tmp_path: Path) -> None:
    (f,) = _touch(tmp_path / "a.wav")

    def stranger(sources: list[Path], **_: object) -> Iterator[tuple[str, ScanResult]]:
        yield "elsewhere.wav", _result("elsewhere.wav")

    with pytest.raises(ValueError, match=r"elsewhere\.wav"):
        list(run_many(stranger, [Input(f, Path(f.name))]))


def test_run_many_stops_when_cancelled(tmp_path: Path) -> None:
    files = _touch(*(tmp_path / f"{n}.wav" for n in "ab"))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        list(
            run_many(FakeScanner().scan_many, [Input(f, Path(f.name)) for f in files], cancel=token)
        )


# ---------------------------------------------------------------- scan_to_folder


def _combined_rows(out: Path) -> list[dict[str, str]]:
    with (out / COMBINED_CSV).open() as fh:
        return list(csv.DictReader(fh))


def test_scan_to_folder_writes_results_and_reports_every_input(tmp_path: Path) -> None:
    a, b, _bad = _touch(tmp_path / "in" / "a.wav", tmp_path / "in" / "sub" / "bb.flac",
                       tmp_path / "in" / "bad.wav")  # fmt: skip
    out = tmp_path / "out"
    heard: list[FileOutcome] = []
    report = scan_to_folder(
        FakeScanner(corrupt={"bad.wav"}),
        [tmp_path / "in", tmp_path / "missing.wav"],
        out,
        BatchSettings(fmt="json"),
        on_file=heard.append,
    )
    assert [(o.kind, Path(o.item).name) for o in heard] == [
        ("missing", "missing.wav"),
        ("done", "a.wav"),
        ("failed", "bad.wav"),
        ("done", "bb.flac"),
    ]
    assert [o.item for o in report.done] == [str(a), str(b)]
    assert [o.kind for o in report.failed] == ["missing", "failed"]
    assert "not a readable" in (report.failed[1].reason or "")
    assert report.total == 4 and not report.ok and report.skipped == ()
    assert report.threshold == 0.5 and report.results() == {}  # results not kept by default
    for o in report.done:
        assert o.output is not None and o.output.is_file()
        assert read_detections(o.output, "json") == list(o.detections)
        assert o.detections == tuple(_result(o.item).detections(0.5))
    assert report.done[1].output == out / "sub" / "bb.json"
    assert report.n_detections == sum(len(o.detections) for o in report.done) == 2
    rows = _combined_rows(out)
    assert report.combined == out / COMBINED_CSV
    assert [r["file"] for r in rows] == [str(a), str(b)]  # input order
    assert float(rows[0]["score"]) == pytest.approx(report.done[0].detections[0].score, abs=1e-4)


def test_skip_existing_reads_back_and_rescans_unreadable_results(tmp_path: Path) -> None:
    files = _touch(*(tmp_path / f"{n}.wav" for n in ("one", "two", "three")))
    out = tmp_path / "out"
    first = scan_to_folder(FakeScanner(), files, out, BatchSettings(fmt="audacity", label="horn"))
    (out / "two.txt").write_text("1.0\tnot-a-time\thorn 0.50\n")
    (out / "three.txt").unlink()
    scanner = FakeScanner()
    heard: list[FileOutcome] = []
    resume = BatchSettings(fmt="audacity", label="horn", skip_existing=True)
    again = scan_to_folder(scanner, files, out, resume, on_file=heard.append)
    assert [(o.kind, Path(o.item).name) for o in heard] == [
        ("skipped", "one.wav"),
        ("rescan", "two.wav"),
        ("done", "two.wav"),
        ("done", "three.wav"),
    ]
    assert "two.txt is unreadable" in (heard[1].reason or "")
    assert scanner.calls == [["two.wav", "three.wav"]]
    kept = again.skipped[0].detections
    assert [(d.start, d.end, d.score) for d in kept] == [
        (d.start, d.end, round(d.score, 2)) for d in first.done[0].detections
    ]
    assert all(np.isnan(d.peak) for d in kept)  # Audacity labels do not store the peak
    rows = _combined_rows(out)
    assert [Path(r["file"]).name for r in rows] == ["one.wav", "two.wav", "three.wav"]
    assert rows[0]["peak"] == ""  # unknown, not "nan"
    assert again.total == 3 and again.ok and len(again.done) == 2


def test_skip_existing_warns_when_it_keeps_results_of_another_threshold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Resuming with another scanner or --threshold kept the earlier results without a
    word, and detections.csv mixed two thresholds under a summary naming one. The
    folder records each result's threshold (SCAN_STAMP); keeping one of another
    threshold is a warning. Same threshold, or a folder from before the record: none."""
    files = _touch(*(tmp_path / f"{n}.wav" for n in ("one", "two", "three")))
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), files, out, BatchSettings())
    assert (out / SCAN_STAMP).is_file()
    (out / "three.csv").unlink()
    with caplog.at_level("WARNING", logger="audio_embed.batch"):
        scan_to_folder(FakeScanner(), files, out, BatchSettings(skip_existing=True))
    assert not caplog.records  # the same threshold: nothing to say
    with caplog.at_level("WARNING", logger="audio_embed.batch"):
        scan_to_folder(FakeScanner(), files, out, BatchSettings(threshold=0.7, skip_existing=True))
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "3 of the 3 result(s) kept" in warning and "threshold 0.5" in warning
    assert "uses 0.7" in warning and "--skip-existing" in warning
    # a result written now records its threshold: resuming at 0.7 keeps it silently
    (out / "two.csv").unlink()
    scan_to_folder(FakeScanner(), files, out, BatchSettings(threshold=0.7, skip_existing=True))
    caplog.clear()
    with caplog.at_level("WARNING", logger="audio_embed.batch"):
        scan_to_folder(FakeScanner(), files, out, BatchSettings(threshold=0.7, skip_existing=True))
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2 of the 3 result(s) kept" in warning
    # a folder from before the record: no warning
    (out / SCAN_STAMP).unlink()
    caplog.clear()
    with caplog.at_level("WARNING", logger="audio_embed.batch"):
        scan_to_folder(FakeScanner(), files, out, BatchSettings(threshold=0.9, skip_existing=True))
    assert not caplog.records
    assert SCAN_STAMP not in {r["file"] for r in _combined_rows(out)}


def test_a_batch_of_short_clips_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Clips shorter than SHORT_FILE_SECONDS (a sound-effects library, phone clips) were
    scanned without a word although the per-recording normalisation then comes from
    little more than the target sound (README: demo horns in 3 s clips mostly missed).
    One warning per batch; none for longer files or a scanner that does not normalise."""

    class ShortClips(FakeScanner):
        normalization = "recording"

        def scan_many(self, sources: Iterable[str | Path], **kw: Any) -> Any:
            for p, r in super().scan_many(sources, **kw):
                yield p, ScanResult(p, r.starts[:3], r.probabilities[:3], 2.0, 4.0, 0.5)

    files = _touch(*(tmp_path / f"clip{i}.wav" for i in range(3)))
    with caplog.at_level("WARNING", logger="audio_embed.batch"):
        scan_to_folder(ShortClips(), files, tmp_path / "out")
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("3 of the 3 file(s) scanned are shorter than 10 s (e.g. ")
    assert "--normalization none" in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="audio_embed.batch"):
        scan_to_folder(FakeScanner(), files, tmp_path / "out2")  # 12 s results
        ShortClips.normalization = "none"
        scan_to_folder(ShortClips(), files, tmp_path / "out3")
    assert not caplog.records


def test_notes_or_an_empty_table_are_not_taken_for_an_earlier_result(tmp_path: Path) -> None:
    """A rec.txt of notes beside rec.wav stops an Audacity scan into that folder (before:
    it read as a result without detections and was replaced); with --skip-existing an
    empty or foreign CSV is scanned again (before: skipped as "no detections"); an
    empty file beside its recording holds nothing to lose and is replaced."""
    (rec,) = _touch(tmp_path / "rec.wav")
    notes = "Interview with the ranger, take 2\nwolves at dusk\n"
    (tmp_path / "rec.txt").write_text(notes)
    with pytest.raises(InvalidInputError, match=r"rec\.txt exists next to its recording"):
        scan_to_folder(FakeScanner(), [rec], tmp_path, BatchSettings(fmt="audacity"))
    assert (tmp_path / "rec.txt").read_text() == notes
    out = tmp_path / "out"
    out.mkdir()
    (out / "rec.csv").write_text("")
    heard: list[FileOutcome] = []
    resume = BatchSettings(skip_existing=True)
    report = scan_to_folder(FakeScanner(), [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["rescan", "done"] and "empty file" in str(heard[0].reason)
    assert len(report.done[0].detections) == 1 == len(read_detections(out / "rec.csv", "csv"))
    (tmp_path / "rec.csv").write_text("")
    scan_to_folder(FakeScanner(), [rec], tmp_path)
    assert len(read_detections(tmp_path / "rec.csv", "csv")) == 1


def test_a_result_of_another_recording_of_the_same_name_stops_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """day1/REC0001.WAV, then day2/REC0001.WAV into the same folder: refused before any
    scan, day1's result kept (before: replaced, or with --skip-existing "skipped" and
    reported as day2's detections)."""
    _touch(tmp_path / "day1" / "REC0001.WAV", tmp_path / "day2" / "REC0001.WAV")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), ["day1"], out, BatchSettings(fmt="json"))
    day1 = (out / "REC0001.json").read_text()
    for skip in (False, True):
        scanner = FakeScanner()
        settings = BatchSettings(fmt="json", skip_existing=skip)
        day1_rec = re.escape(str(tmp_path / "day1" / "REC0001.WAV"))
        with pytest.raises(InvalidInputError, match=f"another recording, {day1_rec};"):
            scan_to_folder(scanner, ["day2"], out, settings)
        assert scanner.calls == [] and (out / "REC0001.json").read_text() == day1
    heard: list[FileOutcome] = []
    resume = BatchSettings(fmt="json", skip_existing=True)
    scan_to_folder(FakeScanner(), ["day1"], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]  # its own result
    monkeypatch.chdir(tmp_path / "day1")  # named from another folder: still its own
    scan_to_folder(FakeScanner(), ["."], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped", "skipped"]
    scan_to_folder(FakeScanner(), ["."], out, BatchSettings(fmt="json"))  # rescanned


def test_a_recording_keeps_its_result_name_in_any_order_or_company(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names that clash are numbered once; a later batch gives each recording the name
    the folder's record gives it (before: [day2, day1] after [day1, day2] swapped the
    names and --skip-existing refused the batch; day2 alone got a second result)."""
    _touch(tmp_path / "day1" / "x.wav", tmp_path / "day2" / "x.wav")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), ["day1/x.wav", "day2/x.wav"], out)
    named = {p.name for p in out.glob("x*.csv")}
    assert named == {"x.wav.csv", "x.wav-2.csv"}
    for batch in (["day2/x.wav", "day1/x.wav"], ["day2/x.wav"], ["day1/x.wav"]):
        heard: list[FileOutcome] = []
        settings = BatchSettings(skip_existing=True)
        scan_to_folder(FakeScanner(), batch, out, settings, on_file=heard.append)
        assert [o.kind for o in heard] == ["skipped"] * len(batch)
    assert {p.name for p in out.glob("x*.csv")} == named
    scan_to_folder(FakeScanner(), ["day2/x.wav"], out)  # rescanned into its own result
    assert {p.name for p in out.glob("x*.csv")} == named
    assert str(tmp_path / "day2" / "x.wav") in (out / "x.wav-2.csv").read_text()


def test_a_detections_csv_that_is_not_a_combined_result_stops_the_batch(tmp_path: Path) -> None:
    """Another tool's detections.csv in the output folder is kept and nothing is scanned
    (before: replaced by the combined CSV); an earlier batch's is replaced."""
    (rec,) = _touch(tmp_path / "rec.wav")
    theirs = "species,confidence,begin,end\nCanis lupus,0.93,12.0,15.0\n"
    (tmp_path / COMBINED_CSV).write_text(theirs)
    scanner = FakeScanner()
    with pytest.raises(InvalidInputError, match=r"detections\.csv exists and is not the combined"):
        scan_to_folder(scanner, [rec], tmp_path)
    assert (tmp_path / COMBINED_CSV).read_text() == theirs and scanner.calls == []
    assert not (tmp_path / "rec.csv").exists()
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), [rec], out)
    scan_to_folder(FakeScanner(), [rec], out, BatchSettings(threshold=0.95))
    assert _combined_rows(out) == []  # an earlier combined CSV is replaced


def test_scan_to_folder_keeps_results_uses_a_runner_and_checks_arguments(tmp_path: Path) -> None:
    files = _touch(tmp_path / "a.wav", tmp_path / "b.wav")
    ran: list[str] = []

    def runner(sources: list[Path], **_: object) -> Iterator[tuple[str, ScanResult]]:
        for s in reversed(sources):
            ran.append(Path(s).name)
            yield str(s), _result(str(s))

    settings = BatchSettings(keep_results=True, threshold=0.95)
    report = scan_to_folder(FakeScanner(), files, tmp_path / "out", settings, many=runner)
    assert ran == ["b.wav", "a.wav"]
    assert sorted(report.results()) == [str(f) for f in files]
    assert report.n_detections == 0 and report.threshold == 0.95  # nothing scores 0.95
    assert [r["file"] for r in _combined_rows(tmp_path / "out")] == []
    with pytest.raises(InvalidInputError, match="threshold"):
        BatchSettings(threshold=1.5)
    with pytest.raises(InvalidInputError, match="format"):
        BatchSettings(fmt="xml")  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_one_path_given_where_a_list_is_taken_is_refused_not_read_letter_by_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: "b.wav" was read as the files "b", ".", "w", "a", "v", and "." scanned the
    # whole current folder (recursively) into the output folder
    _touch(tmp_path / "a.wav", tmp_path / "b.wav")
    monkeypatch.chdir(tmp_path)
    scanner = FakeScanner()
    with pytest.raises(InvalidInputError, match=r"takes a list of paths.*\['b.wav'\]"):
        scan_to_folder(scanner, "b.wav", "out")  # type: ignore[arg-type]
    assert scanner.calls == [] and not (tmp_path / "out" / "a.csv").exists()
    with pytest.raises(InvalidInputError, match="collect_inputs takes a list"):
        collect_inputs(Path("b.wav"))  # type: ignore[arg-type]
    (tmp_path / "m.csv").write_text("file,time\na.wav,1\n")
    with pytest.raises(InvalidInputError, match="read_marker_files takes a list"):
        read_marker_files("m.csv")  # type: ignore[arg-type]
    assert list(read_marker_files(["m.csv"])) == ["a.wav"]


def test_scan_to_folder_writes_no_combined_file_when_nothing_was_scanned(tmp_path: Path) -> None:
    (bad,) = _touch(tmp_path / "bad.wav")
    report = scan_to_folder(FakeScanner(corrupt={"bad.wav"}), [bad], tmp_path / "out")
    assert report.combined is None and not (tmp_path / "out" / COMBINED_CSV).exists()
    assert len(report.failed) == 1 and report.done == ()


def test_an_earlier_combined_csv_goes_when_a_batch_stops_early_or_writes_none(
    tmp_path: Path,
) -> None:
    """detections.csv never contradicts the result files: a cancelled batch, or one
    where every file failed, leaves no combined CSV (before: the earlier batch's, listing
    detections the replaced result files no longer hold)."""
    files = _touch(tmp_path / "one.wav", tmp_path / "two.wav")
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), files, out)
    assert len(_combined_rows(out)) == 2
    token = CancelToken()

    def on_file(outcome: FileOutcome) -> None:
        if outcome.kind == "done":
            token.cancel()

    high = BatchSettings(threshold=0.95)  # nothing scores that: one.csv is replaced, empty
    with pytest.raises(BatchCancelled):
        scan_to_folder(FakeScanner(), files, out, high, cancel=token, on_file=on_file)
    assert read_detections(out / "one.csv", "csv") == []
    assert not (out / COMBINED_CSV).exists()
    scan_to_folder(FakeScanner(), files, out)
    report = scan_to_folder(FakeScanner(corrupt={"one.wav", "two.wav"}), files, out)
    assert report.combined is None and not (out / COMBINED_CSV).exists()
    again = scan_to_folder(FakeScanner(), files, out, BatchSettings(skip_existing=True))
    assert again.combined is not None and len(_combined_rows(out)) == 2  # rebuilt


def _closing_runner(closed: list[bool]) -> Any:
    """A runner like FakeScanner's that notes when it is closed."""

    def runner(sources: list[Path], **kwargs: Any) -> Iterator[tuple[str, ScanResult]]:
        try:
            yield from FakeScanner().scan_many(sources, **kwargs)
        finally:
            closed.append(True)

    return runner


def test_a_cancelled_batch_reports_what_finished_and_stops_its_runner(tmp_path: Path) -> None:
    files = _touch(*(tmp_path / f"{n}.wav" for n in ("one", "two", "three")))
    (tmp_path / "out").mkdir()
    token = CancelToken()
    closed: list[bool] = []
    runner = _closing_runner(closed)

    def on_file(outcome: FileOutcome) -> None:
        if outcome.kind == "done":
            token.cancel()  # as Ctrl-C in the CLI does, once the first result is written

    with pytest.raises(BatchCancelled, match="after 1 of 3 input") as info:
        scan_to_folder(
            FakeScanner(), files, tmp_path / "out", cancel=token, on_file=on_file, many=runner
        )
    report = info.value.report
    assert isinstance(info.value, Cancelled)
    assert [Path(o.item).name for o in report.done] == ["one.wav"]
    assert report.skipped == () and report.failed == () and report.combined is None
    # nothing else: one.csv and the record of its threshold (for a resume)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        SCAN_STAMP,
        SCAN_LOCK,
        "one.csv",
    ]
    assert closed == [True]


def test_an_interrupted_batch_stops_its_runner_before_the_interrupt_propagates(
    tmp_path: Path,
) -> None:
    files = _touch(tmp_path / "a.wav", tmp_path / "b.wav")
    closed: list[bool] = []
    runner = _closing_runner(closed)

    def on_file(outcome: FileOutcome) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the driver handles a result

    with pytest.raises(KeyboardInterrupt):
        scan_to_folder(FakeScanner(), files, tmp_path / "out", on_file=on_file, many=runner)
    assert closed == [True]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [SCAN_STAMP, SCAN_LOCK, "a.csv"]


# ---------------------------------------------------------------- the folder's record


def _recordings(*paths: Path) -> list[Path]:
    """Recordings with content of their own (a size of their own)."""
    for i, p in enumerate(paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * (100 + i))
    return list(paths)


@pytest.mark.parametrize("fmt", ["audacity", "raven", "srt", "vtt", "csv", "json"])
def test_a_result_of_another_recording_is_known_in_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Audacity labels, Raven tables and subtitles name no recording, so day2/REC0001.WAV
    replaced day1's result (or, with --skip-existing, reported it as its own); a CSV
    named day1's by a relative name, held against nothing when the next scan ran in
    another folder. The folder's record (SCAN_STAMP) names each result's recording."""
    _recordings(tmp_path / "day1" / "REC0001.WAV", tmp_path / "day2" / "REC0001.WAV")
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    settings = BatchSettings(fmt=fmt)  # type: ignore[arg-type]
    (done,) = scan_to_folder(FakeScanner(), ["day1"], out, settings).done
    assert done.output is not None
    day1 = done.output.read_text()
    monkeypatch.chdir(tmp_path / "day2")  # another working folder: "." is day2
    for skip in (False, True):
        scanner = FakeScanner()
        again = attrs.evolve(settings, skip_existing=skip)
        with pytest.raises(InvalidInputError, match="another recording"):
            scan_to_folder(scanner, ["."], out, again)
        assert scanner.calls == [] and done.output.read_text() == day1


def test_results_name_their_recording_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scan day1 --out res` wrote day1/REC0001.WAV in the file column, a name relative
    to a folder the results do not record; results and detections.csv name it whole."""
    (rec,) = _recordings(tmp_path / "day1" / "REC0001.WAV")
    monkeypatch.chdir(tmp_path)
    for fmt in ("csv", "json"):
        scan_to_folder(FakeScanner(), ["day1"], "out", BatchSettings(fmt=fmt))  # type: ignore[arg-type]
        text = (tmp_path / "out" / f"REC0001.{fmt}").read_text()
        assert str(rec) in text.replace("\\\\", "\\")
        assert {r["file"] for r in _combined_rows(tmp_path / "out")} == {str(rec)}


@pytest.mark.parametrize("fmt", ["csv", "json", "audacity"])
def test_a_file_name_that_is_not_utf8_is_scanned_and_named_by_its_bytes(
    tmp_path: Path, fmt: str
) -> None:
    """A Latin-1 name on Linux (``caf\\xe9.wav`` from an old camera card or zip), which
    Python holds with a surrogate: writing its result or detections.csv raised
    ``UnicodeEncodeError``, a traceback that stopped the batch (in CSV at the first
    file, before the others were scanned). The name is written as its own bytes and
    read back the same."""
    name = os.fsdecode(b"caf\xe9.wav")
    try:
        cafe, ok = _recordings(tmp_path / "in" / name, tmp_path / "in" / "ok.wav")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    out = tmp_path / "out"
    settings = BatchSettings(fmt=fmt)  # type: ignore[arg-type]
    report = scan_to_folder(FakeScanner(), [cafe, ok], out, settings)
    assert report.ok and [o.item for o in report.done] == [str(cafe), str(ok)]
    combined = (out / COMBINED_CSV).read_bytes()
    assert os.fsencode(cafe) + b"," in combined and os.fsencode(ok) + b"," in combined
    again = scan_to_folder(
        FakeScanner(), [cafe, ok], out, attrs.evolve(settings, skip_existing=True)
    )
    assert [o.item for o in again.skipped] == [str(cafe), str(ok)]
    assert again.skipped[0].detections == report.done[0].detections or fmt == "audacity"


def test_a_folder_recorded_before_recordings_were_keeps_the_best_effort_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stamp that records thresholds only (written before recordings were recorded):
    Audacity labels of day1 are not known as day1's (as before), a CSV naming day1's
    recording is; the stamp is still read (its thresholds), and a resume records the
    recordings of the results it keeps."""
    import json

    _recordings(tmp_path / "day1" / "REC0001.WAV", tmp_path / "day2" / "REC0001.WAV")
    monkeypatch.chdir(tmp_path)
    for fmt, refused in (("audacity", False), ("csv", True)):
        out = tmp_path / f"out-{fmt}"
        settings = BatchSettings(fmt=fmt, skip_existing=True)  # type: ignore[arg-type]
        scan_to_folder(FakeScanner(), ["day1"], out, settings)
        old = {"thresholds": json.loads((out / SCAN_STAMP).read_text())["thresholds"]}
        (out / SCAN_STAMP).write_text(json.dumps(old))
        if refused:
            with pytest.raises(InvalidInputError, match="another recording"):
                scan_to_folder(FakeScanner(), ["day2"], out, settings)
            continue
        heard: list[FileOutcome] = []
        scan_to_folder(FakeScanner(), ["day1"], out, settings, on_file=heard.append)
        assert [o.kind for o in heard] == ["skipped"]
        with pytest.raises(InvalidInputError, match="another recording"):  # now recorded
            scan_to_folder(FakeScanner(), ["day2"], out, settings)


def test_a_moved_recording_is_its_own_a_missing_other_one_is_not(tmp_path: Path) -> None:
    """day1/ renamed: its results are still its own (the same size and time). day1's
    card taken out and day2's put in elsewhere: the result is not day2's, refused."""
    (rec,) = _recordings(tmp_path / "day1" / "REC0001.WAV")
    out = tmp_path / "out"
    resume = BatchSettings(fmt="audacity", skip_existing=True)
    scan_to_folder(FakeScanner(), [tmp_path / "day1"], out, resume)
    rec.parent.rename(tmp_path / "day1-kept")
    heard: list[FileOutcome] = []
    scan_to_folder(FakeScanner(), [tmp_path / "day1-kept"], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]
    (tmp_path / "day1-kept").rename(tmp_path / "elsewhere")
    (other,) = _recordings(tmp_path / "day2" / "REC0001.WAV")
    other.write_bytes(b"another recording, another size")
    with pytest.raises(InvalidInputError, match=r"day1-kept/REC0001\.WAV \(no longer there"):
        scan_to_folder(FakeScanner(), [tmp_path / "day2"], out, resume)


def test_a_recording_copied_without_its_time_is_its_own_once_the_original_is_gone(
    tmp_path: Path,
) -> None:
    """day1/ copied to another disk without its modification times (cp without -p, a
    download), the original gone: its results were refused as another recording's (the
    size the same, the time not). The record keeps a fingerprint of each recording's
    content (its first, middle and last MiB), by which the copy is known; a copy of
    other content is not, and a record from before fingerprints behaves as before."""
    import json
    import shutil

    rec = tmp_path / "day1" / "REC0001.WAV"
    rec.parent.mkdir()
    rng = np.random.default_rng(0)
    audio = rng.bytes(5 << 20)  # over 3 MiB: sampled, not hashed whole
    rec.write_bytes(audio)
    out = tmp_path / "out"
    resume = BatchSettings(fmt="audacity", skip_existing=True)
    scan_to_folder(FakeScanner(), [tmp_path / "day1"], out, resume)
    record = json.loads((out / SCAN_STAMP).read_text())
    assert len(record["results"]["REC0001.txt"]["fingerprint"]) == 64

    def copy_elsewhere(name: str, content: bytes | None = None) -> Path:
        copy = tmp_path / name / "REC0001.WAV"
        copy.parent.mkdir()
        copy.write_bytes(audio if content is None else content)
        os.utime(copy, (time.time() + 3600, time.time() + 3600))  # a time of its own
        return copy

    gone = tmp_path / "gone.wav"
    rec.rename(gone)
    edited = bytearray(audio)
    edited[len(audio) // 2] ^= 0xFF  # the same size, another middle
    copy_elsewhere("edited", bytes(edited))
    with pytest.raises(InvalidInputError, match="moved or copied: its size, modification"):
        scan_to_folder(FakeScanner(), [tmp_path / "edited"], out, resume)
    copy = copy_elsewhere("copy")
    scanner, heard = FakeScanner(), []
    scan_to_folder(scanner, [tmp_path / "copy"], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"] and scanner.calls == []
    record = json.loads((out / SCAN_STAMP).read_text())
    assert record["results"]["REC0001.txt"]["recording"] == os.path.realpath(copy)
    # a record from before fingerprints: the copy refused, as before ...
    gone.rename(rec)
    shutil.rmtree(tmp_path / "copy")
    out2 = tmp_path / "out2"
    scan_to_folder(FakeScanner(), [tmp_path / "day1"], out2, resume)
    record = json.loads((out2 / SCAN_STAMP).read_text())
    del record["results"]["REC0001.txt"]["fingerprint"]
    (out2 / SCAN_STAMP).write_text(json.dumps(record))
    rec.rename(gone)
    copy_elsewhere("copy")
    with pytest.raises(InvalidInputError, match="no longer there"):
        scan_to_folder(FakeScanner(), [tmp_path / "copy"], out2, resume)
    # ... until the recording is scanned again
    shutil.rmtree(tmp_path / "copy")
    gone.rename(rec)
    scan_to_folder(FakeScanner(), [tmp_path / "day1"], out2, resume)  # kept: no fingerprint
    assert (
        "fingerprint" not in json.loads((out2 / SCAN_STAMP).read_text())["results"]["REC0001.txt"]
    )
    scan_to_folder(
        FakeScanner(), [tmp_path / "day1"], out2, attrs.evolve(resume, skip_existing=False)
    )
    rec.rename(gone)
    copy_elsewhere("copy")
    heard = []
    scan_to_folder(FakeScanner(), [tmp_path / "copy"], out2, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]
    # moved once more (its time kept): the record keeps the fingerprint
    (tmp_path / "copy").rename(tmp_path / "moved")
    scan_to_folder(FakeScanner(), [tmp_path / "moved"], out2, resume)
    assert "fingerprint" in json.loads((out2 / SCAN_STAMP).read_text())["results"]["REC0001.txt"]


def test_no_fingerprint_is_recorded_of_a_recording_changed_during_its_scan(
    tmp_path: Path,
) -> None:
    """The fingerprint is taken after the scan: of a recording changed meanwhile it would
    mark content the result does not hold, so none is recorded."""
    import json

    (rec,) = _recordings(tmp_path / "rec.wav")

    class Editing(FakeScanner):
        def scan_many(self, sources: Iterable[str | Path], **kw: Any) -> Any:
            for item in super().scan_many(sources, **kw):
                rec.write_bytes(b"edited while scanned, another size")
                yield item

    out = tmp_path / "out"
    scan_to_folder(Editing(), [rec], out)
    assert "fingerprint" not in json.loads((out / SCAN_STAMP).read_text())["results"]["rec.csv"]
    scan_to_folder(FakeScanner(), [rec], out)
    assert "fingerprint" in json.loads((out / SCAN_STAMP).read_text())["results"]["rec.csv"]


def test_skip_existing_scans_a_recording_again_when_it_changed(tmp_path: Path) -> None:
    """A recording re-recorded or edited since its result was written: with
    --skip-existing its result was kept (the detections of the audio it held before)."""
    (rec,) = _recordings(tmp_path / "rec.wav")
    out = tmp_path / "out"
    resume = BatchSettings(skip_existing=True)
    scan_to_folder(FakeScanner(), [rec], out, resume)
    heard: list[FileOutcome] = []
    scan_to_folder(FakeScanner(), [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]
    # a time 1 s off, the same size (a FAT card's 2 s clock): the same file, as when moved
    st = rec.stat()
    os.utime(rec, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    heard.clear()
    scan_to_folder(FakeScanner(), [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]
    rec.write_bytes(b"a longer take of the same name")
    heard.clear()
    scan_to_folder(FakeScanner(), [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["rescan", "done"]
    assert "has changed since" in str(heard[0].reason)


def test_skip_existing_scans_a_recording_again_from_another_audio_stream(
    tmp_path: Path,
) -> None:
    """A video scanned from its first audio stream (the default, with a warning naming
    the others), then again with --audio-stream 1 --skip-existing: the first stream's
    result was kept, silently, as the second's. Now the folder's record names the stream
    each result was decoded from, and a result of another stream is scanned again; a
    result recorded before the stream was (no record of it) is kept as before."""
    import json

    from audio_embed.batch import SCAN_STAMP

    (rec,) = _recordings(tmp_path / "obs.mkv")
    out = tmp_path / "out"
    resume = BatchSettings(skip_existing=True)
    first, game = FakeScanner(), FakeScanner()
    game.audio_stream = 1  # type: ignore[attr-defined]
    scan_to_folder(first, [rec], out, resume)
    heard: list[FileOutcome] = []
    scan_to_folder(game, [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["rescan", "done"]
    assert "audio stream 0" in str(heard[0].reason) and "stream 1" in str(heard[0].reason)
    heard.clear()
    scan_to_folder(game, [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]
    stamp = json.loads((out / SCAN_STAMP).read_text())
    del stamp["results"]["obs.csv"]["audio_stream"]  # a folder scanned before the record
    (out / SCAN_STAMP).write_text(json.dumps(stamp))
    heard.clear()
    scan_to_folder(first, [rec], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]


def test_a_moved_recording_is_scanned_again_from_another_audio_stream(tmp_path: Path) -> None:
    """The stream check holds for a recording recognised as moved too (its record names
    the old path; before, only a recording at the recorded path was checked, so a moved
    one's result of stream 1 was kept for a scan of stream 0)."""
    (rec,) = _recordings(tmp_path / "day" / "obs.mkv")
    out = tmp_path / "out"
    game = FakeScanner()
    game.audio_stream = 1  # type: ignore[attr-defined]
    scan_to_folder(game, [rec], out)
    moved = tmp_path / "archive" / "obs.mkv"
    moved.parent.mkdir()
    os.rename(rec, moved)  # the same size and modification time: the file moved
    heard: list[FileOutcome] = []
    resume = BatchSettings(skip_existing=True)
    scan_to_folder(FakeScanner(), [moved], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["rescan", "done"]
    assert "audio stream 1" in str(heard[0].reason)
    heard.clear()
    scan_to_folder(FakeScanner(), [moved], out, resume, on_file=heard.append)
    assert [o.kind for o in heard] == ["skipped"]


def test_the_journal_records_each_results_audio_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan killed before it writes the record leaves the journal only: its lines
    name each result's audio stream too, so --skip-existing of another stream scans the
    recording again (merged: the stream of newuser4, the journal of folder2)."""
    from audio_embed import batch

    (rec,) = _recordings(tmp_path / "obs.mkv")
    out = tmp_path / "out"
    game = FakeScanner()
    game.audio_stream = 1  # type: ignore[attr-defined]
    with monkeypatch.context() as m:  # as if killed: the journal is never compacted
        m.setattr(batch, "_write_stamp", lambda out, stamp: None)
        scan_to_folder(game, [rec], out)
    assert (out / SCAN_JOURNAL).is_file()
    assert _read_stamp(out).made["obs.csv"].audio_stream == 1
    heard: list[FileOutcome] = []
    scan_to_folder(
        FakeScanner(), [rec], out, BatchSettings(skip_existing=True), on_file=heard.append
    )
    assert [o.kind for o in heard] == ["rescan", "done"]
    assert "audio stream 1" in str(heard[0].reason)
    assert _read_stamp(out).made["obs.csv"].audio_stream == 0


def test_detections_csv_lists_the_results_of_every_scan_into_the_folder_at_its_threshold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two scans into one folder, one after the other: detections.csv listed only the
    recordings of the last. Now every result the folder records, one per recording
    (the last written when a recording has results in two formats), at this scan's
    threshold: earlier results of another threshold are left out, and the scan says so
    (before: mixed in silently)."""
    a, b, c = _recordings(*(tmp_path / "in" / f"{n}.wav" for n in ("a", "b", "c")))
    out = tmp_path / "out"

    def listed() -> list[str]:
        return [r["file"] for r in _combined_rows(out)]

    scan_to_folder(FakeScanner(), [a, b], out)
    report = scan_to_folder(FakeScanner(), [c], out)
    assert listed() == [str(c), str(a), str(b)] and report.left_out == 0  # this scan's first
    with caplog.at_level("WARNING", logger="audio_embed"):
        report = scan_to_folder(FakeScanner(), [a], out, BatchSettings(fmt="json", threshold=0.95))
    assert listed() == []  # a: nothing at 0.95; b and c were written at 0.5
    assert report.left_out == 2
    assert (
        "leaves out 2 earlier result(s)" in caplog.text and "(0.5; this scan: 0.95)" in caplog.text
    )
    report = scan_to_folder(FakeScanner(), [c], out)
    # a's last result (a.json, at 0.95) is left out, not replaced by its older a.csv
    assert listed() == [str(c), str(b)] and report.left_out == 1
    (out / "b.csv").unlink()  # a result deleted by hand is not listed
    scan_to_folder(FakeScanner(), [c], out)
    assert listed() == [str(c)]


@pytest.mark.parametrize("fmt", ["audacity", "csv"])
def test_a_second_scan_into_a_folder_stops_at_once_and_writes_nothing(
    tmp_path: Path, fmt: str
) -> None:
    """day1/ and day2/ scanned into one folder at once: each checked the folder when it
    started, found no REC0001 result, and the one that finished second replaced the
    other's (and the same folder scanned twice at once could report a false failure).
    Now one scan writes into a folder at a time: a second one stops before it reads or
    writes anything there, and the first finishes untouched."""
    import json

    day1, day2 = _recordings(tmp_path / "day1" / "REC0001.WAV", tmp_path / "day2" / "REC0001.WAV")
    (other,) = _recordings(tmp_path / "day1" / "REC0002.WAV")
    out = tmp_path / "out"
    settings = BatchSettings(fmt=fmt)  # type: ignore[arg-type]
    refused: list[str] = []

    def folder() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in out.iterdir()}

    class Meanwhile(FakeScanner):
        def scan_many(self, sources: Iterable[str | Path], **kw: Any) -> Any:
            for i, item in enumerate(super().scan_many(sources, **kw)):
                if i == 1:  # the first result is written and recorded
                    before = folder()
                    for recording in (day2, day1):  # another recording, or the same
                        second = FakeScanner()
                        with pytest.raises(InvalidInputError) as info:
                            scan_to_folder(second, [recording], out, settings)
                        refused.append(str(info.value))
                        assert second.calls == [] and folder() == before
                yield item

    report = scan_to_folder(Meanwhile(), [day1, other], out, settings)
    assert [Path(o.item) for o in report.done] == [day1, other] and report.ok
    assert (
        refused
        == [
            f"Another scan is writing into {out}; wait for it to finish, or give this one "
            "another --out folder."
        ]
        * 2
    )
    suffix = {"audacity": ".txt", "csv": ".csv"}[fmt]
    record = json.loads((out / SCAN_STAMP).read_text())["results"]
    assert record[f"REC0001{suffix}"]["recording"] == os.path.realpath(day1)
    # once it has finished, the folder is free again: day2's scan meets the same-name guard
    with pytest.raises(InvalidInputError, match="holds the detections of another recording"):
        scan_to_folder(FakeScanner(), [day2], out, settings)


def test_a_scan_killed_outright_leaves_a_record_of_every_result_and_no_lock(
    tmp_path: Path,
) -> None:
    """The record was written every 30 s (before that: at the end only): a scan killed
    outright (out of memory, a power cut) left results the record did not name, so the
    next scan's same-name guard and detections.csv knew nothing of them. Now each result
    is recorded as it is written (a line of the journal; a line left half-written is
    passed over), and the next scan writes the journal into the record. The lock file
    the killed scan held stays behind, but the lock was the process's: the next scan
    into the folder goes ahead."""
    import json
    import subprocess
    import sys

    files = _recordings(*(tmp_path / f"{n}.wav" for n in ("one", "two", "three")))
    out = tmp_path / "out"
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_batch import FakeScanner
from audio_embed import batch
from audio_embed.batch import scan_to_folder

class Killed(FakeScanner):
    def scan_many(self, sources, **kw):
        for i, item in enumerate(super().scan_many(sources, **kw)):
            if i == 2:  # two results written: killed outright, no cleanup of any kind
                os._exit(137)
            yield item

scan_to_folder(Killed(), {[str(f) for f in files]!r}, {str(out)!r})
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 137, run.stderr
    assert (out / SCAN_LOCK).exists() and not (out / COMBINED_CSV).exists()
    record = _read_stamp(out)
    assert sorted(record.made) == sorted(record.thresholds) == ["one.csv", "two.csv"]
    with (out / SCAN_JOURNAL).open("a") as fh:
        fh.write('{"key": "three.csv", "thresh')  # killed mid-line
    scanner = FakeScanner()
    report = scan_to_folder(scanner, files, out, BatchSettings(skip_existing=True))
    assert scanner.calls == [["three.wav"]] and report.ok
    assert sorted(r["file"] for r in _combined_rows(out)) == sorted(str(f) for f in files)
    assert not (out / SCAN_JOURNAL).exists()
    record = json.loads((out / SCAN_STAMP).read_text())
    assert sorted(record["results"]) == ["one.csv", "three.csv", "two.csv"]


def test_results_are_recorded_when_the_journal_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal that cannot be appended to (here a folder of its name) is a warning; the
    record is still written whole when the batch ends."""
    files = _recordings(tmp_path / "a.wav", tmp_path / "b.wav")
    out = tmp_path / "out"
    (out / SCAN_JOURNAL).mkdir(parents=True)
    scan_to_folder(FakeScanner(), files, out)
    assert sorted(_read_stamp(out).made) == ["a.csv", "b.csv"]
    assert "Could not write" in caplog.text and "Could not remove" in caplog.text


def test_the_whole_record_is_written_once_per_batch_not_after_each_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record (32 MB for 100,000 results, 0.5-0.8 s to write) was rewritten after
    each result, throttled when slow; now a result adds a line to the journal and the
    record is written once, when the batch ends, also when it is cancelled."""
    from audio_embed import batch

    files = _recordings(*(tmp_path / f"{n}.wav" for n in ("one", "two", "three", "four")))
    writes: list[int] = []
    real = batch._write_stamp

    def counted(out: Path, stamp: Any) -> None:
        writes.append(len(stamp.made))
        real(out, stamp)

    monkeypatch.setattr(batch, "_write_stamp", counted)
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), files, out)
    assert writes == [4] and not (out / SCAN_JOURNAL).exists()
    writes.clear()
    token = CancelToken()
    heard: list[FileOutcome] = []

    def stop_after_two(outcome: FileOutcome) -> None:
        heard.append(outcome)
        if len(heard) == 2:
            token.cancel()

    with pytest.raises(BatchCancelled):
        scan_to_folder(FakeScanner(), files, tmp_path / "cut", cancel=token, on_file=stop_after_two)
    assert writes == [2] and not (tmp_path / "cut" / SCAN_JOURNAL).exists()
    assert len(_read_stamp(tmp_path / "cut").made) == 2


def test_a_record_naming_files_outside_the_folder_is_not_read(tmp_path: Path) -> None:
    """detections.csv is rebuilt from the results the folder's record names: an entry
    naming ../elsewhere.csv (a record edited by hand) is no result of the folder."""
    import json

    (a,) = _recordings(tmp_path / "in" / "a.wav")
    (b,) = _recordings(tmp_path / "in" / "b.wav")
    (tmp_path / "elsewhere.csv").write_text("file,start,end,peak,score\nx,1.000,2.000,1.500,0.9\n")
    out = tmp_path / "out"
    scan_to_folder(FakeScanner(), [a], out)
    record = json.loads((out / SCAN_STAMP).read_text())
    record["results"]["../elsewhere.csv"] = dict(record["results"]["a.csv"], recording="/x")
    (out / SCAN_STAMP).write_text(json.dumps(record))
    scan_to_folder(FakeScanner(), [b], out)
    assert [r["file"] for r in _combined_rows(out)] == [str(b), str(a)]

"""``audio-embed index`` / ``search`` and the review loop through ``train`` and ``scan``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from audio_embed.cli import main
from audio_embed.demo import DemoSet, make_demo_set


@pytest.fixture(autouse=True)
def _private_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("AUDIO_EMBED_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return make_demo_set(
        tmp_path_factory.mktemp("demo"), n_train=2, n_test=1, seconds=40,
        targets_per_file=3, distractors_per_file=4,
    )  # fmt: skip


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*args, "--threads", "1"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def archive(demo: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "a.idx"
    inputs = [str(demo.root / "train"), str(demo.root / "test")]
    rc = main(["index", *inputs, "--model", "LOGMEL", "--window", "2", "--hop", "0.5",
               "--out", str(out), "-q", "--threads", "1"])  # fmt: skip
    assert rc == 0
    return out


def horn(demo: DemoSet) -> tuple[str, float, list[tuple[str, float, float]]]:
    rows = [r for r in csv.DictReader(demo.labels_csv.open()) if r["label"] == "horn"]
    events = [(str((demo.root / r["file"]).resolve()), float(r["onset"]), float(r["offset"]))
              for r in rows]  # fmt: skip
    f, on, off = events[0]
    return f, (on + off) / 2, events


def test_index_names_a_file_it_cannot_read_once(
    tmp_path: Path,
    demo: DemoSet,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: ``skipped /abs/in/empty.wav: in/empty.wav: the file is empty`` (the
    index's absolute name, then the error's own)."""
    pytest.importorskip("faiss")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.wav").write_bytes(b"")
    rc, _, err = cli(capsys, "index", "in", str(demo.test_files[0]), "--model", "LOGMEL",
                     "--out", str(tmp_path / "a.idx"))  # fmt: skip
    assert rc == 1, err
    line = next(x for x in err.splitlines() if "skipped" in x)
    assert line.count("empty.wav") == 1 and "the file is empty" in line, line


def test_index_of_nothing_leaves_no_empty_archive(
    tmp_path: Path, demo: DemoSet, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new index to which no file could be added (an empty folder, files that all fail)
    is not left behind empty (before: exit 1 and an empty ARCHIVE.idx); an existing one
    is kept as it was."""
    pytest.importorskip("faiss")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.wav").write_bytes(b"")
    out = tmp_path / "a.idx"
    for inputs in (["empty"], ["bad.wav"]):
        rc, _, err = cli(capsys, "index", *(str(tmp_path / i) for i in inputs), "--model",
                         "LOGMEL", "--out", str(out))  # fmt: skip
        assert rc == 1 and "was not created" in err and not out.exists(), err
    rc, _, _ = cli(capsys, "index", str(demo.test_files[0]), "--model", "LOGMEL", "--out", str(out))
    assert rc == 0
    rc, _, err = cli(capsys, "index", str(tmp_path / "empty"), "--out", str(out))
    assert rc == 1 and "was not created" not in err and (out / "index.json").exists()


def test_search_out_refuses_to_replace_a_file_that_is_not_earlier_hits(
    tmp_path: Path, demo: DemoSet, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``search --out markers.csv`` replaced the markers with the hits; now refused
    before the search. Earlier hits (CSV or JSON) are replaced as before."""
    f, t, _ = horn(demo)
    markers = tmp_path / "markers.csv"
    markers.write_text(demo.markers_csv.read_text())
    base = ["search", str(archive), "--example", f"{f}:{t}", "--top", "3"]
    rc, _, err = cli(capsys, *base, "--out", str(markers))
    assert rc == 2 and "is not the hits of an earlier search" in err
    assert markers.read_text() == demo.markers_csv.read_text()
    for fmt in ("csv", "json"):
        hits = tmp_path / f"hits.{fmt}"
        for _ in range(2):  # the second replaces the first's hits
            rc, _, err = cli(capsys, *base, "--format", fmt, "--out", str(hits))
            assert rc == 0, err
    rc, _, err = cli(capsys, *base, "--format", "json", "--out", str(markers))
    assert rc == 2 and markers.read_text() == demo.markers_csv.read_text()


def test_index_again_skips_unchanged(
    demo: DemoSet, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = cli(capsys, "index", str(demo.root), "--out", str(archive))
    assert rc == 0
    assert "0 added, 0 updated, 3 unchanged" in out
    rc, _, err = cli(capsys, "index", str(demo.root), "--out", str(archive), "--hop", "1")
    assert rc == 2 and "windows are fixed" in err
    rc, _, err = cli(capsys, "index", str(demo.root), "--out", str(archive), "--model", "BEATS")
    assert rc == 2 and "holds LOGMEL vectors" in err


def test_index_moved_and_deleted_files(
    demo: DemoSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    folder = tmp_path / "rec"
    (folder / "drive").mkdir(parents=True)
    a, b = (Path(shutil.copy(w, folder / f"{n}.wav")) for n, w in
            zip("ab", sorted(demo.root.glob("train/*.wav")), strict=True))  # fmt: skip
    c = Path(shutil.copy(sorted(demo.root.glob("test/*.wav"))[0], folder / "drive" / "c.wav"))
    out = str(tmp_path / "m.idx")
    rc, _, _ = cli(capsys, "index", str(folder), "--model", "LOGMEL", "--window", "2",
                   "--hop", "0.5", "--out", out)  # fmt: skip
    assert rc == 0
    moved = a.rename(folder / "a, moved.wav")
    b.unlink()
    (folder / "drive").rename(tmp_path / "unmounted")  # c's drive is not mounted:
    (folder / "drive").mkdir()  # its mount point is an empty folder
    rc, out_text, err = cli(capsys, "search", out, "--example", f"{moved}:5", "--top", "20")
    assert rc == 0 and "file(s) with hits are no longer there" in err
    rc, out_text, err = cli(capsys, "index", str(folder), "--out", out)
    assert rc == 0 and "1 moved (windows kept); 0 window(s) embedded" in out_text
    assert "2 indexed file(s) are no longer there" in err and "--prune" in err
    rc, out_text, err = cli(capsys, "index", str(folder), "--out", out, "--prune")
    assert rc == 0 and "Pruned 1 file(s)" in out_text and "holds 2 file(s)" in out_text
    assert f"kept 1 indexed file(s) of folders none of whose files is there ({c.parent})" in err
    assert "--prune-all" in err
    rc, out_text, err = cli(capsys, "index", str(folder), "--out", out, "--prune-all")
    assert rc == 0 and "Pruned 1 file(s)" in out_text and "holds 1 file(s)" in out_text
    rc, out_text, err = cli(capsys, "search", out, "--example", f"{moved}:5", "--top", "3")
    assert rc == 0 and "no longer there" not in err
    assert {r["file"] for r in csv.DictReader(out_text.splitlines())} == {str(moved.resolve())}


def test_an_index_of_a_plugins_model_searched_without_the_plugin(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = Path(shutil.copytree(archive, tmp_path / "plugin.idx"))
    manifest = json.loads((copy / "index.json").read_text())
    # a name no test registers (test_embedders registers ZERO_CROSSINGS in its process)
    manifest["embedder"]["name"] = manifest["embedder"]["config"]["name"] = "UNLOADED_CROSSINGS"
    manifest["embedder"]["config"]["class"] = "my_models.ZeroCrossings"
    (copy / "index.json").write_text(json.dumps(manifest))
    rc, _, err = cli(capsys, "search", str(copy), "--example", "a.wav:1")
    assert rc == 2
    assert "plugin.idx: the embedder 'UNLOADED_CROSSINGS'" in err and "--plugin my_models" in err


def test_an_index_keeps_its_models_settings(
    demo: DemoSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Built with --model-option, an index is updated and searched without it (before:
    reopened with the model's defaults, "holds LOGMEL vectors (128 dims)" and no way on)."""
    out, test = str(tmp_path / "s.idx"), str(demo.root / "test")
    rc, _, err = cli(capsys, "index", test, "--model", "LOGMEL", "--model-option", "n_mels=32",
                     "--window", "2", "--hop", "0.5", "--out", out)  # fmt: skip
    assert rc == 0, err
    rc, out_text, err = cli(capsys, "index", str(demo.root), "--out", out)
    assert rc == 0 and "2 added, 0 updated, 1 unchanged" in out_text, err
    f, mid, _ = horn(demo)
    rc, out_text, err = cli(capsys, "search", out, "--example", f"{f}:{mid}", "--top", "2")
    assert rc == 0 and len(out_text.splitlines()) == 3, err
    rc, _, err = cli(capsys, "search", out, "--example", f"{f}:{mid}", "--model-option",
                     "n_mels=40")  # fmt: skip
    assert rc != 0 and "128 dims" in err


def test_search_formats(
    demo: DemoSet, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, t, _ = horn(demo)
    rc, out, _ = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--top", "5")
    assert rc == 0
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 5 and rows[0]["file"] == f
    assert float(rows[0]["start"]) <= t <= float(rows[0]["end"])
    rc, _, _ = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--format", "json",
                   "--out", str(tmp_path / "h.json"), "--top", "5")  # fmt: skip
    assert rc == 0
    assert [h["peak"] for h in json.loads((tmp_path / "h.json").read_text())] == [
        pytest.approx(float(r["peak"]), abs=1e-3) for r in rows
    ]
    rc, _, _ = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--format",
                   "raven", "--out", str(tmp_path / "raven"), "--top", "5")  # fmt: skip
    assert rc == 0 and len(list((tmp_path / "raven").glob("*.selections.txt"))) >= 1
    rc, _, _ = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--format",
                   "vtt", "--out", str(tmp_path / "vtt"), "--top", "5")  # fmt: skip
    vtt = (tmp_path / "vtt" / (Path(f).stem + ".vtt")).read_text()
    assert rc == 0 and vtt.startswith("WEBVTT\n\n1\n") and "\nmatch " in vtt
    own = Path(f).with_suffix(".srt")  # the recording's own subtitles, beside it
    own.write_text("1\n00:00:01,000 --> 00:00:03,000\nWho's there?\n\n")
    try:
        rc, _, err = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--format",
                         "srt", "--out", str(own.parent), "--top", "5")  # fmt: skip
        assert rc == 2 and f"{own} exists next to its recording" in err
        assert own.read_text().endswith("Who's there?\n\n")
        assert not [p for p in own.parent.glob("*.srt") if p != own]  # nothing written
    finally:
        own.unlink()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--example", "x.wav"], 2, "FILE:SECONDS"),
        ([], 2, "at least one --example"),
        (["--example", "a.wav:1", "--format", "audacity"], 2, "--out DIR"),
        (["--example", "a.wav:1", "--format", "srt"], 2, "--out DIR"),
        (["--suggest", "3"], 2, "--scanner"),
    ],
)
def test_search_usage_errors(
    archive: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    rc, _, err = cli(capsys, "search", str(archive), *args)
    assert rc == code and message in err


def test_search_refuses_what_is_not_an_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04")
    rc, _, err = cli(capsys, "search", str(tmp_path / "x.idx"), "--example", "a.wav:1")
    assert rc == 1
    assert "is not an audio_embed index" in err and "Traceback" not in err


def test_review_loop_markers_train_from_index_and_suggest(
    demo: DemoSet, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, t, events = horn(demo)
    review = tmp_path / "review.csv"
    rc, _, _ = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--top", "8",
                   "--markers-out", str(review))  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader(review.open()))
    assert len(rows) == 8 and all(r["kind"] == "" for r in rows)
    # The reviewer fills in the first six rows from what they hear.
    for r in rows[:6]:
        hit = any(r["file"] == ef and float(r["start"]) < off and on < float(r["end"])
                  for ef, on, off in events)  # fmt: skip
        r["kind"] = "positive" if hit else "negative"
    rows[0]["kind"] = "positive"
    with review.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # Running the search again onto the reviewed file is refused before any work (it
    # replaced the reviewed rows with empty ones); so is scan --suggest.
    reviewed = review.read_text()
    rc, _, err = cli(capsys, "search", str(archive), "--example", f"{f}:{t}", "--top", "8",
                     "--markers-out", str(review))  # fmt: skip
    assert rc == 2 and "already holds 6 reviewed marker(s)" in err
    rc, out, err = cli(capsys, "scan", str(archive.parent / "none.scanner"), str(f),
                       "--out", str(tmp_path / "early"), "--suggest", "3",
                       "--markers-out", str(review))  # fmt: skip
    assert rc == 2 and "already holds 6 reviewed marker(s)" in err
    assert review.read_text() == reviewed and not (tmp_path / "early").exists()
    scanner = tmp_path / "r.scanner"
    rc, out, err = cli(capsys, "train", "--markers", str(review), "--model", "LOGMEL", "--index",
                       str(archive), "--classifier", "logreg", "--out", str(scanner))  # fmt: skip
    assert rc == 0, err
    assert "2 row(s) with an empty kind were ignored" in err
    assert "Using the index's windows: 2 s every 0.5 s" in out and scanner.is_file()
    assert "Augmentation: none (auto: not run, trained from an index" in out  # the default
    assert "chosen by cross-validation" in out  # from the index's vectors, not a fixed 0.5
    # The same markers from the files themselves (decoding them) train too.
    out_f = str(tmp_path / "f.scanner")
    rc, _, err = cli(capsys, "train", "--markers", str(review), "--model", "LOGMEL",
                     "--window", "2", "--hop", "0.5", "--out", out_f)  # fmt: skip
    assert rc == 0, err
    nxt = tmp_path / "next.csv"
    rc, out, _ = cli(capsys, "search", str(archive), "--scanner", str(scanner), "--suggest", "4",
                     "--markers-out", str(nxt))  # fmt: skip
    assert rc == 0 and "4 window(s) the scanner is least sure about" in out
    assert len(list(csv.DictReader(nxt.open()))) == 4
    rc, out, _ = cli(capsys, "scan", str(scanner), str(demo.root / "test"), "--out",
                     str(tmp_path / "res"), "--suggest", "3", "--markers-out",
                     str(tmp_path / "s.csv"))  # fmt: skip
    assert rc == 0 and "3 window(s) the scanner is least sure about" in out
    # what to do with the file, as search says it (before: "Markers to review: s.csv")
    assert f"Markers to review: {tmp_path / 's.csv'} (fill the kind column, then train" in out
    assert "saved before scanners kept their training markers" not in out
    # Neither suggests a window at a moment already answered (the window 2 s, each side);
    # before: the next round asked about the reviewed hits' neighbours again.
    answered = [(r["file"], float(r["time"])) for r in rows[:6]]
    nxt.unlink()
    for command in (
        ["search", str(archive), "--scanner", str(scanner)],
        ["scan", str(scanner), str(demo.root), "--out", str(tmp_path / "all")],
    ):
        rc, out, _ = cli(capsys, *command, "--suggest", "30", "--markers-out", str(nxt))
        assert rc == 0, out
        picks = [(str(Path(r["file"]).resolve()), float(r["start"]))
                 for r in csv.DictReader(nxt.open())]  # fmt: skip
        assert picks and not [(f, s) for f, s in picks for g, t in answered
                              if f == g and t - 4.0 < s < t + 2.0]  # fmt: skip
        nxt.unlink()
    # A scanner saved before scanners kept their markers suggests as before, with a note.
    import zipfile

    with zipfile.ZipFile(scanner) as zf:
        meta, payload = json.loads(zf.read("scanner.json")), zf.read("classifier.skops")
    for entry in meta["training_summary"]["files"]:
        del entry["markers"], entry["path"]
    old = tmp_path / "old.scanner"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    rc, out, _ = cli(capsys, "search", str(archive), "--scanner", str(old), "--suggest", "3")
    assert rc == 0 and "saved before scanners kept their training markers" in out
    assert "3 window(s) the scanner is least sure about" in out


def test_index_help_names_the_ann_library_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    """It said "a nearest-neighbour graph (USearch)"; the index is FAISS (README)."""
    assert main(["index", "--help"]) == 0
    text = capsys.readouterr().out
    assert "FAISS" in text and "USearch" not in text


def test_index_without_window_options_uses_the_models_scan_windows(
    demo: DemoSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``index`` with no --window/--hop indexes what ``train`` and ``scan`` use for the
    model (LOGMEL: 1 s every 0.1 s), not 8 s windows."""
    out = tmp_path / "default.idx"
    rc, text, _ = cli(capsys, "index", str(demo.root / "test"), "--model", "LOGMEL",
                      "--out", str(out))  # fmt: skip
    assert rc == 0 and "windows of 1 s every 0.1 s" in text
    from audio_embed import Scanner
    from audio_embed.index import EmbeddingIndex

    assert EmbeddingIndex.open(out).windows == Scanner.from_name("LOGMEL").scan_windows


def test_no_suggestion_left_says_why(tmp_path: Path) -> None:
    """Nothing scanned (every file skipped or failed), or every window near a moment the
    scanner was trained on: said which, and no review file written (review: "0
    window(s) the scanner is least sure about", or the second reason for the first)."""
    import argparse
    import io
    from types import SimpleNamespace

    import numpy as np

    from audio_embed import Markers
    from audio_embed.cli.search import suggest
    from audio_embed.cli.session import Run
    from audio_embed.progress import CancelToken
    from audio_embed.scanner import ScanResult

    out = io.StringIO()
    review = tmp_path / "next.csv"
    run = Run(argparse.Namespace(suggest=3, markers_out=str(review)), CancelToken(), False, out)
    trained = SimpleNamespace(training_markers={"a.wav": Markers(spans=[(0.0, 10.0)])})
    suggest(run, [], trained, 0.5)
    assert out.getvalue().startswith("No window to suggest: no recording was scanned")
    out.truncate(0)
    out.seek(0)
    res = ScanResult("a.wav", np.arange(9.0), np.full(9, 0.5), 2.0, 10.0)
    suggest(run, [res], trained, 0.5)
    assert out.getvalue().startswith("No window to suggest: every scanned window lies near")
    assert not review.exists()
    suggest(run, [res], SimpleNamespace(training_markers={}), 0.5)  # none trained there
    assert "3 window(s) the scanner is least sure about" in out.getvalue() and review.is_file()


def test_train_from_an_index_takes_its_model_when_model_is_left_out(
    demo: DemoSet, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --index` said "drop --model or give --model LOGMEL" of a wrong --model,
    yet dropping it was "the following arguments are required: --model"."""
    f, t, _ = horn(demo)
    markers = tmp_path / "m.csv"
    markers.write_text(f"file,time,kind\n{f},{t},positive\n{f},{t + 6},negative\n")
    out = tmp_path / "s.scanner"
    rc, text, err = cli(capsys, "train", "--markers", str(markers), "--index", str(archive),
                        "--classifier", "logreg", "--out", str(out))  # fmt: skip
    assert rc == 0, err
    assert "Trained a LOGMEL scanner" in text and out.is_file()
    # without either, the error says what to give (before: argparse's bare "required")
    rc, _, err = cli(capsys, "train", "--markers", str(markers), "--out", str(out))
    assert rc == 2 and "train needs --model M" in err and "--index" in err
    rc, _, err = cli(capsys, "train", "--markers", str(markers), "--index",
                     str(tmp_path / "none.idx"), "--out", str(out))  # fmt: skip
    assert rc == 1 and "Index not found" in err


def test_train_from_an_index_refuses_other_windows(
    demo: DemoSet, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --index A.idx --window 1 --hop 0.1` trained on the index's 2 s windows,
    the options left out in silence."""
    f, t, _ = horn(demo)
    markers = tmp_path / "m.csv"
    markers.write_text(f"file,time,kind\n{f},{t},positive\n{f},{t + 6},negative\n")
    out = tmp_path / "s.scanner"
    for options, named in (
        (["--window", "1", "--hop", "0.1"], "--window 1 --hop 0.1: "),
        (["--hop", "0.25"], "--hop 0.25: "),
        (["--encoding", "per_window"], "--encoding per_window: "),
    ):
        rc, _, err = cli(capsys, "train", "--markers", str(markers), "--model", "LOGMEL",
                         "--index", str(archive), *options, "--out", str(out))  # fmt: skip
        assert rc == 2 and named in err and "holds windows of 2 s every 0.5 s" in err, err
        assert not out.exists()
    # the index's own, given, train as before
    rc, text, err = cli(capsys, "train", "--markers", str(markers), "--model", "LOGMEL",
                        "--index", str(archive), "--window", "2", "--hop", "0.5",
                        "--classifier", "logreg", "--out", str(out))  # fmt: skip
    assert rc == 0, err
    assert "window 2 s, hop 0.5 s" in text and out.is_file()

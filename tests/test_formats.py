"""Results written and read back; label files found next to their recordings;
markers files of every format read and merged."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from audio_embed import formats
from audio_embed.errors import InvalidInputError, MarkerError, ResultFileError
from audio_embed.formats import (
    FORMAT_SUFFIXES,
    OutputFormat,
    format_detections,
    guess_marker_format,
    list_formats,
    read_detections,
    read_marker_files,
    read_markers,
    recording_next_to,
    register_format,
    result_format,
    write_detections,
)
from audio_embed.types import Detection
from audio_embed.windows import Markers

# values every format writes exactly (start/end to 3 or 6 decimals, score to 2 or 4)
DETECTIONS = [Detection(0.5, 3.25, 0.75, 1.5), Detection(10.0, 18.125, 0.5, 14.0)]


@pytest.mark.parametrize("fmt", ["csv", "json", "audacity", "raven", "srt", "vtt"])
def test_detections_round_trip(tmp_path: Path, fmt: OutputFormat) -> None:
    path = write_detections(tmp_path / f"r{FORMAT_SUFFIXES[fmt]}", DETECTIONS, fmt, file="a.wav")
    back = read_detections(path, fmt)
    assert [(d.start, d.end, d.score) for d in back] == [
        (d.start, d.end, d.score) for d in DETECTIONS
    ]
    if fmt in ("csv", "json"):
        assert [d.peak for d in back] == [d.peak for d in DETECTIONS]
    else:  # Audacity, Raven and subtitles do not store the peak
        assert all(math.isnan(d.peak) for d in back)
    empty = write_detections(tmp_path / f"e{FORMAT_SUFFIXES[fmt]}", [], fmt)
    assert read_detections(empty, fmt) == []


def test_detections_are_plain_floats_and_json_has_no_float_noise(tmp_path: Path) -> None:
    """Scan detections printed as ``Detection(start=np.float64(55.150000000000006), …)``
    and the JSON results held ``"start": 3.4499999999999997``; a peak read back
    from Audacity (NaN) was written as ``NaN``, which is not JSON."""
    import json

    import numpy as np

    d = Detection(np.float64(3.4499999999999997), np.float64(4.450000000000001), 0.81012473, 3.6)
    assert type(d.start) is float and "np.float64" not in repr(d)
    path = write_detections(tmp_path / "r.json", [d, Detection(1, 2, 0.5, math.nan)], "json")
    text = path.read_text()
    assert "3.4499999999999997" not in text and "NaN" not in text
    rows = json.loads(text)
    assert rows[0]["start"] == 3.45 and rows[0]["end"] == 4.45 and rows[0]["score"] == 0.810125
    assert rows[1]["peak"] is None
    back = read_detections(path, "json")
    assert back[0].start == 3.45 and math.isnan(back[1].peak)


def test_a_detection_s_repr_shows_its_times_to_the_microsecond() -> None:
    """``Detection(start=11.650000000000002, …)``: the repr rounds, the values do not."""
    d = Detection(11.650000000000002, 12.650000000000002, 0.8101247311, 12.150000000000002)
    assert repr(d) == "Detection(start=11.65, end=12.65, score=0.8101247311, peak=12.15)"
    assert d.start == 11.650000000000002
    assert repr(Detection(1.0000004, 2, 0.5, math.nan)).endswith(
        "start=1.0, end=2.0, score=0.5, peak=nan)"
    )
    from audio_embed import Hit  # a search hit's the same (before: start=12.150000000000002)

    hit = Hit("a.wav", 12.150000000000002, 13.350000000000001, 12.5, 0.48, 120)
    assert repr(hit) == "Hit(file='a.wav', start=12.15, end=13.35, peak=12.5, score=0.48, row=120)"


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("csv", "file,start,end,peak,score\na.wav,1.0,2.0,1.5,high\n"),
        ("csv", "file,begin\na.wav,1.0\n"),
        ("json", "[{'start': 1}]"),
        ("json", '[{"start": 1.0}]'),
        ("audacity", "1.0\t2.0\thorn\n"),
        # an empty or another table, notes or labels are not an earlier (empty) result
        ("csv", ""),
        ("json", "{}"),
        ("csv", "name,size\n"),
        ("csv", "file,start,end,peak,score\n" + "x" * 140_000 + ",1,2,1.5,0.5\n"),  # csv.Error
        ("audacity", "Interview with the ranger\nwolves at dusk\n"),
        ("audacity", "1.0\t2.0\tcall 2\n"),
        # kinds train reads ("1" positive, "0" negative) and a person's "wolf 1"
        ("audacity", "3.0\t4.0\t1\n9.0\t9.5\t0\n"),
        ("audacity", "3.0\t4.0\twolf 1\n"),
        ("srt", "1\n00:00:01,000 --> 00:00:02,500\nChapter 1.5\n\n"),
        ("audacity", "1.0\t2.0\twolf 0.50\n3.0\t4.0\thorn 0.75\n"),
        ("raven", ""),
        ("raven", "Selection\tView\n"),
        ("raven", "Selection\tBegin Time (s)\n1\t2.0\n"),
        # a film's own subtitles beside it are not an earlier result (scan must not replace them)
        ("srt", "1\n00:00:01,000 --> 00:00:02,500\nWho's there?\n\n"),
        ("srt", "1\n00:00:01,000 --> 00:00:02,500\n- Hello.\n- Hi 0.50\n\n"),
        (
            "srt",
            "1\n00:00:01,000 --> 00:00:02,500\nChapter 1\n\n"
            "2\n00:00:03,000 --> 00:00:04,000\nChapter 2\n",
        ),
        (
            "srt",
            "1\n00:00:01,000 --> 00:00:02,500\nwolf 0.50\n\n"
            "2\n00:00:03,000 --> 00:00:04,000\nhorn 0.75\n",
        ),
        ("srt", "00:00:01,000 --> 00:00:02,500\nwolf 0.50\n"),
        ("srt", "1\n00:00:01 --> 00:00:02\nwolf 0.50\n"),
        ("vtt", "1\n00:00:01.000 --> 00:00:02.500\nwolf 0.50\n"),
        ("vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n<v Roger>Hello\n"),
    ],
)
def test_reading_back_a_damaged_result_names_the_file(
    tmp_path: Path, fmt: OutputFormat, text: str
) -> None:
    path = tmp_path / "r.out"
    path.write_text(text)
    with pytest.raises(ResultFileError, match=r"r\.out is unreadable"):
        read_detections(path, fmt)


SUBTITLES: tuple[OutputFormat, ...] = ("srt", "vtt")
_HOUR = 3600.0
LONG = [  # past an hour, a day and 99 hours; millisecond times, two-decimal scores
    Detection(_HOUR + 1.5, _HOUR + 2.25, 0.87, _HOUR + 2.0),
    Detection(25 * _HOUR + 59.999, 25 * _HOUR + 61.0, 0.5, 25 * _HOUR + 60.0),
    Detection(100 * _HOUR, 100 * _HOUR + 0.001, 1.0, 100 * _HOUR),
]


@pytest.mark.parametrize("fmt", ["audacity", "raven"])
def test_a_label_with_a_tab_or_line_break_stays_one_field(
    tmp_path: Path, fmt: OutputFormat
) -> None:
    """``--label $'wolf\\thowl'`` wrote a column more in every Audacity line and Raven row
    (the table no longer matched its header), and --skip-existing could not read the
    results back, so it scanned every recording again, each time."""
    path = write_detections(tmp_path / f"r.{fmt}", DETECTIONS, fmt, label="wolf\thowl\nx")
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert len({len(r) for r in rows}) == 1  # every line as many fields as the header
    assert "wolf howl x" in path.read_text()
    back = read_detections(path, fmt)
    assert [(d.start, d.end) for d in back] == [(d.start, d.end) for d in DETECTIONS]


def test_subtitles_as_players_and_editors_read_them(tmp_path: Path) -> None:
    srt = format_detections(LONG, "srt", label="wolf")
    assert srt.split("\n\n")[:3] == [
        "1\n01:00:01,500 --> 01:00:02,250\nwolf 0.87",
        "2\n25:00:59,999 --> 25:01:01,000\nwolf 0.50",
        "3\n100:00:00,000 --> 100:00:00,001\nwolf 1.00",
    ]
    vtt = format_detections(LONG, "vtt", label="wolf")
    assert vtt.startswith(
        "WEBVTT\n\n1\n01:00:01.500 --> 01:00:02.250\nwolf 0.87\n\n2\n25:00:59.999"
    )
    for fmt in SUBTITLES:
        back = read_detections(write_detections(tmp_path / f"long.{fmt}", LONG, fmt), fmt)
        assert [(d.start, d.end, d.score) for d in back] == [
            pytest.approx((d.start, d.end, d.score), abs=5e-4) for d in LONG
        ]


@pytest.mark.parametrize("fmt", SUBTITLES)
def test_ffmpeg_reads_the_subtitles_as_players_do(tmp_path: Path, fmt: OutputFormat) -> None:
    """FFmpeg's own SubRip / WebVTT demuxer (what mpv and many players use) finds every
    cue at its time, past an hour and past a day, with its text."""
    import av

    path = write_detections(tmp_path / f"long.{fmt}", LONG, fmt, label="Wölfe, heulend")
    with av.open(str(path)) as container:
        stream = container.streams[0]
        assert stream.type == "subtitle"
        cues = [
            (float(p.pts * p.time_base), float((p.pts + p.duration) * p.time_base), bytes(p))
            for p in container.demux(stream)
            if p.pts is not None
        ]
    assert cues == [
        (pytest.approx(d.start, abs=5e-4), pytest.approx(d.end, abs=5e-4), text.encode())
        for d, text in zip(
            LONG, ["Wölfe, heulend 0.87", "Wölfe, heulend 0.50", "Wölfe, heulend 1.00"], strict=True
        )
    ]


def test_subtitle_cues_keep_any_label_on_one_line(tmp_path: Path) -> None:
    """A label with commas, a line break, tags, an arrow or non-ASCII letters stays one
    line of cue text (a blank line would end the cue) and reads back."""
    label = 'Wölfe, "heulend"\n\n<b>horn</b> & 狼 -->'
    srt = format_detections(DETECTIONS, "srt", label=label)
    assert srt.split("\n")[2] == 'Wölfe, "heulend" <b>horn</b> & 狼 -> 0.75'
    vtt = format_detections(DETECTIONS, "vtt", label=label)
    assert vtt.split("\n")[4] == 'Wölfe, "heulend" &lt;b&gt;horn&lt;/b&gt; &amp; 狼 --&gt; 0.75'
    assert format_detections(DETECTIONS[:1], "srt", label="").split("\n")[2] == "0.75"
    for fmt in SUBTITLES:
        for lab in (label, ""):
            path = write_detections(tmp_path / f"l.{fmt}", DETECTIONS, fmt, label=lab)
            assert [d.start for d in read_detections(path, fmt)] == [0.5, 10.0]
    # what an editor or Windows tool may make of it: a BOM, CRLF line ends
    path = tmp_path / "crlf.srt"
    path.write_bytes(b"\xef\xbb\xbf" + srt.replace("\n", "\r\n").encode("utf-8"))
    assert [d.end for d in read_detections(path, "srt")] == [3.25, 18.125]


def test_a_cue_is_never_empty() -> None:
    """Players skip a cue that ends where it starts: a detection shorter than the
    format's millisecond still gets one."""
    srt = format_detections([Detection(3599.9996, 3600.0004, 0.5, 3600.0)], "srt")
    assert "01:00:00,000 --> 01:00:00,001" in srt


def test_reading_back_a_missing_result(tmp_path: Path) -> None:
    with pytest.raises(ResultFileError, match="No such file"):
        read_detections(tmp_path / "none.csv", "csv")


# ---------------------------------------------------------------- markers next to recordings


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_recording_next_to_its_label_file(tmp_path: Path) -> None:
    _touch(tmp_path, "rec.wav", "rec.b.flac", "other.wav", "rec.txt.bak")
    assert recording_next_to(tmp_path / "rec.txt") == tmp_path / "rec.wav"
    assert recording_next_to(tmp_path / "rec.Table.1.selections.txt") == tmp_path / "rec.wav"
    # the longest stem wins: rec.b.flac marks rec.b.txt, not rec.wav
    assert recording_next_to(tmp_path / "rec.b.txt") == tmp_path / "rec.b.flac"


def test_recording_next_to_refuses_to_guess(tmp_path: Path) -> None:
    _touch(tmp_path, "rec.wav", "rec.mp4", "lonely.txt")
    with pytest.raises(MarkerError, match=r"rec\.mp4, rec\.wav.*--audio"):
        recording_next_to(tmp_path / "rec.txt")
    with pytest.raises(MarkerError, match="none"):
        recording_next_to(tmp_path / "lonely.txt")


def test_guess_marker_format(tmp_path: Path) -> None:
    (tmp_path / "m.CSV").write_text("file,time\n")
    (tmp_path / "r.txt").write_text("Selection\tView\tBegin Time (s)\tEnd Time (s)\n")
    (tmp_path / "a.txt").write_text("1.0\t2.0\thorn\n")
    assert guess_marker_format(tmp_path / "m.CSV") == "csv"
    assert guess_marker_format(tmp_path / "r.txt") == "raven"
    assert guess_marker_format(tmp_path / "a.txt") == "audacity"
    with pytest.raises(MarkerError, match="Cannot read markers file"):
        guess_marker_format(tmp_path / "none.txt")


def test_a_markers_csv_saved_as_txt_is_read_as_one(tmp_path: Path) -> None:
    """Excel's "Text (Tab delimited)" and "Unicode Text" save a markers table as .txt:
    it was taken for Audacity labels ("cannot tell which recording these labels mark");
    an Audacity label track saved as .csv gets a hint to read it as one."""
    _touch(tmp_path, "a.wav")
    table = "file\ttime\tkind\na.wav\t3,5\tpositive\na.wav\t12\tpositive\n"
    (tmp_path / "tab.txt").write_text(table)
    (tmp_path / "unicode.txt").write_bytes(table.encode("utf-16"))  # with its BOM
    for name in ("tab.txt", "unicode.txt"):
        assert guess_marker_format(tmp_path / name) == "csv"
        (markers,) = read_marker_files([tmp_path / name]).values()
        assert markers.positive == (3.5, 12.0)
    (tmp_path / "a.csv").write_text("1.000000\t2.000000\thorn\n")
    with pytest.raises(MarkerError, match=r"Audacity label track.*--markers-format audacity"):
        read_marker_files([tmp_path / "a.csv"])
    (tmp_path / "r.csv").write_text("Selection\tView\tBegin Time (s)\tEnd Time (s)\n")
    with pytest.raises(MarkerError, match=r"Raven selection table.*fmt='raven'"):
        read_marker_files([tmp_path / "r.csv"])
    (markers,) = read_marker_files([tmp_path / "a.csv"], fmt="audacity").values()
    assert markers.positive == (1.5,)
    # a scan's detections.csv given as markers (to retrain on what it found)
    (tmp_path / "detections.csv").write_text("file,start,end,peak,score\na.wav,1,2,1.5,0.9\n")
    with pytest.raises(MarkerError, match=r"holds scan results .*rename the peak column to time"):
        read_marker_files([tmp_path / "detections.csv"])


def test_a_folder_given_as_markers_is_named_a_folder(tmp_path: Path) -> None:
    """``--markers labels/``: "Markers file not found: labels", of a folder that is there."""
    (tmp_path / "labels").mkdir()
    with pytest.raises(MarkerError, match=r"labels is a folder, not a markers file.*\*\.txt"):
        read_marker_files([tmp_path / "labels"])
    (tmp_path / "my labels").mkdir()  # the glob to type, quoted where it needs to be
    with pytest.raises(MarkerError, match=r"--markers '.*/my labels'/\*\.txt"):
        read_marker_files([tmp_path / "my labels"])


def test_labels_of_several_sounds_taken_as_one_target_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An Audacity track labelling every sound (wolf, dog) trained a scanner for all of
    them, without a word: any label text but a kind name marks the target."""
    _touch(tmp_path, "a.wav", "b.wav")
    (tmp_path / "a.txt").write_text("1\t2\twolf\n5\t6\tdog\n8\t9\twolf\n12\t13\tnegative\n")
    with caplog.at_level("WARNING", logger="audio_embed"):
        (markers,) = read_marker_files([tmp_path / "a.txt"]).values()
    assert markers.positive == (1.5, 5.5, 8.5) and markers.negative == (12.5,)  # as before
    assert "labels of 2 different names are all taken as the target sound" in caplog.text
    assert "'wolf' ×2, 'dog' ×1" in caplog.text
    caplog.clear()
    (tmp_path / "b.txt").write_text("1\t2\twolf\n5\t6\tno\n8\t9\t\n")  # one name
    (tmp_path / "r.txt").write_text(
        "Selection\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\t1\t2\thorn\n2\t4\t5\tsoft\n"
    )
    with caplog.at_level("WARNING", logger="audio_embed"):
        read_marker_files([tmp_path / "b.txt"])
        read_marker_files([tmp_path / "r.txt"], recordings={tmp_path / "r.txt": tmp_path / "a.wav"})
    assert "different names" not in caplog.text
    (tmp_path / "r.txt").write_text(
        "Selection\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\t1\t2\thorn\n2\t4\t5\tcar\n"
    )
    with caplog.at_level("WARNING", logger="audio_embed"):
        read_marker_files([tmp_path / "r.txt"], recordings={tmp_path / "r.txt": tmp_path / "a.wav"})
    assert "labels of 2 different names" in caplog.text


def test_read_marker_files_merges_every_format(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav", "b.wav")
    _touch(tmp_path / "elsewhere", "c.flac")
    (tmp_path / "m.csv").write_text("file,time,kind\na.wav,1,positive\nb.wav,2,negative\n")
    (tmp_path / "a.txt").write_text("3.0\t5.0\thorn\n6.0\t6.0\tsoft\n")
    (tmp_path / "b.selections.txt").write_text(
        "Selection\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\t8.0\t10.0\tnegative\n"
    )
    (tmp_path / "c.txt").write_text("1.0\t3.0\thorn\n")
    markers = read_marker_files(
        [tmp_path / "m.csv", tmp_path / "a.txt", tmp_path / "b.selections.txt", tmp_path / "c.txt"],
        recordings={tmp_path / "c.txt": tmp_path / "elsewhere" / "c.flac"},
    )
    assert markers == {
        str(tmp_path / "a.wav"): Markers(positive=(1.0, 4.0), soft=(6.0,), spans=((3.0, 5.0),)),
        str(tmp_path / "b.wav"): Markers(negative=(2.0, 9.0)),
        str(tmp_path / "elsewhere" / "c.flac"): Markers(positive=(2.0,), spans=((1.0, 3.0),)),
    }


def test_names_meant_from_the_current_folder_are_named_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """labels/markers.csv naming recordings/a.wav, meant from the folder above (before:
    "do not exist: labels/recordings/a.wav" and the rule, not the fix)."""
    _touch(tmp_path / "recordings", "a.wav")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "m.csv").write_text("file,time\nrecordings/a.wav,1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MarkerError, match=r"recordings/a.wav is there from the current folder.*"
                       r"relative to it \(../recordings/a.wav\) or as absolute paths"):  # fmt: skip
        read_marker_files([Path("labels/m.csv")])
    (tmp_path / "labels" / "m.csv").write_text("file,time\nelsewhere/a.wav,1\n")
    with pytest.raises(MarkerError, match=r"markers file's folder\)\.$"):
        read_marker_files([Path("labels/m.csv")])


def test_read_marker_files_errors(tmp_path: Path) -> None:
    with pytest.raises(MarkerError, match="not found"):
        read_marker_files([tmp_path / "none.csv"])
    (tmp_path / "empty.csv").write_text("file,time,kind\n")
    with pytest.raises(MarkerError, match="No markers"):
        read_marker_files([tmp_path / "empty.csv"])
    (tmp_path / "m.csv").write_text("file,time\nghost.wav,1\n")
    with pytest.raises(MarkerError, match=r"do not exist: .*ghost\.wav \(relative"):
        read_marker_files([tmp_path / "m.csv"])
    _touch(tmp_path, "ghost.flac")  # the name without its extension, or another one
    for name in ("ghost", "ghost.wav"):
        (tmp_path / "m.csv").write_text(f"file,time\n{name},1\n")
        with pytest.raises(MarkerError, match=rf"{name} \(did you mean 'ghost.flac'\?\)"):
            read_marker_files([tmp_path / "m.csv"])
    _touch(tmp_path, "rec.wav")
    (tmp_path / "rec.txt").write_text("1.0\t2.0\thorn\n")
    with pytest.raises(MarkerError, match="file,time"):  # an Audacity file read as CSV
        read_marker_files([tmp_path / "rec.txt"], fmt="csv")
    assert read_marker_files([tmp_path / "rec.txt"], fmt="audacity") == {
        str(tmp_path / "rec.wav"): Markers(positive=(1.5,), spans=((1.0, 2.0),))
    }


def test_one_recording_spelled_two_ways_is_one_recording(tmp_path: Path) -> None:
    """`a.wav` and `/abs/path/a.wav` in one markers file (or in two) became two
    recordings of the same audio: each one's marked sounds were negatives of the
    other, and leave-one-recording-out held out a copy of what it trained on."""
    from audio_embed.formats import read_marker_files, read_markers

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    csv_path = tmp_path / "m.csv"
    csv_path.write_text(
        "file,time,kind\na.wav,5,positive\n"
        f"{tmp_path / 'a.wav'},20,positive\nsub/../a.wav,30,negative\n"
    )
    got = read_markers(csv_path)
    assert list(got) == [str(tmp_path / "a.wav")]
    assert got[str(tmp_path / "a.wav")].positive == (5.0, 20.0)
    assert got[str(tmp_path / "a.wav")].negative == (30.0,)
    other = tmp_path / "sub" / "n.csv"
    other.write_text("file,time,kind\n../a.wav,40,positive\n")
    both = read_marker_files([csv_path, other])
    assert len(both) == 1 and next(iter(both.values())).positive == (5.0, 20.0, 40.0)


@pytest.mark.parametrize(
    "text",
    [
        "file;time;kind\r\nmy rec, take 1.wav;3,25;positive\r\nb.wav;7;negative\r\n",
        "\ufefffile;time;kind\nmy rec, take 1.wav;3.25;positive\nb.wav;7;negative\n",
        "file\ttime\tkind\nmy rec, take 1.wav\t3.25\tpositive\nb.wav\t7\tnegative\n",
        '\ufefffile,time,kind\r\n"my rec, take 1.wav",3.25,positive\r\nb.wav,7,negative\r\n',
        # rows of empty cells, as Excel writes rows that once held something (before:
        # "line 3: the file column is empty")
        "file;time;kind\r\nmy rec, take 1.wav;3,25;positive\r\n;;\r\nb.wav;7;negative\r\n;;\r\n",
        # CR alone, as Excel for Mac's "CSV (Macintosh)" ends lines (before: "new-line
        # character seen in unquoted field", csv's own error)
        "file;time;kind\rmy rec, take 1.wav;3,25;positive\rb.wav;7;negative\r",
    ],
    ids=[
        "semicolon-decimal-comma-crlf",
        "semicolon-bom",
        "tab",
        "comma-bom-crlf",
        "blank-rows",
        "cr-mac",
    ],
)
def test_markers_csv_as_spreadsheets_export_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode())
    assert read_markers(path) == {
        str(tmp_path / "my rec, take 1.wav"): Markers(positive=(3.25,)),
        str(tmp_path / "b.wav"): Markers(negative=(7.0,)),
    }


def test_comment_and_blank_lines_above_a_markers_header_are_left_out(tmp_path: Path) -> None:
    """``# exported by …`` and blank lines above the header, as scripts and spreadsheets
    write them (before: the first was taken for the header, "a markers CSV needs the
    columns file,time[,kind]. Found: # exported by …"). Below the header a line
    starting with ``#`` is a row: a recording named ``#1.wav`` is not dropped."""
    path = tmp_path / "m.txt"  # a .txt too: told from an Audacity track past the comments
    path.write_text(
        "# exported by wolfwatch 2.1\n\n#   site: north ridge\n;;\n"
        "file;time;kind\n\n#1.wav;3,5;positive\n\nb.wav;7;negative\n"
    )
    assert guess_marker_format(path) == "csv"
    _touch(tmp_path, "#1.wav", "b.wav")
    assert (
        read_marker_files([path])
        == read_markers(path)
        == {
            str(tmp_path / "#1.wav"): Markers(positive=(3.5,)),
            str(tmp_path / "b.wav"): Markers(negative=(7.0,)),
        }
    )
    # an error names the line of the file, the comments counted
    path.write_text("# note\n\nfile,time,kind\na.wav,5,positive\n\na.wav,x,positive\n")
    with pytest.raises(MarkerError, match=r"m\.txt, line 6: 'x' is not a time"):
        read_markers(path)
    # the header itself written as a comment (numpy.savetxt's header=): said so
    path.write_text("# file,time,kind\na.wav,5,positive\n")
    with pytest.raises(MarkerError, match=r"Line 1, '# file,time,kind', looks like the header"):
        read_markers(path)
    path.write_text("# file,start,end,kind\na.wav,5,6,positive\n")  # and of selections
    with pytest.raises(MarkerError, match=r"Line 1, '# file,start,end,kind', looks like the"):
        read_markers(path)
    # a header whose first column is named '#' (row numbers in a hand-made sheet) is the
    # header, comma- or tab-separated (review: it was taken for a comment and refused)
    for sep in (",", "\t"):
        path.write_text(
            sep.join(("#", "file", "time", "kind")) + f"\n1{sep}#1.wav{sep}3{sep}positive\n"
        )
        assert guess_marker_format(path) == "csv"
        assert read_markers(path) == {str(tmp_path / "#1.wav"): Markers(positive=(3.0,))}
    # a file of comments only: the columns are missing, as for an empty file
    for text in ("# nothing yet\n\n", "# nothing yet"):
        path.write_text(text)
        with pytest.raises(MarkerError, match=r"needs the columns file,time.*Found: none\."):
            read_markers(path)


def test_comment_and_blank_lines_below_a_markers_header_are_left_out(tmp_path: Path) -> None:
    """A ``#`` line without a time below the header is a note, left out: a review file's
    ``# reviewed up to here`` was counted as a row left unanswered (and a markers CSV's
    refused, ``'' is not a time``); a ``#1.wav`` row with its time is still a row."""
    from audio_embed.formats import read_review_markers

    _touch(tmp_path, "a.wav", "b.wav", "#1.wav")
    path = tmp_path / "review.csv"
    path.write_text(
        "file,time,kind,start,end,score\n# reviewed by Ann, up to b.wav\n"
        "a.wav,1.0,positive,0.5,1.5,0.9\n\n   \n#1.wav,4.0,,3.5,4.5,0.6\n"
        "b.wav,2.0,,1.5,2.5,0.5\n# to do: the rest\n"
    )
    markers, unanswered = read_review_markers(path)
    assert markers == {str(tmp_path / "a.wav"): Markers(positive=(1.0,))}
    assert unanswered == 2  # #1.wav and b.wav (before: 4)
    for text in (  # a plain markers CSV, and selections
        "file,time,kind\n# first take\na.wav,1.0,positive\n#1.wav,1:02,negative\n",
        "file,start,end,kind\na.wav,0.5,1.5,positive\n# a, b, c, d, e, f\n"
        "#1.wav,61.5,62.5,negative\n",
    ):
        path.write_text(text)
        read = read_markers(path)
        assert sorted(read) == [str(tmp_path / "#1.wav"), str(tmp_path / "a.wav")]
        assert read[str(tmp_path / "a.wav")].positive == (1.0,)
        assert read[str(tmp_path / "#1.wav")].negative == (62.0,)
    # a '#' row with a time in one of its time columns is a row, its bad time refused
    path.write_text("file,start,end,kind\n#1.wav,x,2,positive\n")
    with pytest.raises(MarkerError, match="line 2: 'x' is not a time"):
        read_markers(path)
    # and one whose time is meant as one but cannot be read (review: left out silently)
    for bad in ("1:75", "12 s", "0:01:02:12"):
        path.write_text(f"file,time,kind\n#1.wav,{bad},positive\n")
        with pytest.raises(MarkerError, match="line 2"):
            read_markers(path)


def test_a_markers_csv_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """``file,time,time,kind`` (a column copied in a spreadsheet) or ``Time`` and
    ``time``: csv's DictReader kept the last one's times, silently."""
    path = tmp_path / "m.csv"
    for header in ("file,time,time,kind", "file,Time,time ,kind"):
        path.write_text(f"{header}\na.wav,5,6,positive\n")
        with pytest.raises(MarkerError, match=r"m\.csv: the header names the column 'time' 2"):
            read_markers(path)
    path.write_text("file,time,kind,note,note\na.wav,5,positive,x,y\n")  # unread: no matter
    assert read_markers(path) == {str(tmp_path / "a.wav"): Markers(positive=(5.0,))}


def test_a_markers_csv_without_its_header_says_to_add_it(tmp_path: Path) -> None:
    """A table exported without its header line (``a.wav,26.5,positive``) was refused
    with its values as if column names ("Found: 26.5, a.wav, positive") and no word of
    the header that is missing."""
    path = tmp_path / "m.csv"
    for row, header in [
        ("a.wav,26.5,positive", "file,time,kind"),
        ("a.wav,0:26.5", "file,time"),
        ("a.wav,26,27,positive", "file,start,end,kind"),
        ("a.wav,26,27", "file,start,end"),  # review: was told file,time,kind
        ("a.wav,1:00,1:30", "file,start,end"),  # clock times too
        ("a.wav;26;positive", "file;time;kind"),  # its own separator (review: commas)
    ]:
        path.write_text(f"{row}\na.wav,34,positive\n")
        with pytest.raises(MarkerError) as err:
            read_markers(path)
        assert f"Its first line ({row}) holds values, not column names: add the line " in str(
            err.value
        ) and str(err.value).endswith(f"add the line {header} above it.")
    path.write_text("file,tme,kind\na.wav,26.5,positive\n")  # a header, misspelt: no hint
    with pytest.raises(MarkerError) as err:
        read_markers(path)
    assert "holds values" not in str(err.value)


def test_a_markers_csv_of_selections_gives_spans(tmp_path: Path) -> None:
    """file,start,end[,kind] rows: selections, the marker at their midpoint, as an
    Audacity label (before: "a markers CSV needs the columns file,time[,kind]", so a
    spreadsheet could not mark the extent of a sound longer than the window)."""
    (tmp_path / "m.csv").write_text(
        "file;start;end;kind\na.wav;1:02,5;1:06,5;positive\na.wav;10;12;negative\n"
        "b.wav;3;3;positive\n"
    )
    assert read_markers(tmp_path / "m.csv") == {
        str(tmp_path / "a.wav"): Markers(positive=(64.5,), negative=(11.0,), spans=((62.5, 66.5),)),
        str(tmp_path / "b.wav"): Markers(positive=(3.0,)),  # no length: a point
    }
    (tmp_path / "sel.txt").write_text("file\tstart\tend\na.wav\t1\t4\n")  # Excel's tab text
    assert guess_marker_format(tmp_path / "sel.txt") == "csv"
    _touch(tmp_path, "a.wav")
    assert read_marker_files([tmp_path / "sel.txt"]) == {
        str(tmp_path / "a.wav"): Markers(positive=(2.5,), spans=((1.0, 4.0),))
    }
    (tmp_path / "m.csv").write_text("file,start,end\na.wav,6,5\n")
    with pytest.raises(MarkerError, match=r"line 2: the selection ends \(5 s\) before it starts"):
        read_markers(tmp_path / "m.csv")
    # a scan's detections.csv (file,start,end,peak,score) is still refused, with its hint
    (tmp_path / "m.csv").write_text("file,start,end,peak,score\na.wav,1,2,1.5,0.9\n")
    with pytest.raises(MarkerError, match="It holds scan results"):
        read_markers(tmp_path / "m.csv")


@pytest.mark.parametrize("header", ["file,time,kind", "file,time"])
def test_an_unquoted_name_with_a_comma_is_one_clear_error(tmp_path: Path, header: str) -> None:
    path = tmp_path / "m.csv"
    extra = ",positive" if header.endswith("kind") else ""
    path.write_text(f"{header}\nmy rec, take 1.wav,3.25{extra}\n")  # was an AttributeError
    with pytest.raises(MarkerError, match=r"line 2: .* fields where the header has .*quotes"):
        read_markers(path)


def test_audacity_labels_with_frequency_lines_points_and_decimal_commas(tmp_path: Path) -> None:
    from audio_embed.formats import read_audacity_labels

    path = tmp_path / "rec.txt"
    path.write_text(
        "3,000000\t3,600000\thorn\n\\\t200,0\t4000,0\n"  # a German-locale Audacity
        "8.0\t8.0\thorn\n"  # a point label (start == end): a marker without extent
        "13.0\t13.5\tnegative\n"
    )
    assert read_audacity_labels(path, "rec.wav") == {
        "rec.wav": Markers(positive=(3.3, 8.0), negative=(13.25,), spans=((3.0, 3.6),))
    }


def test_raven_table_with_extra_columns_and_two_views(tmp_path: Path) -> None:
    from audio_embed.formats import read_raven_table

    path = tmp_path / "rec.Table.1.selections.txt"
    head = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin File\tAnnotation\tNotes"
    path.write_text(
        head + "\n"
        "1\tSpectrogram 1\t1\t4.0\t4.6\trec.wav\thorn\tclear\n"
        "1\tWaveform 1\t1\t4.0\t4.6\trec.wav\thorn\tclear\n"
        "2\tSpectrogram 1\t1\t9,0\t9,0\trec.wav\thorn\t\n"
    )
    assert read_raven_table(path, "rec.wav") == {
        "rec.wav": Markers(positive=(4.3, 9.0), spans=((4.0, 4.6),))
    }


def test_raven_table_over_a_list_of_files_marks_each_file(tmp_path: Path) -> None:
    """Raven's table for a file list counts Begin Time (s) from the first file's start;
    each selection's own file and its offset in it are in Begin Path / Begin File and
    File Offset (s)."""
    from audio_embed.formats import read_marker_files, read_raven_table

    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    here = tmp_path / "b.wav"
    table = tmp_path / "Table.1.selections.txt"
    table.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin Path\t"
        "File Offset (s)\tBegin File\tAnnotation\n"
        "1\tSpectrogram 1\t1\t4.0\t4.6\tC:\\Users\\me\\field\\a.wav\t4.0\ta.wav\thorn\n"
        "2\tSpectrogram 1\t1\t64.0\t64.5\tD:\\x\\b.wav\t4,0\t\tnegative\n"
        f"3\tSpectrogram 1\t1\t70.0\t71.0\t{here}\t10.0\tb.wav\thorn\n"
    )
    a, b = str(tmp_path / "a.wav"), str(here)
    expected = {
        a: Markers(positive=(4.3,), spans=((4.0, 4.6),)),
        b: Markers(positive=(10.5,), negative=(4.25,), spans=((10.0, 11.0),)),
    }
    assert read_raven_table(table) == expected
    assert read_marker_files([table]) == expected  # no recording named like the table
    with pytest.raises(MarkerError, match="marks 2 files"):
        read_raven_table(table, "rec.wav")
    one = tmp_path / "rec.selections.txt"
    one.write_text("\n".join(table.read_text().splitlines()[:2]) + "\n")
    assert read_raven_table(one, "rec.wav") == {  # one file: --audio names it
        "rec.wav": Markers(positive=(4.3,), spans=((4.0, 4.6),))
    }
    (tmp_path / "a.wav").unlink()
    with pytest.raises(MarkerError, match="do not exist"):
        read_marker_files([table])


def test_raven_table_of_one_recording_with_file_columns_marks_the_one_beside_it(
    tmp_path: Path,
) -> None:
    """Raven and BirdNET write Begin File / File Offset (s) for one recording too: the
    table still marks the recording beside it (converted or renamed since), and the one
    file it names when none is beside it."""
    from audio_embed.formats import read_marker_files

    table = tmp_path / "REC0001.BirdNET.selection.table.txt"
    table.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin File\t"
        "File Offset (s)\tAnnotation\n1\tSpectrogram 1\t1\t12.5\t13.5\tREC0001.WAV\t12.5\tx\n"
    )
    flac = tmp_path / "REC0001.flac"  # converted from REC0001.WAV
    flac.write_bytes(b"fLaC")
    assert read_marker_files([table]) == {
        str(flac): Markers(positive=(13.0,), spans=((12.5, 13.5),))
    }
    flac.rename(tmp_path / "renamed.flac")
    with pytest.raises(MarkerError, match="cannot tell which recording"):
        read_marker_files([table])
    (tmp_path / "REC0001.WAV").write_bytes(b"RIFF")  # the file the table names
    assert list(read_marker_files([table])) == [str(tmp_path / "REC0001.WAV")]
    elsewhere = tmp_path / "day1" / "x.wav"  # named by its path, nothing beside the table
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"RIFF")
    other = tmp_path / "Table.1.selections.txt"
    other.write_text(
        "Selection\tBegin Time (s)\tEnd Time (s)\tBegin Path\tFile Offset (s)\n"
        f"1\t2.0\t3.0\t{elsewhere}\t2.0\n"
    )
    assert read_marker_files([other]) == {
        str(elsewhere): Markers(positive=(2.5,), spans=((2.0, 3.0),))
    }


def test_a_markers_csv_saved_by_excel_on_windows_reads(tmp_path: Path) -> None:
    """Excel's "CSV (Comma delimited)" is Windows-1252: a name with an accent failed
    with "'utf-8' codec can't decode byte 0xe9"."""
    path = tmp_path / "m.csv"
    path.write_bytes("file,time,kind\nhéllo wörld.wav,3.5,positive\n".encode("cp1252"))
    assert read_markers(path) == {str(tmp_path / "héllo wörld.wav"): Markers(positive=(3.5,))}
    path.write_bytes(b"file,time\x00\x00\n")
    with pytest.raises(MarkerError, match="not a text file"):
        read_markers(path)


def test_a_utf8_markers_csv_naming_a_file_that_is_not_utf8_keeps_every_name(
    tmp_path: Path,
) -> None:
    """A review file this library wrote for a Latin-1 file name (its bytes as they are)
    beside UTF-8 names was read as Windows-1252: 'naïve.wav' became 'naÃ¯ve.wav'."""
    import os

    path = tmp_path / "review.csv"
    path.write_bytes(b"file,time,kind\ncaf\xe9.wav,1.0,positive\nna\xc3\xafve.wav,2.0,positive\n")
    latin1 = os.fsdecode(b"caf\xe9.wav")  # the name as os.listdir gives it
    assert read_markers(path) == {
        str(tmp_path / latin1): Markers(positive=(1.0,)),
        str(tmp_path / "naïve.wav"): Markers(positive=(2.0,)),
    }


def test_a_workbook_given_as_markers_or_labels_says_to_save_it_as_csv(tmp_path: Path) -> None:
    """An .xlsx / .ods (zip) or .xls (OLE2) workbook: "not a text file (NUL bytes)"
    before, which does not say what to do."""
    import zipfile

    from audio_embed.evaluate import read_labels

    with zipfile.ZipFile(tmp_path / "markers.xlsx", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "labels.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    with pytest.raises(MarkerError, match=r"markers.xlsx: it is a workbook .* Save the sheet as"):
        read_marker_files([tmp_path / "markers.xlsx"])
    with pytest.raises(MarkerError, match=r"labels file .*labels.xls: it is a workbook"):
        read_labels(tmp_path / "labels.xls")


def test_a_windows_1252_audacity_file_is_recognised_as_such(tmp_path: Path) -> None:
    """guess_marker_format reads the first line as the readers do (it raised
    UnicodeDecodeError on a Windows-1252 label file before)."""
    labels = tmp_path / "rec.txt"
    labels.write_bytes("1.0\t2.0\tk\xf6nig\n".encode("cp1252"))
    assert guess_marker_format(labels) == "audacity"


def test_marker_times_as_clock_times_video_editors_write(tmp_path: Path) -> None:
    """A video editor notes a gag at 1:23.5 (a player's clock): the markers CSV said
    "'1:23.5' is not a time in seconds". M:SS.s and H:MM:SS.s are read now; an
    HH:MM:SS:FF timecode (frames need the frame rate) is refused saying so."""
    from audio_embed.formats import clock_seconds

    assert clock_seconds("1:23.5") == 83.5 and clock_seconds("0:01:23.5") == 83.5
    assert clock_seconds("1:02:03") == 3723.0 and clock_seconds("90:00") == 5400.0
    for bad in ("1:75", "1:-2", "a:10", "1:nan", "1:2:75", "-0:30", "-1:00", "0:-0:05"):
        with pytest.raises(ValueError, match="not a clock time"):
            clock_seconds(bad)
    csv_text = "file,time,kind\nrec.wav,1:23.5,positive\nrec.wav,0:02:05,negative\nrec.wav,7,soft\n"
    (tmp_path / "m.csv").write_text(csv_text)
    (tmp_path / "rec.wav").write_bytes(b"")
    (m,) = read_markers(tmp_path / "m.csv").values()
    assert m.positive == (83.5,) and m.negative == (125.0,) and m.soft == (7.0,)
    (tmp_path / "m.csv").write_text("file;time;kind\nrec.wav;1:23,5;positive\n")  # decimal comma
    assert next(iter(read_markers(tmp_path / "m.csv").values())).positive == (83.5,)
    (tmp_path / "m.csv").write_text("file,time,kind\nrec.wav,00:01:23:12,positive\n")
    with pytest.raises(MarkerError, match=r"line 2: .*timecode with frames.*frame rate"):
        read_markers(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("file,time,kind\nrec.wav,1h23,positive\n")
    with pytest.raises(MarkerError, match=r"line 2: '1h23' is not a time in seconds"):
        read_markers(tmp_path / "m.csv")
    # a decimal comma, quoted, in a comma-separated CSV: said what to do (before: only
    # "is not a time in seconds", as if the comma were not the matter)
    (tmp_path / "m.csv").write_text('file,time,kind\nrec.wav,"1:23,5",positive\n')
    with pytest.raises(MarkerError, match=r"'1:23,5' is not a time .* decimal comma is read"):
        read_markers(tmp_path / "m.csv")


def test_a_csv_naming_a_file_in_the_home_folder_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/rec.wav`` in a markers or labels CSV was read from the CSV's folder
    (``m/~/rec.wav``: "recordings that do not exist"); it is the home folder's, as a
    shell reads it, unless the CSV's folder holds a ``~`` folder with that file."""
    from audio_embed.evaluation import read_labelled_set

    home, here = tmp_path / "home", tmp_path / "m"
    (home / "rec").mkdir(parents=True)
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / "rec" / "a.wav").write_bytes(b"")
    (here / "m.csv").write_text("file,time,kind\n~/rec/a.wav,3,positive\n")
    assert read_markers(here / "m.csv") == {str(home / "rec" / "a.wav"): Markers(positive=(3.0,))}
    (here / "l.csv").write_text("file,onset,offset,label\n~/rec/a.wav,1,2,horn\n")
    assert read_labelled_set(here / "l.csv", "horn").files == (home / "rec" / "a.wav",)
    (here / "~" / "rec").mkdir(parents=True)  # a folder named ~ beside the CSV: its file
    (here / "~" / "rec" / "a.wav").write_bytes(b"")
    assert read_markers(here / "m.csv") == {str(here / "~/rec/a.wav"): Markers(positive=(3.0,))}
    # "~rec.wav" (an Office lock or backup file's name) is a name here, not a user's
    # home: the CSV's folder's file (review: RuntimeError "Could not determine home
    # directory" when it was missing)
    (here / "m.csv").write_text("file,time,kind\n~rec.wav,3,positive\n")
    assert read_markers(here / "m.csv") == {str(here / "~rec.wav"): Markers(positive=(3.0,))}
    # another user's home as a shell reads it; a user not known here: the CSV's folder's
    import os
    import pwd

    me = pwd.getpwuid(os.getuid())
    (here / "m.csv").write_text(f"file,time,kind\n~{me.pw_name}/x.wav,3,positive\n")
    assert list(read_markers(here / "m.csv")) == [str(Path(me.pw_dir) / "x.wav")]
    (here / "m.csv").write_text("file,time,kind\n~no_such_user_here/x.wav,3,positive\n")
    assert list(read_markers(here / "m.csv")) == [str(here / "~no_such_user_here/x.wav")]


def test_a_markers_csv_written_on_windows_names_its_files_with_backslashes(
    tmp_path: Path,
) -> None:
    """``train\\rec.wav`` (a CSV made on Windows) was "a recording that does not
    exist" on Linux or macOS, where ``\\`` is part of a name; it is read with ``/``
    when that file exists (and kept as written when it does not)."""
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "rec.wav").write_bytes(b"")
    (tmp_path / "m.csv").write_text("file,time,kind\ntrain\\rec.wav,3,positive\n")
    assert list(read_markers(tmp_path / "m.csv")) == [str(tmp_path / "train" / "rec.wav")]
    (tmp_path / "m.csv").write_text("file,time,kind\nother\\rec.wav,3,positive\n")
    assert list(read_markers(tmp_path / "m.csv")) == [str(tmp_path / "other\\rec.wav")]


def test_a_registered_format_is_written_and_read_like_the_built_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """register_format: the built-ins are registered so too (one code path); a format
    without a reader writes, and its files are never taken for results."""
    from audio_embed.batch import BatchSettings

    monkeypatch.setattr(formats, "_FORMATS", dict(formats._FORMATS))
    assert list_formats() == ("csv", "json", "audacity", "raven", "srt", "vtt")
    assert result_format("raven").suffix == ".selections.txt" == FORMAT_SUFFIXES["raven"]

    def starts(detections: object, *, file: str, label: str) -> str:
        return "".join(f"{label} {d.start:g}\n" for d in detections)  # type: ignore[attr-defined]

    with pytest.raises(InvalidInputError, match=r"Unknown output format 'starts'; use csv, "):
        BatchSettings(fmt="starts")
    register_format("starts", ".starts.txt", starts)
    assert list_formats()[-1] == "starts" and FORMAT_SUFFIXES["starts"] == ".starts.txt"
    assert BatchSettings(fmt="starts").fmt == "starts"
    path = write_detections(tmp_path / "a.starts.txt", DETECTIONS, "starts", label="owl")
    assert path.read_text() == "owl 0.5\nowl 10\n"
    with pytest.raises(ResultFileError, match=r"the starts format has no reader"):
        read_detections(path, "starts")
    for name, suffix in (("", ".x"), ("a b", ".x"), ("ok", "x"), ("ok", "./x"), ("ok", ".")):
        with pytest.raises(InvalidInputError, match=r"result format's (name|suffix)"):
            register_format(name, suffix, starts)
    with pytest.raises(InvalidInputError, match=r"'csv' is already registered"):
        register_format("csv", ".csv", starts)
    register_format("csv", ".csv", starts, overwrite=True)
    assert format_detections(DETECTIONS, "csv", label="x") == "x 0.5\nx 10\n"


def test_a_review_answered_y_and_n_reads_as_positive_and_negative(tmp_path: Path) -> None:
    """A reviewer typing y / n in the kind column: n was negative, y "unknown marker
    kind 'y'"; the error names the short answers taken."""
    p = tmp_path / "review.csv"
    p.write_text("file,time,kind\nrec.wav,3,y\nrec.wav,9,N\nrec.wav,12,Yes\nrec.wav,15,?\n")
    (markers,) = read_markers(p).values()
    assert markers.positive == (3.0, 12.0) and markers.negative == (9.0,)
    assert markers.soft == (15.0,)
    p.write_text("file,time,kind\nrec.wav,3,x\n")
    with pytest.raises(MarkerError, match=r"unknown marker kind 'x'.*yes/no/maybe, y/n/\?, 1/0"):
        read_markers(p)


def test_a_recording_given_as_markers_says_so_and_names_its_labels(tmp_path: Path) -> None:
    """`train --markers rec.mp4` (the video, not its labels) said "not a text file
    (NUL bytes)"."""
    from audio_embed.formats import read_marker_files

    video = tmp_path / "rec.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(MarkerError, match=r"rec\.mp4 is a recording, not a markers file") as e:
        read_marker_files([video])
    assert "; beside it:" not in str(e.value) and "Audacity labels rec.txt" in str(e.value)
    take = tmp_path / "take.wav"
    take.write_bytes(b"RIFF")
    with pytest.raises(MarkerError, match=r"Audacity labels take\.txt beside it"):
        read_marker_files([take])  # (review: always 'rec.txt')
    (tmp_path / "rec.txt").write_text("1.0\t2.0\tgag\n")
    with pytest.raises(MarkerError, match=r"is a recording.*; beside it: 'rec\.txt'\."):
        read_marker_files([video])


def test_a_review_file_not_filled_in_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`train --markers review.csv` before answering: "No markers in review.csv" alone."""
    from audio_embed.formats import read_marker_files

    p = tmp_path / "review.csv"
    p.write_text("file,time,kind,start,end,score\na.wav,3.1,,2.6,3.6,0.9\na.wav,9,,8.5,9.5,0.8\n")
    with pytest.raises(MarkerError, match=r"No markers in .*\. 2 row\(s\) have an empty kind"):
        read_marker_files([p])
    # two files: the rows of both counted; no warning repeats what the error says (review)
    q = tmp_path / "next.csv"
    q.write_text("file,time,kind\na.wav,12,\n")
    with caplog.at_level("WARNING", logger="audio_embed"):
        with pytest.raises(MarkerError, match=r"\. 3 row\(s\) have an empty kind"):
            read_marker_files([p, q])
    assert not caplog.records
    p.write_text("file,time,kind\n")
    with pytest.raises(MarkerError, match=r"No markers in [^.]*review\.csv\.$"):
        read_marker_files([p])

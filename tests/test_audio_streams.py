"""The audio stream of a multi-track file (OBS: game, microphone, music; films:
languages) reaches every decoding: fit, scan, augmentation, the embedding cache,
saved scanners, indexes and the commands.

The recordings are OBS-like videos: track 0 a noisy "microphone" with a steady
hum, track 1 the "game" (a demo recording with horns). A scanner that decoded
the wrong track would see no horn at all.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, tone, video_with_tracks

import audio_embed.scanner.streaming as scanner_streaming
from audio_embed import (
    InvalidInputError,
    LogMelEmbedder,
    NoAudioStreamError,
    ScannerFileError,
    load_audio,
)
from audio_embed.cache import EmbeddingCache
from audio_embed.cli import main
from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.formats import read_markers, write_markers
from audio_embed.index import EmbeddingIndex
from audio_embed.scanner import Recording, Scanner
from audio_embed.windows import Markers

SECONDS = 40


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return make_demo_set(
        tmp_path_factory.mktemp("demo"),
        n_train=2,
        n_test=1,
        seconds=SECONDS,
        targets_per_file=2,
        distractors_per_file=4,
        seed=3,
    )


def _obs(path: Path, game: np.ndarray, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    mic = (0.05 * rng.standard_normal(len(game)) + tone(120.0, len(game) / SR, amp=0.2)).astype(
        np.float32
    )
    meta = [{"title": "Mic"}, {"title": "Game"}]
    return video_with_tracks(path, [mic, game], seconds=len(game) / SR, metadata=meta)


@pytest.fixture(scope="module")
def videos(demo: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``train0``, ``train1``, ``test0``: two-track videos with the demo audio on track 1,
    and ``markers``: the demo markers moved onto the training videos."""
    root = tmp_path_factory.mktemp("obs")
    out: dict[str, Path] = {}
    moved: dict[str, Markers] = {}
    demo_markers = read_markers(demo.markers_csv)
    for i, f in enumerate(demo.train_files):
        v = out[f"train{i}"] = _obs(root / f"train{i}.mkv", load_audio(f), seed=i)
        (markers,) = [m for k, m in demo_markers.items() if Path(k).name == f.name]
        moved[str(v)] = markers
    out["test0"] = _obs(root / "test0.mkv", load_audio(demo.test_files[0]), seed=9)
    out["markers"] = write_markers(root / "markers.csv", moved)
    return out


def _recordings(videos: dict[str, Path]) -> list[Recording]:
    return [Recording(f, m) for f, m in read_markers(videos["markers"]).items()]


@pytest.fixture(scope="module")
def on_track_1(videos: dict[str, Path]) -> Scanner:
    return Scanner(LogMelEmbedder(), audio_stream=1).fit(_recordings(videos))


def test_fit_and_scan_decode_the_scanners_stream(
    videos: dict[str, Path], on_track_1: Scanner
) -> None:
    # the same training from the decoded track 1 as arrays: the same scanner
    arrays = [
        Recording(load_audio(r.source, SR, 1), r.markers, sample_rate=SR)
        for r in _recordings(videos)
    ]
    from_arrays = Scanner(LogMelEmbedder()).fit(arrays)
    summary = on_track_1.training_summary or {}
    assert summary["augmentation"]["ran"]  # the augmentation decoded track 1 too
    assert on_track_1.scan_threshold == pytest.approx(from_arrays.scan_threshold)
    scanned = on_track_1.scan(videos["test0"])
    expected = from_arrays.scan(load_audio(videos["test0"], SR, 1), sample_rate=SR)
    np.testing.assert_allclose(scanned.probabilities, expected.probabilities, atol=1e-5)
    assert scanned.detections()  # the horns of the game track are found


def test_fit_on_the_first_stream_warns_once_per_recording(
    videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The first stream of a file with several is used with one warning naming the
    streams; the augmentation's second decoding of it says nothing more (before: the
    warning twice per training recording)."""
    with caplog.at_level("WARNING", logger="audio_embed"):
        scanner = Scanner(LogMelEmbedder()).fit(_recordings(videos))
    assert (scanner.training_summary or {})["augmentation"]["ran"]
    said = [r.getMessage() for r in caplog.records if "audio streams; the first" in r.getMessage()]
    for key in ("train0", "train1"):
        assert sum(m.startswith(str(videos[key])) for m in said) == 1, said


def test_a_scanner_saved_with_stream_1_scans_stream_1_after_load(
    tmp_path: Path, videos: dict[str, Path], on_track_1: Scanner
) -> None:
    path = on_track_1.save(tmp_path / "game.scanner")
    meta = Scanner.read_metadata(path)
    # format 4: a release before the choice refuses it rather than scan the first stream
    assert meta["audio_stream"] == 1 and meta["format_version"] == 4
    loaded = Scanner.load(path)
    assert loaded.audio_stream == 1
    want = on_track_1.scan(videos["test0"]).probabilities
    np.testing.assert_allclose(loaded.scan(videos["test0"]).probabilities, want, atol=1e-6)
    loaded.audio_stream = 0  # the microphone: another recording altogether
    assert not np.allclose(loaded.scan(videos["test0"]).probabilities, want, atol=1e-3)


def _rewrite_metadata(path: Path, change: dict[str, object], drop: str | None = None) -> None:
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("scanner.json"))
        payload = zf.read("classifier.skops")
    meta.update(change)
    if drop is not None:
        del meta[drop]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)


def test_a_scanner_saved_before_the_choice_loads_with_the_first_stream(
    tmp_path: Path, on_track_1: Scanner
) -> None:
    first = Scanner.load(on_track_1.save(tmp_path / "first.scanner"))
    first.audio_stream = None
    assert Scanner.read_metadata(first.save(tmp_path / "first.scanner"))["format_version"] == 3
    path = on_track_1.save(tmp_path / "old.scanner")
    _rewrite_metadata(path, {"format_version": 3}, drop="audio_stream")
    assert Scanner.load(path).audio_stream is None  # what it decoded: the first
    _rewrite_metadata(path, {"audio_stream": -2})
    with pytest.raises(ScannerFileError, match="audio_stream"):
        Scanner.load(path)
    with pytest.raises(InvalidInputError, match="whole number >= 0"):
        Scanner(LogMelEmbedder(), audio_stream=-1)
    first.audio_stream = np.int64(1)  # set after construction: checked and made an int
    assert type(first.audio_stream) is int
    with pytest.raises(InvalidInputError, match="whole number >= 0"):
        first.audio_stream = "1"  # type: ignore[assignment]


def test_the_cache_keeps_the_streams_apart(
    tmp_path: Path, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    video = videos["test0"]
    scanners = {
        s: Scanner(LogMelEmbedder(), cache=cache, audio_stream=s) for s in (None, 0, 1, "mix")
    }
    keys = {s: sc.cache_key(video) for s, sc in scanners.items()}
    assert keys[None] == keys[0]  # the first stream, chosen or not: one entry
    assert len({keys[0], keys[1], keys["mix"]}) == 3
    fresh = {s: sc.sliding_embeddings(video).embeddings for s, sc in scanners.items()}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    assert not np.allclose(fresh[0], fresh[1], atol=1e-3)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(scanner_streaming, "stream_audio", no_decoding)
    for s, sc in scanners.items():  # each from its own entry
        np.testing.assert_array_equal(sc.sliding_embeddings(video).embeddings, fresh[s])


def test_an_index_records_its_stream_and_decodes_it(
    tmp_path: Path, videos: dict[str, Path], on_track_1: Scanner
) -> None:
    from audio_embed.review import fit_from_index

    video = videos["test0"]
    index = EmbeddingIndex.create(tmp_path / "game.idx", LogMelEmbedder(), audio_stream=1)
    index.add([video])
    reopened = EmbeddingIndex.open(tmp_path / "game.idx")
    assert reopened.manifest["audio_stream"] == 1 and reopened.audio_stream == 1
    assert reopened.manifest["format_version"] == 2  # refused by releases before the choice
    game = Scanner(LogMelEmbedder(), scan_windows=index.windows, audio_stream=1)
    entry = game.sliding_embeddings(video)
    stored = reopened.vectors()
    expected = (entry.embeddings - entry.embeddings.mean(0)) / entry.embeddings.std(0)
    np.testing.assert_allclose(stored, expected, atol=0.05)  # float16 storage
    mic = EmbeddingIndex.create(tmp_path / "mic.idx", LogMelEmbedder())
    mic.add([video])
    assert mic.audio_stream is None and mic.manifest["format_version"] == 1
    assert not np.allclose(mic.vectors(), stored, atol=0.05)
    markers = {str(video.resolve()): Markers(positive=[10.0])}
    with pytest.raises(InvalidInputError, match=r"audio stream 0 .* audio stream 1"):
        fit_from_index(Scanner(LogMelEmbedder(), scan_windows=index.windows), reopened, markers)


# ---------------------------------------------------------------------------- commands


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*args, "--threads", "1"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _detections(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_commands_take_audio_stream_end_to_end(
    tmp_path: Path, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    scanner = tmp_path / "game.scanner"
    rc, out, err = _cli(
        capsys,
        "train",
        "--markers",
        str(videos["markers"]),
        "--model",
        "LOGMEL",
        "--audio-stream",
        "1",
        "--out",
        str(scanner),
    )
    assert rc == 0, err
    assert "Decoded audio stream 1 of each file" in out
    assert Scanner.read_metadata(scanner)["audio_stream"] == 1

    def scan(out: str, *stream: str) -> tuple[int, str, str]:
        return _cli(capsys, "scan", str(scanner), str(videos["test0"]), *stream,
                    "--out", str(tmp_path / out))  # fmt: skip

    # scan without the option: the scanner's own stream; with it: the same
    rc, _, err = scan("a")
    assert rc == 0, err
    assert "audio streams" not in err  # a stream was chosen: no warning
    own = _detections(tmp_path / "a" / "test0.csv")
    assert len(own) > 1  # the horns of the game track
    rc, _, _ = scan("b", "--audio-stream", "1")
    assert rc == 0 and _detections(tmp_path / "b" / "test0.csv") == own
    rc, _, _ = scan("mic", "--audio-stream", "0")
    assert rc == 0 and _detections(tmp_path / "mic" / "test0.csv") != own  # the override wins
    # a stream the file lacks: reported and skipped, naming the streams there are
    rc, _, err = scan("c", "--audio-stream", "4")
    assert rc == 1
    assert "no audio stream 4" in err and "2 audio streams" in err and "'Game'" in err
    rc, _, err = scan("d", "--audio-stream", "x")
    assert rc == 2 and "--audio-stream" in err and "mix" in err
    # embed: the chosen stream's vectors, recorded in the file
    npz = tmp_path / "emb.npz"
    for stream in (1, "mix"):
        rc, _, err = _cli(capsys, "embed", str(videos["test0"]), "--model", "LOGMEL",
                          "--audio-stream", str(stream), "--out", str(npz))  # fmt: skip
        assert rc == 0, err
        with np.load(npz) as data:
            assert data["audio_stream"].item() == stream
            want = Scanner(LogMelEmbedder(), audio_stream=stream).sliding_embeddings(
                videos["test0"]
            )
            np.testing.assert_allclose(data["0/embeddings"], want.embeddings, atol=1e-6)


def test_index_and_train_from_it_keep_the_indexs_stream(
    tmp_path: Path, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    idx = tmp_path / "game.idx"
    files = [str(videos["train0"]), str(videos["train1"])]
    rc, _, err = _cli(
        capsys, "index", *files, "--model", "LOGMEL", "--audio-stream", "1", "--out", str(idx)
    )
    assert rc == 0, err
    assert EmbeddingIndex.open(idx).manifest["audio_stream"] == 1
    rc, _, err = _cli(capsys, "index", *files, "--audio-stream", "0", "--out", str(idx))
    assert rc == 2 and "audio stream 1" in err
    rc, _, err = _cli(capsys, "index", *files, "--out", str(idx))  # its own stream
    assert rc == 0, err
    out = tmp_path / "from_index.scanner"
    common = [
        "train",
        "--markers",
        str(videos["markers"]),
        "--model",
        "LOGMEL",
        "--index",
        str(idx),
    ]
    rc, _, err = _cli(capsys, *common, "--audio-stream", "0", "--out", str(out))
    assert rc == 2 and "audio stream 1" in err
    rc, _, err = _cli(capsys, *common, "--out", str(out))
    assert rc == 0, err
    assert Scanner.read_metadata(out)["audio_stream"] == 1


def test_a_file_without_the_stream_fails_alone(
    tmp_path: Path, videos: dict[str, Path], on_track_1: Scanner, tone_file: Path
) -> None:
    results = dict(on_track_1.scan_many([tone_file, videos["test0"]]))
    assert isinstance(results[str(tone_file)], NoAudioStreamError)
    assert "1 audio stream" in str(results[str(tone_file)])
    assert not isinstance(results[str(videos["test0"])], Exception)

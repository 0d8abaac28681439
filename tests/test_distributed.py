"""Scanning and embedding on a real local Ray (2 CPUs), against the local scan.

LOGMEL (no weights) on short synthesised recordings. One Ray is started for the
module and shut down at its end, with its session files in a temporary folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch

pytest.importorskip("ray", reason="ray is not installed: pip install 'audio_embed[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'audio_embed[ray]'")

import ray

from audio_embed import Embedder, LogMelEmbedder
from audio_embed import distributed as dist
from audio_embed._ray_worker import CRASH_ONCE_ENV
from audio_embed.batch import (
    SCAN_LOCK,
    SCAN_STAMP,
    BatchCancelled,
    BatchSettings,
    FileOutcome,
    scan_to_folder,
)
from audio_embed.cache import EmbeddingCache
from audio_embed.cli import build_parser, main
from audio_embed.cli.distributed import ray_settings
from audio_embed.cli.session import Run
from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.errors import InvalidInputError, ScannerFileError
from audio_embed.formats import read_markers
from audio_embed.index import EmbeddingIndex
from audio_embed.progress import CancelToken
from audio_embed.scanner import Recording, Scanner, ScanResult
from audio_embed.windows import SlidingWindows


@pytest.fixture(scope="module")
def crash_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray with 2 CPUs for this module; yields the file that arms a worker crash."""
    marker = tmp_path_factory.mktemp("crash") / "crash-once"
    os.environ[CRASH_ONCE_ENV] = str(marker)  # set before ray.init: workers inherit it
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live here
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=100 * 2**20,
        _temp_dir=temp,
    )
    try:
        yield marker
    finally:
        ray.shutdown()
        os.environ.pop(CRASH_ONCE_ENV, None)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return make_demo_set(
        tmp_path_factory.mktemp("demo"),
        n_train=2,
        n_test=5,
        seconds=40,
        targets_per_file=3,
        distractors_per_file=3,
        seed=3,
    )


@pytest.fixture(scope="module")
def scanner(demo: DemoSet) -> Scanner:
    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    return Scanner(LogMelEmbedder()).fit(recs)


@pytest.fixture(scope="module")
def local(demo: DemoSet, scanner: Scanner) -> dict[str, ScanResult]:
    """The reference: a local scan of every test file."""
    return {str(f): scanner.scan(f) for f in demo.test_files}


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bad = tmp_path_factory.mktemp("bad") / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 8)
    return bad


def _same(a: ScanResult, b: ScanResult) -> None:
    assert a.source == b.source
    np.testing.assert_allclose(a.starts, b.starts, rtol=0, atol=1e-9)
    # Another process may use another thread count: float32 rounding, not more.
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-4, atol=1e-5)
    da, db = a.detections(), b.detections()
    assert len(da) == len(db)
    for x, y in zip(da, db, strict=True):
        assert (x.start, x.end) == pytest.approx((y.start, y.end), abs=1e-6)
        assert x.score == pytest.approx(y.score, rel=1e-4, abs=1e-5)


def _result_names(folder: Path) -> list[str]:
    """The files of a scan's output folder, less its record and lock file."""
    return sorted(p.name for p in folder.iterdir() if p.name not in (SCAN_STAMP, SCAN_LOCK))


def _numbers(path: Path) -> np.ndarray:
    """The numeric cells of a CSV result file (start, end, peak, score per row)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file,start,end,peak,score"
    return np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]]).reshape(-1, 4)


def test_scan_matches_local_and_reports_the_corrupt_file(
    crash_marker: Path,
    tmp_path: Path,
    demo: DemoSet,
    scanner: Scanner,
    local: dict[str, ScanResult],
    corrupt: Path,
) -> None:
    inputs = [*map(str, demo.test_files[:3]), str(corrupt), *map(str, demo.test_files[3:])]
    report = dist.scan_dataset(
        scanner,
        inputs,
        tmp_path / "ray",
        BatchSettings(keep_results=True),
        options=dist.RayOptions(workers=2),
        progress=False,
    )
    assert sorted(o.item for o in report.done) == sorted(local)
    assert [o.item for o in report.failed] == [str(corrupt)]
    reason = report.failed[0].reason or ""
    assert "broken.wav" in reason and "\n" not in reason
    assert report.skipped == () and not report.ok
    got = report.results()
    for path, ref in local.items():
        _same(got[path], ref)

    # The same files, names and numbers as a local scan into another folder.
    here = scan_to_folder(scanner, inputs, tmp_path / "local")
    assert [o.item for o in here.failed] == [str(corrupt)]
    names = _result_names(tmp_path / "ray")
    assert names == _result_names(tmp_path / "local")
    assert "detections.csv" in names and not any(n.startswith(".tmp-") for n in names)
    for name in names:
        a, b = _numbers(tmp_path / "ray" / name), _numbers(tmp_path / "local" / name)
        assert a.shape == b.shape and a.shape[0] > 0
        np.testing.assert_allclose(a, b, atol=2e-4)

    # A rerun with skip_existing sends nothing to Ray and leaves the results untouched.
    outputs = [o.output for o in report.done if o.output is not None]
    stamps = {p: p.stat().st_mtime_ns for p in outputs}

    def no_ray(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("skip_existing sent work to Ray")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dist, "_run_on_ray", no_ray)
        again = dist.scan_dataset(
            scanner,
            list(local),
            tmp_path / "ray",
            BatchSettings(skip_existing=True),
            progress=False,
        )
    assert sorted(o.item for o in again.skipped) == sorted(local)
    assert again.done == () and again.failed == () and again.ok
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_narrow_band_recording_is_warned_of_on_ray_as_locally(
    crash_marker: Path, tmp_path: Path, demo: DemoSet, scanner: Scanner
) -> None:
    """A scan's warnings (here: no content above 5 kHz, the training recordings
    reach 8) come back from the workers with the result, and the batch logs them."""
    import soundfile as sf

    from audio_embed import load_audio

    audio = load_audio(demo.test_files[0])
    spectrum = np.fft.rfft(audio)
    spectrum[np.fft.rfftfreq(len(audio), 1 / 16000) > 5000] = 0
    narrow = tmp_path / "narrow.wav"
    sf.write(narrow, np.fft.irfft(spectrum, len(audio)).astype(np.float32), 16000)
    inputs = [str(narrow), str(demo.test_files[1])]
    report = dist.scan_dataset(
        scanner,
        inputs,
        tmp_path / "ray",
        BatchSettings(keep_results=True),
        options=dist.RayOptions(workers=2),
        progress=False,
    )
    got = report.results()
    assert got[str(narrow)].warnings == scanner.scan(narrow).warnings
    assert re.search(r"no content above 5\.[01] kHz", got[str(narrow)].warnings[0])
    assert got[str(demo.test_files[1])].warnings == ()


def test_cli_scan_on_ray_survives_a_killed_worker(
    crash_marker: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scanner: Scanner,
    local: dict[str, ScanResult],
) -> None:
    saved = scanner.save(tmp_path / "job.scanner")
    files = list(local)
    crash_marker.touch()  # the first worker call removes it and kills its own process
    rc = main(["scan", str(saved), *files, "--out", str(tmp_path / "ray"), "--ray", "-q"])
    out = capsys.readouterr().out
    assert not crash_marker.exists(), "no worker crashed: the test proves nothing"
    assert rc == 0, out
    assert out.count(" detection(s) -> ") == len(files)
    assert main(["scan", str(saved), *files, "--out", str(tmp_path / "local"), "-q"]) == 0
    names = _result_names(tmp_path / "local")
    assert _result_names(tmp_path / "ray") == names
    for name in names:
        a, b = _numbers(tmp_path / "ray" / name), _numbers(tmp_path / "local" / name)
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_embed_on_ray_matches_local(
    crash_marker: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    demo: DemoSet,
    corrupt: Path,
) -> None:
    files = [str(demo.test_files[0]), str(corrupt), str(demo.test_files[1])]
    common = ["--model", "LOGMEL", "--hop", "2", "-q", "--no-cache"]
    assert main(["embed", *files, "--out", str(tmp_path / "ray.npz"), *common, "--ray"]) == 1
    assert "broken.wav" in capsys.readouterr().err
    assert main(["embed", *files, "--out", str(tmp_path / "local.npz"), *common]) == 1
    with np.load(tmp_path / "ray.npz") as a, np.load(tmp_path / "local.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert list(a["files"]) == list(b["files"]) == [files[0], files[2]]
        for key in b.files:
            if key.endswith("/embeddings"):
                scale = float(np.abs(b[key]).max())
                np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-5 * scale)
            elif key not in ("files", "model"):
                np.testing.assert_allclose(a[key], b[key], atol=1e-9)
        assert str(a["model"]) == str(b["model"])

    # The library writes one .npz per file, named as scan results are.
    report = dist.embed_dataset(
        "LOGMEL", files, tmp_path / "each", hop=2.0, options=dist.RayOptions(workers=1)
    )
    assert sorted(report.done) == [files[0], files[2]]
    assert [f.path for f in report.failed] == [files[1]] and report.exit_code == 1
    assert report.outputs[files[2]] == tmp_path / "each" / f"{Path(files[2]).stem}.npz"
    with np.load(tmp_path / "local.npz") as b, np.load(report.outputs[files[2]]) as e:
        np.testing.assert_allclose(e["starts"], b["1/starts"], atol=1e-9)
        scale = float(np.abs(b["1/embeddings"]).max())
        np.testing.assert_allclose(e["embeddings"], b["1/embeddings"], atol=1e-5 * scale)


def test_cli_ray_options_need_ray(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(
        ["embed", "a.wav", "--model", "LOGMEL", "--out", str(tmp_path / "e.npz"), "--workers", "2"]
    )
    assert rc == 2
    assert "--workers needs --ray" in capsys.readouterr().err


def test_bad_arguments_fail_before_ray_starts(tmp_path: Path) -> None:
    with pytest.raises(ScannerFileError, match="not found"):
        dist.scan_dataset(tmp_path / "missing.scanner", ["a.wav"], tmp_path)
    with pytest.raises(InvalidInputError, match="'workers' of RayOptions must be >= 1"):
        dist.RayOptions(workers=0)


def test_cli_evaluate_on_ray_matches_local(
    crash_marker: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    demo: DemoSet,
    scanner: Scanner,
) -> None:
    saved = scanner.save(tmp_path / "job.scanner")
    args = ["evaluate", str(saved), "--labels", str(demo.labels_csv), "--target", "horn"]
    args += ["--split", "test", "--json", "-q"]
    assert main([*args, "--ray", "--workers", "1"]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    here = json.loads(capsys.readouterr().out)
    assert on_ray["per_file"] == here["per_file"]  # same files, same order, same counts
    assert on_ray.keys() == here.keys()
    for key, value in here.items():
        if isinstance(value, float):
            assert on_ray[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_workers_that_cannot_start_fail_every_file_with_the_reason(
    crash_marker: Path, scanner: Scanner, local: dict[str, ScanResult]
) -> None:
    options = dist.RayOptions(workers=1, embedder_kwargs={"no_such_setting": 1})
    runner = dist.RayScanner.from_scanner(scanner, options, progress_bar=False)
    got = dict(runner.scan_many(list(local)[:2]))
    assert sorted(got) == sorted(list(local)[:2])
    for error in got.values():
        assert isinstance(error, dist.FileFailedError)
        assert "no_such_setting" in error.reason and "\n" not in error.reason


def _all_cpus_free(seconds: float = 60.0) -> bool:
    """Whether every CPU of the module's Ray is free again within ``seconds`` (the actors
    of a finished or stopped run release theirs when Ray has killed them)."""
    deadline = time.monotonic() + seconds
    while ray.available_resources().get("CPU", 0.0) < 2.0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_scan_on_ray_reads_and_writes_a_shared_embedding_cache(
    crash_marker: Path, tmp_path: Path, scanner: Scanner, local: dict[str, ScanResult]
) -> None:
    files = list(local)[:2]
    cache_dir = tmp_path / "cache"
    options = dist.RayOptions(workers=1, cache_dir=cache_dir)
    keep = BatchSettings(keep_results=True)
    run: dict[str, Any] = {"options": options, "progress": False}
    first = dist.scan_dataset(scanner, files, tmp_path / "a", keep, **run)
    entries = sorted(cache_dir.glob("*.npz"))
    # The entries a local scan with this cache folder would read: the same names.
    keyer = attrs.evolve(scanner, cache=EmbeddingCache(cache_dir))
    assert sorted(p.name for p in entries) == sorted(f"{keyer.cache_key(f)}.npz" for f in files)
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in entries}

    second = dist.scan_dataset(
        scanner, files, tmp_path / "b", keep, options=options, progress=False
    )
    # A worker writes an entry whenever it runs the model (a miss); none was rewritten
    # and none added, so the rerun took every file's embeddings from the cache.
    assert sorted(cache_dir.glob("*.npz")) == entries
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in entries} == stamps
    for path in files:
        _same(second.results()[path], first.results()[path])
        _same(first.results()[path], local[path])


def test_a_cancelled_scan_on_ray_keeps_what_finished_and_releases_its_workers(
    crash_marker: Path, tmp_path: Path, scanner: Scanner, local: dict[str, ScanResult]
) -> None:
    assert _all_cpus_free(), "an earlier run still holds Ray's CPUs"
    token = CancelToken()

    def on_file(outcome: FileOutcome) -> None:
        if outcome.kind == "done":
            token.cancel()  # as the CLI's Ctrl-C handler does

    out = tmp_path / "out"
    with pytest.raises(BatchCancelled) as info:
        dist.scan_dataset(
            scanner,
            list(local),
            out,
            options=dist.RayOptions(workers=1),
            progress=False,
            cancel=token,
            on_file=on_file,
        )
    report = info.value.report
    assert len(report.done) == 1 and report.failed == () and report.combined is None
    done = report.done[0]
    assert done.output is not None and _numbers(done.output).shape[0] > 0
    # no partial file, no combined CSV: the result and the record of its threshold
    assert _result_names(out) == [done.output.name]
    assert {SCAN_STAMP, SCAN_LOCK} <= {p.name for p in out.iterdir()}
    assert _all_cpus_free(), "the stopped run's actors still hold Ray's CPUs"


def test_cli_cache_dir_reaches_the_ray_workers(tmp_path: Path) -> None:
    """--cache-dir goes to the workers with --ray; without it (or with --no-cache) none."""

    def options(*extra: str) -> dist.RayOptions | None:
        args = build_parser().parse_args(["scan", "s.scanner", "a.wav", "--out", "o", *extra])
        return ray_settings(
            Run(args=args, cancel=CancelToken(), show_progress=False, out=sys.stdout)
        )

    with_dir = options("--ray", "--cache-dir", str(tmp_path))
    assert with_dir is not None and with_dir.cache_dir == str(tmp_path)
    assert (none := options("--ray")) is not None and none.cache_dir is None
    off = options("--ray", "--cache-dir", str(tmp_path), "--no-cache")
    assert off is not None and off.cache_dir is None
    assert options() is None


def test_cli_plugin_reaches_the_ray_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--plugin with --ray: each worker loads the module before building its model (a
    scanner of a plugin's model failed every file on the workers)."""
    from audio_embed._ray_worker import build_scanner

    (tmp_path / "ray_plugin_models.py").write_text(
        "from audio_embed import EmbedderSpec, LogMelEmbedder, register_embedder\n"
        "register_embedder(EmbedderSpec(name='RAY_PLUGIN_LOGMEL', dim=128,\n"
        "    factory=lambda **kw: LogMelEmbedder(n_mels=32, **kw), takes_checkpoint=False))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = build_parser().parse_args(
        ["scan", "s.scanner", "a.wav", "--out", "o", "--ray", "--plugin", "ray_plugin_models"]
    )
    opts = ray_settings(Run(args=args, cancel=CancelToken(), show_progress=False, out=sys.stdout))
    assert opts is not None and opts.plugins == ("ray_plugin_models",)
    job = {  # what a worker gets (the _dataset job), for an embedding run
        "embedder_kwargs": {},
        "plugins": list(opts.plugins),
        "model": "RAY_PLUGIN_LOGMEL",
        "windows": {"window": 1.0, "hop": 0.5, "encoding": "shared"},
        "batch_size": None,
    }
    assert build_scanner(job).embedder.dim == 128


def test_cli_index_on_ray_matches_local(
    crash_marker: Path, tmp_path: Path, demo: DemoSet, corrupt: Path
) -> None:
    files = [str(demo.test_files[0]), str(corrupt), str(demo.test_files[1])]
    common = ["--model", "LOGMEL", "--hop", "2", "-q", "--no-cache"]
    on_ray, here = tmp_path / "ray.idx", tmp_path / "local.idx"
    assert main(["index", *files, "--out", str(on_ray), *common, "--ray", "--workers", "1"]) == 1
    assert main(["index", *files, "--out", str(here), *common]) == 1  # the corrupt file
    a, b = EmbeddingIndex.open(on_ray), EmbeddingIndex.open(here)
    assert (
        [f.path for f in a.files]
        == [f.path for f in b.files]
        == [str(Path(f).resolve()) for f in (files[0], files[2])]
    )
    assert [f.n_rows for f in a.files] == [f.n_rows for f in b.files]
    np.testing.assert_allclose(a.vectors(), b.vectors(), rtol=0, atol=2e-3)  # float16 storage
    # Adding the same files again on Ray embeds nothing: they are unchanged.
    assert main(["index", files[0], "--out", str(on_ray), "-q", "--ray", "--workers", "1"]) == 0
    assert len(EmbeddingIndex.open(on_ray)) == len(a)


def test_a_file_changed_after_decoding_is_not_cached_under_its_new_key(tmp_path: Path) -> None:
    """A worker embeds the audio a decode task read earlier: when the file has changed
    since, those embeddings are not stored under the changed file's cache key (before:
    they were, and every later scan with that cache got the old audio's embeddings)."""
    from conftest import tone, write_media

    from audio_embed._ray_worker import ModelWorker, decode_row

    path = write_media(tmp_path / "rec.wav", tone(440, 4.0), 16000)
    cache_dir = tmp_path / "cache"
    job = {
        "threads": 1,
        "task": "embed",
        "sample_rate": 16000,
        "scanner_bytes": None,
        "model": "LOGMEL",
        "windows": {"window": 1.0, "hop": 1.0, "encoding": "per_window"},
        "batch_size": None,
        "load_kwargs": {},
        "embedder_kwargs": {},
        "cache_dir": str(cache_dir),
    }
    worker = ModelWorker(job)
    row = decode_row({"index": 0, "path": str(path)}, 16000)
    assert worker(row)["error"] == "" and len(list(cache_dir.glob("*.npz"))) == 1  # cached
    for entry in cache_dir.glob("*.npz"):
        entry.unlink()
    row = decode_row({"index": 0, "path": str(path)}, 16000)
    write_media(path, tone(1000, 4.0), 16000)  # replaced before the model gets to it
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # whatever the clock's grain
    out = worker(row)
    assert out["error"] == "" and out["payload"]  # still embedded, from the audio read
    assert list(cache_dir.glob("*.npz")) == []
    fresh = worker(decode_row({"index": 0, "path": str(path)}, 16000))
    assert fresh["error"] == "" and len(list(cache_dir.glob("*.npz"))) == 1


class _Seeded(Embedder):
    """A plugin's model with weights: ``checkpoint`` is the seed they are drawn with."""

    name = "SEEDED"
    dim = 8

    def __init__(self, checkpoint: str | None = None) -> None:
        self.checkpoint = checkpoint
        rng = np.random.default_rng(int(checkpoint or 0))
        self.weights = torch.from_numpy(rng.standard_normal((1, self.dim)).astype(np.float32))

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return waveforms.mean(dim=1, keepdim=True) * self.weights


@pytest.fixture
def fake_embedding(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """embed_dataset without Ray: the names of the files each run embeds (LOGMEL gives
    4 numbers a window, other models 8); SEEDED registered as a plugin's model."""
    from audio_embed import registry
    from audio_embed.cache import CachedEmbeddings

    spec = registry.EmbedderSpec(name="SEEDED", dim=8, factory=_Seeded)
    monkeypatch.setitem(registry._REGISTRY, "SEEDED", spec)
    embedded: list[list[str]] = []

    def fake(self: dist.RayScanner, sources: list[str], **_: object) -> Iterator[tuple[str, Any]]:
        embedded.append([Path(s).name for s in sources])
        dim = 4 if self.job["model"] == "LOGMEL" else 8
        for s in sources:
            yield s, CachedEmbeddings(np.arange(3.0), np.ones((3, dim), np.float32), 3.0)

    monkeypatch.setattr(dist.RayScanner, "sliding_embeddings_many", fake)
    return embedded


def _empty_files(folder: Path, names: str) -> list[str]:
    for name in names:
        (folder / f"{name}.wav").write_bytes(b"")
    return [str(folder / f"{name}.wav") for name in names]


def test_embed_dataset_skips_only_embeddings_of_its_own_model_and_windows(
    tmp_path: Path, fake_embedding: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """skip_existing keeps a file's .npz only when it is readable and was made with the
    same model and windows (before: any file of the name, even a truncated one or
    another model's embeddings, was kept)."""
    embedded = fake_embedding
    files = _empty_files(tmp_path, "abcd")
    out = tmp_path / "out"
    dist.embed_dataset("LOGMEL", files, out, hop=1)
    assert embedded == [["a.wav", "b.wav", "c.wav", "d.wav"]]
    data = (out / "b.npz").read_bytes()
    (out / "b.npz").write_bytes(data[: len(data) // 2])  # truncated (copied, synced)
    (out / "c.npz").unlink()
    report = dist.embed_dataset("LOGMEL", files, out, hop=1.0, skip_existing=True)
    assert embedded[1] == ["b.wav", "c.wav"] and "b.npz is unreadable" in caplog.text
    assert sorted(Path(p).name for p in report.skipped) == ["a.wav", "d.wav"]
    dist.embed_dataset("SEEDED", files, out, hop=1.0, skip_existing=True)
    assert embedded[2] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert "made with other settings: embedder" in caplog.text
    with np.load(out / "a.npz") as a:
        assert a["embeddings"].shape == (3, 8)
    dist.embed_dataset("SEEDED", files, out, hop=1.0, skip_existing=True)
    assert len(embedded) == 3  # all kept
    dist.embed_dataset("SEEDED", files, out, hop=1.0, skip_existing=True, audio_stream=1)
    assert embedded[3] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert "audio_stream 0, now 1" in caplog.text


def test_embed_dataset_keeps_each_file_s_band_edge_and_peak_and_warns_of_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from audio_embed.cache import CachedEmbeddings, read_entry

    def fake(self: dist.RayScanner, sources: list[str], **_: object) -> Iterator[tuple[str, Any]]:
        for s in sources:
            peak = 0.0 if Path(s).stem == "s" else 0.5
            yield s, CachedEmbeddings(np.arange(3.0), np.ones((3, 4), np.float32), 3.0, 8e3, peak)

    monkeypatch.setattr(dist.RayScanner, "sliding_embeddings_many", fake)
    with caplog.at_level(logging.WARNING):
        dist.embed_dataset("LOGMEL", _empty_files(tmp_path, "as"), tmp_path / "out", hop=1)
    entry, _ = read_entry(tmp_path / "out" / "a.npz")
    assert (entry.band_edge, entry.peak) == (8e3, 0.5)
    assert caplog.text.count("is silent") == 1
    assert f"{tmp_path / 's.wav'} is silent (digital zero" in caplog.text


def test_embed_dataset_skips_only_embeddings_of_the_same_model_settings_and_weights(
    tmp_path: Path, fake_embedding: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """The .npz names the model's identity (its cache_id: own settings and weights), so
    skip_existing re-embeds a file made with another --model-option or other weights
    (before: the model's name and windows matched, the file was kept, silently wrong)."""
    embedded = fake_embedding
    files = _empty_files(tmp_path, "ab")
    out = tmp_path / "out"

    def run(model: str, **kwargs: Any) -> dist.DatasetReport:
        options = dist.RayOptions(embedder_kwargs=kwargs)
        return dist.embed_dataset(model, files, out, skip_existing=True, options=options)

    floor = LogMelEmbedder(floor=1e-10).cache_id()
    run("LOGMEL", floor=1e-10)
    with np.load(out / "a.npz") as a:
        assert json.loads(str(a["settings"]))["embedder"] == floor
    caplog.clear()
    assert run("LOGMEL", floor=1e-10).skipped == files and len(embedded) == 1
    assert caplog.text == ""
    run("LOGMEL")  # the default floor: other vectors
    assert embedded[1] == ["a.wav", "b.wav"]
    assert f"embedder {floor!r}" in caplog.text and "own settings or its weights" in caplog.text
    run("SEEDED", checkpoint="1")
    assert run("SEEDED", checkpoint="1").skipped == files and len(embedded) == 3
    caplog.clear()
    run("SEEDED", checkpoint="2")  # other weights, same name and settings
    assert embedded[3] == ["a.wav", "b.wav"] and "own settings or its weights" in caplog.text
    # a setting the model does not take fails before Ray starts
    with pytest.raises(InvalidInputError, match="no setting 'flor'"):
        run("LOGMEL", flor=1e-10)
    assert len(embedded) == 4


def test_embed_dataset_re_embeds_what_it_cannot_check(
    tmp_path: Path, fake_embedding: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """An .npz without the model's identity (written before it was stored) is embedded
    again with a warning that says why; so is every one when the driver cannot build
    the model (registered on the workers only)."""
    embedded = fake_embedding
    files = _empty_files(tmp_path, "ab")
    out = tmp_path / "out"
    dist.embed_dataset("LOGMEL", files, out)
    for name in "ab":  # as written before the .npz files stored the identity
        with np.load(out / f"{name}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        settings = json.loads(str(arrays["settings"]))
        del settings["embedder"]
        arrays["settings"] = np.array(json.dumps(settings, sort_keys=True))
        np.savez(out / f"{name}.npz", **arrays)
    with np.load(out / "b.npz") as z:  # and before they stored any settings
        np.savez(out / "b.npz", **{k: z[k] for k in z.files if k != "settings"})
    dist.embed_dataset("LOGMEL", files, out, skip_existing=True)
    assert embedded[1] == ["a.wav", "b.wav"]
    assert caplog.text.count("cannot be checked") == 2
    assert dist.embed_dataset("LOGMEL", files, out, skip_existing=True).skipped == files
    caplog.clear()
    dist.embed_dataset("WORKERS_ONLY", files, out, skip_existing=True)
    assert "Cannot build the WORKERS_ONLY model on this machine" in caplog.text
    dist.embed_dataset("WORKERS_ONLY", files, out, skip_existing=True)
    assert embedded[2] == embedded[3] == ["a.wav", "b.wav"]


def test_a_worker_names_the_scanner_file_in_its_load_errors(
    tmp_path: Path, scanner: Scanner
) -> None:
    """A worker loads the scanner's bytes from an in-memory file: its errors named
    /proc/self/fd/N (e.g. "/proc/self/fd/38 holds types that are not scikit-learn…")."""
    import zipfile

    from audio_embed._ray_worker import build_scanner
    from audio_embed.errors import UnknownEmbedderError

    saved = scanner.save(tmp_path / "s.scanner")
    with zipfile.ZipFile(saved) as zf:
        meta, payload = json.loads(zf.read("scanner.json")), zf.read("classifier.skops")
    meta["embedder"]["config"].update(name="NOT_LOADED_HERE", **{"class": "my_models.Nope"})
    meta["embedder"]["name"] = "NOT_LOADED_HERE"
    with zipfile.ZipFile(tmp_path / "plugin.scanner", "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    runner = dist.RayScanner.from_scanner(tmp_path / "plugin.scanner")
    job = {**runner.job, "embedder_kwargs": {}}
    with pytest.raises(UnknownEmbedderError, match=r"^\S*plugin\.scanner: the embedder 'NOT_LOA"):
        build_scanner(job)
    job = {**dist.RayScanner.from_scanner(scanner).job, "embedder_kwargs": {}}
    job["load_kwargs"] = {"embedder": LogMelEmbedder(n_mels=32)}  # another model
    with pytest.raises(ScannerFileError, match=r"^the Scanner given to RayScanner\.from_scanner"):
        build_scanner(job)
    # a saved threshold that is not a number in [0, 1]: refused before Ray, naming the
    # file (before: read as it was, so every worker's scan failed naming no file)
    meta = json.loads(zipfile.ZipFile(saved).read("scanner.json"))
    for bad in (float("nan"), 1.5):
        with zipfile.ZipFile(tmp_path / "edited.scanner", "w") as zf:
            zf.writestr("scanner.json", json.dumps({**meta, "threshold": bad}))
            zf.writestr("classifier.skops", payload)
        with pytest.raises(ScannerFileError, match=r"edited\.scanner holds a threshold .* damaged"):
            dist.RayScanner.from_scanner(tmp_path / "edited.scanner")


OWN_FEATURES = """\
import numpy as np
from attrs import define

from attrs import frozen

from audio_embed import Postprocessing
from audio_embed.scanner import Scanner


@define
class Squared(Scanner):
    def window_features(self, normalised, starts):
        f = super().window_features(normalised, starts)
        return np.concatenate([f, np.abs(f)], axis=1)


@frozen(kw_only=True)
class Strongest(Postprocessing):
    def detections(self, *args, **kwargs):
        found = super().detections(*args, **kwargs)
        return [max(found, key=lambda d: d.score)] if found else []
"""


def test_a_scanner_subclass_with_its_own_features_loads_as_one_on_the_workers(
    crash_marker: Path, tmp_path: Path, demo: DemoSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RayScanner.from_scanner of a Scanner subclass with its own window_features(): each
    worker's Scanner.load refused the file ("trained with the window features of …"),
    so every file failed. Given as a scanner, its module goes to the workers; given as
    a file, RayOptions(plugins=[module]) names it."""
    import importlib

    from attrs import define

    from audio_embed._ray_worker import build_scanner

    (tmp_path / "ray_own_features.py").write_text(OWN_FEATURES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "ray_own_features", None)  # imported here, then forgotten
    del sys.modules["ray_own_features"]
    squared = importlib.import_module("ray_own_features").Squared
    recs = [Recording(f, m) for f, m in read_markers(demo.markers_csv).items()]
    own = squared(LogMelEmbedder(), augmentation=None, threshold=0.5, context=0.0).fit(recs)
    want = own.scan(demo.test_files[0]).probabilities
    path = own.save(tmp_path / "own.scanner")

    def on_a_worker(job: dict[str, Any]) -> Scanner:  # a new process: the module not imported
        monkeypatch.delitem(sys.modules, "ray_own_features", raising=False)
        return build_scanner({**job, "embedder_kwargs": {}})

    loaded = on_a_worker(dist.RayScanner.from_scanner(own).job)
    assert f"{type(loaded).__module__}.{type(loaded).__name__}" == "ray_own_features.Squared"
    got = loaded.scan(demo.test_files[0]).probabilities
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    job = dist.RayScanner.from_scanner(path).job
    with pytest.raises(
        ScannerFileError,
        match=r"features of ray_own_features\.Squared .*RayOptions\(plugins=\['ray_own_features'\]",
    ):
        on_a_worker({**job, "plugins": []})
    assert type(on_a_worker({**job, "plugins": ["ray_own_features"]})).__name__ == "Squared"
    # a Postprocessing subclass given with the scanner: its module goes to the workers too
    strongest = importlib.import_module("ray_own_features").Strongest
    post = attrs.evolve(own, postprocessing=strongest(**own.postprocessing.as_dict()))
    post.postprocessing_ = None
    job = dist.RayScanner.from_scanner(post).job
    assert job["scanner_modules"] == ["ray_own_features"]
    assert type(on_a_worker(job).scan_postprocessing).__name__ == "Strongest"
    # the command line, locally: Scanner.load loads it as Squared once --plugin imports it
    scan = ["scan", str(path), str(demo.test_files[0]), "--out", str(tmp_path / "o"), "-q"]
    assert main([*scan, "--plugin", str(tmp_path / "ray_own_features.py")]) == 0
    # on Ray's own workers (new processes: the module by its file's path)
    file = str(tmp_path / "ray_own_features.py")
    options = dist.RayOptions(workers=1, plugins=[file])
    got_ray, failed = dist.scan_results(path, demo.test_files[:1], options=options)
    assert failed == []
    ray_scores = got_ray[str(demo.test_files[0])].probabilities
    np.testing.assert_allclose(ray_scores, want, rtol=1e-4, atol=1e-5)
    _, failed = dist.scan_results(path, demo.test_files[:1], options=dist.RayOptions(workers=1))
    assert len(failed) == 1 and "RayOptions(plugins=['ray_own_features'])" in failed[0].reason

    @define
    class Local(Scanner):  # no worker can import it: refused before Ray starts
        def window_features(self, normalised: np.ndarray, starts: np.ndarray) -> np.ndarray:
            return super().window_features(normalised, starts)

    with pytest.raises(InvalidInputError, match=r"^Local has its own window_features\(\), def"):
        dist.RayScanner.from_scanner(Local(LogMelEmbedder()))


class _LogMel32(LogMelEmbedder):
    """A plugin's model that takes 32 kHz."""

    name = "LOGMEL32"
    sample_rate = 32000


def test_ray_decodes_at_the_models_rate_or_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: Scanner
) -> None:
    """A plugin at 32 kHz: Ray runs decode at 32 kHz (before: 16 kHz, so the model saw
    band-limited audio and its vectors differed from a local scan's); a worker whose
    model takes another rate than the decoding refuses, naming both."""
    import json
    import zipfile

    from audio_embed import registry
    from audio_embed._ray_worker import ModelWorker
    from audio_embed.errors import AudioEmbedError

    spec = registry.EmbedderSpec(
        name="LOGMEL32", dim=256, sample_rate=32000, factory=_LogMel32, takes_checkpoint=False
    )
    monkeypatch.setitem(registry._REGISTRY, "LOGMEL32", spec)
    runner = dist.RayScanner.for_embedding("LOGMEL32", window=1.0, hop=1.0)
    assert runner.job["sample_rate"] == 32000
    saved = scanner.save(tmp_path / "s.scanner")
    with zipfile.ZipFile(saved) as zf:
        meta, payload = json.loads(zf.read("scanner.json")), zf.read("classifier.skops")
    meta["embedder"]["config"]["sample_rate"] = 32000  # as a 32 kHz model's scanner says
    with zipfile.ZipFile(tmp_path / "s32.scanner", "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    assert dist.RayScanner.from_scanner(tmp_path / "s32.scanner").job["sample_rate"] == 32000
    assert dist.RayScanner.from_scanner(saved).job["sample_rate"] == 16000
    # the scanner's normalisation, by which scan_to_folder warns about short clips
    assert dist.RayScanner.from_scanner(saved).normalization == scanner.normalization
    assert dist.RayScanner.from_scanner(scanner).normalization == scanner.normalization
    meta["normalization"] = "none"
    with zipfile.ZipFile(tmp_path / "none.scanner", "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    assert dist.RayScanner.from_scanner(tmp_path / "none.scanner").normalization == "none"
    job = {**runner.job, "task": "embed", "threads": 1, "embedder_kwargs": {}}
    job["sample_rate"] = 16000  # e.g. a runner built where the plugin was not loaded
    with pytest.raises(AudioEmbedError, match="decoded at 16000 Hz, but LOGMEL32 takes 32000"):
        ModelWorker(job)


def test_ray_decodes_the_chosen_audio_stream_and_caches_it_apart(
    crash_marker: Path, tmp_path: Path, demo: DemoSet, scanner: Scanner
) -> None:
    from conftest import SR, video_with_tracks

    from audio_embed import load_audio

    game = load_audio(demo.test_files[0])
    mic = (0.05 * np.random.default_rng(0).standard_normal(len(game))).astype(np.float32)
    video = str(video_with_tracks(tmp_path / "obs.mkv", [mic, game], seconds=len(game) / SR))
    saved = scanner.save(tmp_path / "first.scanner")  # no stream chosen: the first
    on_game = Scanner.load(saved, cache=EmbeddingCache(tmp_path / "cache"))
    on_game.audio_stream = 1
    local_game, local_mic = on_game.scan(video), Scanner.load(saved).scan(video)
    options = dist.RayOptions(workers=1, cache_dir=tmp_path / "cache")
    got, failed = dist.scan_results(on_game, [video], options=options, progress=False)
    assert not failed
    _same(got[video], local_game)
    # the worker's entry is the one a local scan of stream 1 reads (the local scan
    # above wrote it; a Ray entry under another name would be a second file)
    assert [p.name for p in (tmp_path / "cache").glob("*.npz")] == [
        f"{on_game.cache_key(video)}.npz"
    ]
    # a saved scanner's path: its own stream, or the one asked for
    run: dict[str, Any] = {"options": dist.RayOptions(workers=1), "progress": False}
    _same(dist.scan_results(saved, [video], **run)[0][video], local_mic)
    _same(dist.scan_results(saved, [video], audio_stream=1, **run)[0][video], local_game)
    want = Scanner(
        LogMelEmbedder(), scan_windows=SlidingWindows(1.0, 2.0, "shared"), audio_stream=1
    )
    entry = want.sliding_embeddings(video)
    got_emb: list[np.ndarray] = []
    dist.embed_dataset(
        "LOGMEL",
        [video],
        hop=2.0,
        audio_stream=1,
        on_result=lambda _p, e: got_emb.append(e.embeddings),
        **run,
    )
    scale = float(np.abs(entry.embeddings).max())
    np.testing.assert_allclose(got_emb[0], entry.embeddings, atol=1e-5 * scale)

"""Scanning and embedding on a real local Ray (2 CPUs), against the local scan.

LOGMEL (no weights) on short synthesised recordings. One Ray is started for the
module and shut down at its end, with its session files in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'audio_embed[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'audio_embed[ray]'")

import ray

from audio_embed import LogMelEmbedder
from audio_embed import distributed as dist
from audio_embed.batch import scan_to_folder
from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.errors import InvalidInputError
from audio_embed.formats import read_markers
from audio_embed.scanner import Recording, Scanner, ScanResult


@pytest.fixture(scope="module")
def crash_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray with 2 CPUs for this module; yields the file that arms a worker crash."""
    marker = tmp_path_factory.mktemp("crash") / "crash-once"
    os.environ[dist.CRASH_ONCE_ENV] = str(marker)  # set before ray.init: workers inherit it
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
        os.environ.pop(dist.CRASH_ONCE_ENV, None)
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
        keep_results=True,
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
    names = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "local").iterdir())
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
            scanner, list(local), tmp_path / "ray", skip_existing=True, progress=False
        )
    assert sorted(o.item for o in again.skipped) == sorted(local)
    assert again.done == () and again.failed == () and again.ok
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_killed_worker_has_its_file_retried(
    crash_marker: Path,
    tmp_path: Path,
    demo: DemoSet,
    scanner: Scanner,
    local: dict[str, ScanResult],
) -> None:
    crash_marker.touch()  # the first worker call removes it and kills its own process
    saved = scanner.save(tmp_path / "job.scanner")  # shipped from its file this time
    got, failed = dist.scan_results(
        saved, list(local), options=dist.RayOptions(workers=2), progress=False
    )
    assert not crash_marker.exists(), "no worker crashed: the test proves nothing"
    assert failed == []
    assert list(got) == list(local)  # every result, in input order
    for path, ref in local.items():
        _same(got[path], ref)


def test_embed_matches_local_sliding_embeddings(
    crash_marker: Path, tmp_path: Path, demo: DemoSet, scanner: Scanner
) -> None:
    files = [str(f) for f in demo.test_files[:2]]
    report = dist.embed_dataset(
        "LOGMEL",
        files,
        tmp_path / "emb",
        window=scanner.scan_windows.window,
        hop=scanner.scan_windows.hop,
        encoding=scanner.scan_windows.encoding,
        options=dist.RayOptions(workers=1),
        progress=False,
    )
    assert sorted(report.done) == sorted(files) and report.exit_code == 0
    for f in files:
        ref = scanner.sliding_embeddings(f)
        with np.load(report.outputs[f]) as data:
            np.testing.assert_allclose(data["starts"], ref.starts, atol=1e-9)
            scale = float(np.abs(ref.embeddings).max())
            np.testing.assert_allclose(data["embeddings"], ref.embeddings, atol=1e-5 * scale)
            assert float(data["duration"]) == pytest.approx(ref.duration)


def test_bad_arguments_fail_before_ray_starts(tmp_path: Path, scanner: Scanner) -> None:
    with pytest.raises(InvalidInputError, match="output format"):
        dist.scan_dataset(scanner, ["a.wav"], tmp_path, fmt="xml")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="'threshold'"):
        dist.scan_dataset(scanner, ["a.wav"], tmp_path, threshold=2.0)

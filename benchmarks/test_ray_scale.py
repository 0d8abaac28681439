"""Scanning on a local Ray against the local scan, on the same files.

For each model (LOGMEL, HUBERT_BASE with random weights), one after the other
in one run, every method scans the same ``--ray-files`` synthetic files of
``--ray-file-seconds`` each with the same trained scanner (its classifier is
fitted on random vectors: speed does not depend on what it learned):

- ``local 1 thread`` / ``local 2 threads``: :meth:`Scanner.scan_many` in this
  process with 1 or 2 torch threads;
- ``ray 1x1``: :class:`RayScanner`, 1 worker with 1 thread (against local 1
  thread: the overhead of Ray at one worker);
- ``ray 1x2``: 1 worker with 2 threads (against local 2 threads);
- ``ray 2x1``: 2 single-thread workers (against local 2 threads: processes or
  threads for 2 cores).

Wall seconds, the 1-minute load average before and after, and CPU seconds
(of this process and every process under it, Ray's included; also by kind of
process: driver, model workers, decode tasks, Ray's services) are reported:
on a machine shared with other work the CPU seconds show the work done, wall
time also the waiting. Ray itself is started once for the session (a cluster
is already running when one scans on it); each Ray run includes starting its
actors and building the model in them. Run::

    .venv/bin/pytest benchmarks/test_ray_scale.py --benchmark-enable -s \\
        [--ray-files 20] [--ray-file-seconds 20] [--bench-models LOGMEL,HUBERT_BASE] \\
        [--ray-methods 'local 1 thread,ray 1x1']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from conftest import record, selected
from models import hubert_base, logmel, random_scanner, write_recording

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'audio_embed[ray]'")

from audio_embed.distributed import RayOptions, RayScanner  # noqa: E402
from audio_embed.scanner import Scanner  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
FACTORIES = {"LOGMEL": logmel, "HUBERT_BASE": hubert_base}
METHODS = ("local 1 thread", "local 2 threads", "ray 1x1", "ray 1x2", "ray 2x1")
#: Wall and CPU seconds per (model, method), filled by the runs, read by the ratio table.
WALL: dict[tuple[str, str], float] = {}
CPU: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray with 2 CPUs whose workers can import ``benchmarks/models.py``,
    warmed up by one tiny LOGMEL run (as a running cluster would be)."""
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), path) if p)
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=200 * 2**20,
        _temp_dir=temp,
    )
    try:
        warm = write_recording(tmp_path_factory.mktemp("warm") / "warm.wav", 2.0)
        runner = RayScanner.from_scanner(
            _scanner("LOGMEL"), RayOptions(workers=2, threads=1), progress_bar=False
        )
        list(runner.scan_many([warm, warm]))
        yield
    finally:
        ray.shutdown()
        os.environ["PYTHONPATH"] = path
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> list[Path]:
    n = int(pytestconfig.getoption("--ray-files"))
    seconds = float(pytestconfig.getoption("--ray-file-seconds"))
    root = tmp_path_factory.mktemp("ray-files")
    return [write_recording(root / f"rec_{i:02d}.wav", seconds, seed=i) for i in range(n)]


_SCANNERS: dict[str, Scanner] = {}


def _scanner(name: str) -> Scanner:
    if name not in _SCANNERS:
        _SCANNERS[name] = random_scanner(FACTORIES[name]())
    return _SCANNERS[name]


class CpuMeter:
    """CPU seconds of this process and every process under it (Ray's included) while
    the block runs: on a shared machine, the work done, unlike wall time.

    A thread samples each process's cumulative CPU time every 0.2 s, so work of a
    process that ends between two samples (at most 0.2 s of it) is missed.
    """

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.stop = threading.Event()

    def _sample(self, initial: bool = False) -> None:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                now = t.user + t.system
                key = proc.pid
                if key not in self.first:
                    self.first[key] = now if initial else 0.0
                self.last[key] = now
                self.kind[key] = "driver" if proc is me else _kind(" ".join(proc.cmdline()))

    def __enter__(self) -> CpuMeter:
        self._sample(initial=True)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[k] - self.first[k] for k in self.last)

    def by_kind(self) -> dict[str, float]:
        """CPU seconds of the driver, the model workers, the decode tasks and the rest
        of Ray (its services and Ray Data's own actors), by process title."""
        out = dict.fromkeys(("driver", "model workers", "decode tasks", "Ray services"), 0.0)
        for k in self.last:
            out[self.kind[k]] += self.last[k] - self.first[k]
        return out


def _kind(title: str) -> str:
    if "ModelWorker" in title:
        return "model workers"
    if "decode_row" in title or title.startswith("ray::IDLE"):
        return "decode tasks"  # an idle worker process is one that ran (or will run) them
    return "Ray services"


def _run(name: str, method: str, files: list[Path]) -> tuple[float, CpuMeter, int]:
    """Wall seconds and CPU meter of one full scan of ``files``, and the number of results."""
    scanner = _scanner(name)
    paths = [str(f) for f in files]
    if method.startswith("local"):
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if "1 thread" in method else 2)
        try:
            t0 = time.perf_counter()
            with CpuMeter() as cpu:
                n = sum(1 for _p, r in scanner.scan_many(paths) if not isinstance(r, Exception))
            return time.perf_counter() - t0, cpu, n
        finally:
            torch.set_num_threads(threads)
    workers, threads = (int(v) for v in method.split()[1].split("x"))
    options = RayOptions(workers=workers, threads=threads, embedder_factory=FACTORIES[name])
    runner = RayScanner.from_scanner(scanner, options, progress_bar=False)
    t0 = time.perf_counter()
    with CpuMeter() as cpu:
        n = sum(1 for _p, r in runner.scan_many(paths) if not isinstance(r, Exception))
    return time.perf_counter() - t0, cpu, n


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(FACTORIES))
def test_ray_scan(
    name: str,
    method: str,
    files: list[Path],
    ray_local: None,
    benchmark: Any,
    pytestconfig: pytest.Config,
) -> None:
    if not selected(pytestconfig, name):
        pytest.skip(f"{name} not in --bench-models")
    methods = [m.strip() for m in str(pytestconfig.getoption("--ray-methods")).split(",")]
    if any(methods) and method not in methods:
        pytest.skip(f"{method} not in --ray-methods")
    benchmark.group = f"ray-scale {name}"
    out: dict[str, Any] = {}

    def once() -> None:
        out["load"] = os.getloadavg()[0]
        out["wall"], out["meter"], out["n"] = _run(name, method, files)

    benchmark.pedantic(once, rounds=1, iterations=1)
    assert out["n"] == len(files)
    cpu: CpuMeter = out["meter"]
    WALL[(name, method)] = out["wall"]
    CPU[(name, method)] = cpu.seconds
    audio = len(files) * float(pytestconfig.getoption("--ray-file-seconds"))
    row = {
        "model": name,
        "method": method,
        "wall_s": out["wall"],
        "x_rt": audio / out["wall"],
        "cpu_s": cpu.seconds,
        "load_before": out["load"],
        "load_after": os.getloadavg()[0],
    }
    benchmark.extra_info.update(row)
    record(f"Ray scale-out, {len(files)} files × {audio / len(files):g} s, wall", row)
    kinds = {f"{k} cpu_s": v for k, v in cpu.by_kind().items()}
    record("Ray scale-out, CPU seconds by process", {"model": name, "method": method, **kinds})


@pytest.mark.parametrize("name", list(FACTORIES))
def test_ray_ratios(name: str, pytestconfig: pytest.Config) -> None:
    """The ratios, from the walls measured above in this run."""
    pairs = [
        ("ray 1x1", "local 1 thread"),
        ("ray 1x2", "local 2 threads"),
        ("ray 2x1", "local 2 threads"),
        ("ray 2x1", "local 1 thread"),
    ]
    pairs = [(a, b) for a, b in pairs if (name, a) in WALL and (name, b) in WALL]
    if not pairs:
        pytest.skip(f"no pair of methods of {name} ran")
    for kind, t in (("wall", WALL), ("CPU", CPU)):
        row: dict[str, Any] = {"model": name, "seconds": kind}
        row.update({f"{a} / {b}": t[(name, a)] / t[(name, b)] for a, b in pairs})
        record("Ray scale-out, ratios (> 1: Ray takes more)", row)
